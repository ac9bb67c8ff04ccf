//! `redis-ha init-role`: the boot-role decision for a Redis node that is
//! about to start (the Kubernetes init container; the local supervisor
//! makes the same decision in-process, see [`crate::boot`]). It waits in
//! Init until a majority of the sentinels answers (silence is never a first
//! boot), follows the master they name, hands the role over when this node
//! is empty but named master, and never makes a node master unless it
//! holds the newest data.

use crate::boot::{self, Role};
use anyhow::Context;
use redis_ha_resp::Login;
use redis_ha_topology::boot::Reason;
use redis_ha_topology::promotion::Promotion;
use redis_ha_topology::{render, split_addr};
use std::path::PathBuf;
use std::time::Duration;

/// Decide whether this Redis node starts as master or as a replica, and
/// write the answer as a redis.conf include file. Waits (with a line saying
/// for what) until a majority of the sentinels answers and the answer is
/// safe; --max-wait bounds that.
///
/// Example (a Kubernetes init container):
///   redis-ha init-role --sentinel sentinel-0.sentinel-headless:26379 \
///     --master-name mymaster --announce redis-1.redis-headless:6379 \
///     --peer redis-0.redis-headless:6379 --peer redis-2.redis-headless:6379 \
///     --first-master redis-0.redis-headless:6379 --data-dir /data --output /data/role.conf
#[derive(clap::Args, Debug, Clone)]
pub struct InitRoleArgs {
    /// The sentinels (every configured one, as a majority of them must
    /// answer; at least one), master name (default mymaster), passwords
    /// (the nodes' to read the peers), TLS.
    #[command(flatten)]
    pub cluster: crate::cluster_args::ClusterArgs,
    /// This node's address as the sentinels know it.
    #[arg(long, value_name = "HOST:PORT")]
    pub announce: String,
    /// The other Redis nodes (repeatable; this node's own address is
    /// skipped): their replication state is read when they run, to hand
    /// the role over or choose by data.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<String>,
    /// The master on a first boot (new sentinels, no data anywhere): pod 0.
    #[arg(long, value_name = "HOST:PORT")]
    pub first_master: String,
    /// This node's Redis data directory (its RDB and AOF files): whether it
    /// holds data.
    #[arg(long, default_value = "/data")]
    pub data_dir: PathBuf,
    /// The file to write: empty for a master, `replicaof HOST PORT` otherwise.
    #[arg(long)]
    pub output: PathBuf,
    /// Per-request timeout (sentinels, peers).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Give up (exit non-zero) after waiting this long; default: wait as
    /// long as it takes (an init container stays in Init).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_wait: Option<Duration>,
}

/// The include file's text for a boot role: `replicaof`, and a restarted
/// replica's `replica-priority 0` (the pod's replica-guard raises it once
/// the node has synced).
pub fn include_for(role: &Role, promotion: Promotion) -> anyhow::Result<String> {
    let replicaof = match role {
        Role::Master => String::new(),
        Role::ReplicaOf(m) => {
            let (h, p) = split_addr(m).with_context(|| format!("bad master address {m}"))?;
            format!("replicaof {h} {p}\n")
        }
    };
    Ok(replicaof + render::promotion_conf(promotion))
}

pub async fn run(a: InitRoleArgs) -> anyhow::Result<u8> {
    let c = &a.cluster;
    anyhow::ensure!(
        !c.sentinels.is_empty(),
        "init-role needs every sentinel: --sentinel HOST:PORT (repeatable)"
    );
    for s in c
        .sentinels
        .iter()
        .chain(&a.peers)
        .chain([&a.announce, &a.first_master])
    {
        anyhow::ensure!(split_addr(s).is_some(), "{s:?} is not HOST:PORT");
    }
    let tls = c.tls.client()?;
    let sentinel_access = redis_ha_resp::Access {
        login: c.sentinel_password.as_deref().map(Login::default_user),
        tls: tls.clone(),
    };
    let redis_access = redis_ha_resp::Access {
        login: c.password.as_deref().map(Login::default_user),
        tls,
    };
    let master_name = c.master_name_or_default();
    let q = boot::Query {
        sentinels: &c.sentinels,
        sentinel_access: &sentinel_access,
        redis_access: &redis_access,
        master_name: &master_name,
        me: &a.announce,
        data_dir: a.data_dir.clone(),
        peers: a
            .peers
            .iter()
            .filter(|p| **p != a.announce)
            .map(|p| (p.clone(), None))
            .collect(),
        first_master: &a.first_master,
        timeout: a.timeout,
        max_wait: a.max_wait,
    };
    // The peers, deciding too, read this node's disk from its port.
    let port = split_addr(&a.announce).map(|(_, p)| p).unwrap_or(6379);
    let answer = crate::init_answer::spawn(a.announce.clone(), port, a.data_dir.clone()).await;
    let decided = boot::decide(&q, &|l| println!("{l}")).await;
    if let Some(h) = answer {
        h.abort();
    }
    let (role, why) = decided?;
    if role == Role::Master && why == Reason::ByData {
        let s = crate::repoint::Sentinels {
            addrs: &c.sentinels,
            access: &sentinel_access,
            master_name: &master_name,
            timeout: a.timeout,
        };
        for l in crate::repoint::monitor_here(&s, &a.announce, c.password.as_deref()).await {
            println!("{l}");
        }
    }
    let text = include_for(&role, boot::promotion(&role, &why))?;
    std::fs::write(&a.output, text)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    println!("{}", boot::describe(&a.announce, &role, &why));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_include_file_says_replicaof_or_nothing() {
        let now = Promotion::Now;
        assert_eq!(include_for(&Role::Master, now).unwrap(), "");
        let r2 = Role::ReplicaOf("redis-2.h:6379".into());
        assert_eq!(include_for(&r2, now).unwrap(), "replicaof redis-2.h 6379\n");
        let restarted = include_for(&r2, Promotion::AfterSync).unwrap();
        assert!(restarted.starts_with("replicaof redis-2.h 6379\n"));
        assert!(restarted.ends_with("replica-priority 0\n"));
        assert!(include_for(&Role::ReplicaOf("nope".into()), now).is_err());
    }
}
