//! `redis-ha init-role`: the boot-role decision for a Redis node that is
//! about to start (the Kubernetes init container; the local supervisor
//! makes the same decision in-process). Follows the master a majority of
//! the reachable sentinels agree on; only when none knows a master (a first
//! boot) does `--first-master` lead; with no majority it refuses, so a
//! restarted pod 0 never becomes a second master.

use anyhow::Context;
use redis_ha_resp::ConnError;
use redis_ha_resp::Login;
use redis_ha_topology::role::{self, Boot};
use redis_ha_topology::{sentinel, split_addr};
use std::path::PathBuf;
use std::time::Duration;

/// Decide whether this Redis node starts as master or as a replica, and
/// write the answer as a redis.conf include file.
///
/// Example (a Kubernetes init container):
///   redis-ha init-role --sentinel sentinel-0.sentinel-headless:26379 \
///     --master-name mymaster --announce redis-1.redis-headless:6379 \
///     --first-master redis-0.redis-headless:6379 --output /data/role.conf
#[derive(clap::Args, Debug, Clone)]
pub struct InitRoleArgs {
    /// Sentinel address (repeatable); unreachable ones do not vote.
    #[arg(long = "sentinel", value_name = "HOST:PORT", required = true)]
    pub sentinels: Vec<String>,
    #[arg(long, default_value = "mymaster")]
    pub master_name: String,
    /// This node's address as the sentinels know it.
    #[arg(long, value_name = "HOST:PORT")]
    pub announce: String,
    /// The master on a first boot (no sentinel knows one): pod 0.
    #[arg(long, value_name = "HOST:PORT")]
    pub first_master: String,
    /// The file to write: empty for a master, `replicaof HOST PORT` otherwise.
    #[arg(long)]
    pub output: PathBuf,
    /// Per-sentinel timeout.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[arg(long, env = "REDIS_HA_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    #[command(flatten)]
    pub tls: crate::tls_flags::TlsFlags,
}

/// The include file's text for a boot role.
pub fn include_for(boot: &Boot) -> anyhow::Result<String> {
    Ok(match boot {
        Boot::Master => String::new(),
        Boot::ReplicaOf(m) => {
            let (h, p) = split_addr(m).with_context(|| format!("bad master address {m}"))?;
            format!("replicaof {h} {p}\n")
        }
    })
}

/// Pure: whether an error means a sentinel is there but cannot be talked
/// to (TLS or plain on the wrong port, a password, a protocol mismatch),
/// rather than absent (refused, unresolvable, silent). Absent sentinels do
/// not vote; an unusable one must not be taken for one that knows no master.
fn cannot_talk(e: &ConnError) -> bool {
    !matches!(e, ConnError::Connect { .. } | ConnError::Timeout(_))
}

/// Pure: when no sentinel names a master, the first one that answered with
/// an error other than absence, as a message saying what to check.
fn unusable(answers: &[(String, Result<Option<String>, ConnError>)]) -> Option<String> {
    if answers.iter().any(|(_, v)| matches!(v, Ok(Some(_)))) {
        return None;
    }
    let (s, e) = answers.iter().find_map(|(s, v)| match v {
        Err(e) if cannot_talk(e) => Some((s, e)),
        _ => None,
    })?;
    Some(format!(
        "sentinel {s} is there but did not answer ({e}): if the sentinels are on TLS, pass --tls (and --cacert, --cert, --key); if they have a password, --sentinel-password"
    ))
}

pub async fn run(a: InitRoleArgs) -> anyhow::Result<u8> {
    for s in a.sentinels.iter().chain([&a.announce, &a.first_master]) {
        anyhow::ensure!(split_addr(s).is_some(), "{s:?} is not HOST:PORT");
    }
    let access = redis_ha_resp::Access {
        login: a.sentinel_password.as_deref().map(Login::default_user),
        tls: a.tls.client()?,
    };
    let answers =
        sentinel::ask_master_all(&a.sentinels, Some(&access), &a.master_name, a.timeout).await;
    if let Some(why) = unusable(&answers) {
        anyhow::bail!(
            "{why}; not deciding a boot role from sentinels it cannot talk to: retry once fixed"
        );
    }
    let answers = answers
        .into_iter()
        .map(|(s, v)| (s, v.map_err(|e| e.to_string())));
    let agreement = role::Views::from_answers(answers.collect()).agreement;
    let boot =
        role::boot_from(&a.announce, &agreement, &a.first_master).map_err(anyhow::Error::msg)?;
    std::fs::write(&a.output, include_for(&boot)?)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let why = match &agreement {
        role::Agreement::Agreed(m) => format!("a majority of the reachable sentinels name {m}"),
        _ => "no sentinel knows a master: first boot".to_string(),
    };
    match boot {
        Boot::Master => println!("{}: master ({why})", a.announce),
        Boot::ReplicaOf(m) => println!("{}: replica of {m} ({why})", a.announce),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> ConnError {
        ConnError::Connect {
            addr: "s:1".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        }
    }

    #[test]
    fn absent_sentinels_do_not_block_a_first_boot() {
        let a = vec![("s0:1".into(), Err(refused())), ("s1:1".into(), Ok(None))];
        assert_eq!(unusable(&a), None);
        let silent = vec![(
            "s0:1".into(),
            Err(ConnError::Timeout(Duration::from_secs(5))),
        )];
        assert_eq!(unusable(&silent), None);
    }

    #[test]
    fn a_sentinel_it_cannot_talk_to_blocks_a_first_boot_decision() {
        let a = vec![
            ("s0:1".into(), Err(refused())),
            ("s1:1".into(), Err(ConnError::Closed)),
        ];
        let why = unusable(&a).expect("refuses");
        assert!(why.contains("s1:1") && why.contains("--tls"), "{why}");
        let noauth = vec![(
            "s0:1".into(),
            Err(ConnError::Server("NOAUTH Authentication required.".into())),
        )];
        assert!(unusable(&noauth).unwrap().contains("--sentinel-password"));
    }

    #[test]
    fn a_sentinel_naming_the_master_is_enough() {
        let a = vec![
            ("s0:1".into(), Err(ConnError::Closed)),
            ("s1:1".into(), Ok(Some("m:1".into()))),
        ];
        assert_eq!(unusable(&a), None);
    }
}
