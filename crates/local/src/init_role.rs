//! `redis-ha init-role`: the boot-role decision for a Redis node that is
//! about to start (the Kubernetes init container; the local supervisor
//! makes the same decision in-process). Follows the master a majority of
//! the reachable sentinels agree on; only when none knows a master (a first
//! boot) does `--first-master` lead; with no majority it refuses, so a
//! restarted pod 0 never becomes a second master.

use anyhow::Context;
use redis_ha_topology::role::{self, Boot};
use redis_ha_topology::split_addr;
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

pub async fn run(a: InitRoleArgs) -> anyhow::Result<u8> {
    for s in a.sentinels.iter().chain([&a.announce, &a.first_master]) {
        anyhow::ensure!(split_addr(s).is_some(), "{s:?} is not HOST:PORT");
    }
    let spw = a.sentinel_password.as_deref();
    let agreement = role::ask(&a.sentinels, spw, &a.master_name, a.timeout)
        .await
        .agreement;
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
