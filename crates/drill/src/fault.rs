//! The faults a drill injects, and how each is undone afterwards: kill -9,
//! SIGSTOP, a planned `SENTINEL FAILOVER` or zero-loss switchover, a
//! replica or one sentinel killed, two sentinels killed (no quorum), the
//! rolling restart of an upgrade, and restarts: the whole topology killed
//! and started again in an order, a master or replica back with an empty
//! disk.

use crate::config::DrillConfig;
pub use crate::kind::{ColdRestart, Fault, SentinelState};
use crate::partition::Lab;
use crate::roles::wait_replica;
use anyhow::{anyhow, bail, Context};
use redis_ha_local::switchover::{switchover, SwitchoverArgs};
use redis_ha_local::Topology;
use redis_ha_resp::Access;
use redis_ha_topology::{Addr, Spec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the writes go on without the stale replica.
const STALE_FOR: Duration = Duration::from_secs(1);

/// One step that undoes part of a fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Start the node again (a Redis node rejoins as a replica).
    Restart(String),
    /// SIGCONT a stopped node.
    Cont(String),
    /// Join the partitioned master to the cluster again.
    Heal,
}

fn node_name(t: &Topology, a: &str) -> anyhow::Result<String> {
    t.name_of(a)
        .ok_or_else(|| anyhow!("{a} is not a node of this topology"))
}

/// A sentinel of the topology whose process runs.
fn running_sentinel(t: &Topology) -> anyhow::Result<String> {
    (0..t.opts.sentinel_ports.len())
        .map(Spec::sentinel_name)
        .find(|s| t.pid(s).is_some())
        .ok_or_else(|| anyhow!("no sentinel of this topology is running"))
}

async fn planned_failover(cfg: &DrillConfig) -> anyhow::Result<()> {
    // Generous: on a loaded machine a sentinel can take over a second.
    let f = redis_ha_resp::conn::query_auth(
        &cfg.sentinels[0],
        Some(&cfg.sentinel_access()),
        &["SENTINEL", "FAILOVER", &cfg.master_name],
        Duration::from_secs(5),
    )
    .await
    .with_context(|| format!("SENTINEL FAILOVER on {}", cfg.sentinels[0]))?;
    if let Some(e) = f.error_message() {
        bail!("SENTINEL FAILOVER refused: {e}");
    }
    Ok(())
}

/// How long a drill that must see no failover watches for one: twice
/// Sentinel's `down-after-milliseconds` and 2 s more (with a quorum the
/// promotion comes about 1 s after down-after).
pub fn no_failover_window(down_after_ms: u64) -> Duration {
    Duration::from_millis(2 * down_after_ms + 2000)
}

/// What undoes an injected fault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Undone while the writers still run, after [`no_failover_window`]
    /// (with no failover, only the master's return brings writes back).
    pub now: Vec<Undo>,
    /// Undone at the end (unless `--no-restore`).
    pub later: Vec<Undo>,
}

impl Injected {
    fn later(steps: Vec<Undo>) -> Injected {
        Injected {
            now: Vec::new(),
            later: steps,
        }
    }
}

/// `redis-ha switchover`, in process, on the drill's sentinels.
async fn planned_switchover(cfg: &DrillConfig) -> anyhow::Result<()> {
    let mut a = SwitchoverArgs::new(cfg.sentinels.clone(), PathBuf::new());
    a.cluster.master_name = Some(cfg.master_name.clone());
    a.cluster.password = cfg.password.clone();
    a.cluster.sentinel_password = cfg.sentinel_password.clone();
    a.tls = cfg.tls.clone();
    a.timeout = cfg.max_wait;
    // Its steps go to stderr: stdout carries the drill's report (--json).
    a.json = true;
    switchover(&a).await.context("switchover")?;
    Ok(())
}

/// Restarts the node at `a` and waits until it is a replica linked to
/// its master.
async fn restart_linked(
    t: &Topology,
    a: &str,
    pw: Option<&Access>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let name = node_name(t, a)?;
    t.restart(&name).await?;
    wait_replica(a, pw, deadline)
        .await
        .ok_or_else(|| anyhow!("{name} ({a}) restarted but is not a linked replica in time"))?;
    Ok(())
}

/// The upgrade procedure: every replica restarted in turn, a switchover,
/// then the old master restarted (it rejoins as a replica).
async fn rolling_restart(
    cfg: &DrillConfig,
    t: &Topology,
    old_master: &str,
    replicas: &[Addr],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + cfg.max_wait;
    let redis = cfg.redis_access();
    let pw = Some(&redis);
    for r in replicas {
        restart_linked(t, r, pw, deadline).await?;
    }
    planned_switchover(cfg).await?;
    // The sentinels have switched; the proxy may not have yet, and a write
    // it still has in flight on the old master when that restarts has an
    // unknown outcome. The upgrade procedure waits for clients to move.
    if let Some(admin) = &cfg.admin {
        wait_proxy_left(admin, old_master, deadline).await?;
    }
    restart_linked(t, old_master, pw, deadline).await?;
    // Last the proxy, where the topology runs one: the new one starts
    // beside the old, which drains (restart_proxy.rs).
    if t.opts.proxy.is_some() {
        crate::restart_proxy::restart(t).await?;
    }
    Ok(())
}

/// Polls the proxy's `/api/status` until it routes writes to a master
/// other than `old`.
async fn wait_proxy_left(admin: &str, old: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if let Ok(body) = crate::observe::http_get(admin, "/api/status").await {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            match v["status"]["master"].as_str() {
                Some(m) if m != old => return Ok(()),
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            bail!("the proxy ({admin}) still routes writes to {old} after the switchover");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills `n` running sentinels; their names.
fn kill_sentinels(t: &Topology, n: usize) -> anyhow::Result<Vec<String>> {
    let mut killed = Vec::new();
    for _ in 0..n {
        let s = running_sentinel(t)?;
        t.kill(&s)?;
        killed.push(s);
    }
    Ok(killed)
}

/// Injects `cfg.fault` on `old_master` (or, for kill-replica, on the first
/// of `replicas`); returns the steps that undo it.
pub async fn inject(
    cfg: &DrillConfig,
    topo: Option<&Topology>,
    lab: Option<&Lab>,
    old_master: &str,
    replicas: &[Addr],
) -> anyhow::Result<Injected> {
    match cfg.fault {
        Fault::Failover => return planned_failover(cfg).await.map(|_| Injected::default()),
        Fault::Switchover => return planned_switchover(cfg).await.map(|_| Injected::default()),
        Fault::Partition => {
            let lab = lab.ok_or_else(|| anyhow!("--fault partition needs its own topology"))?;
            lab.cut()?;
            // Healed while the writers still run, after --heal-after.
            return Ok(Injected {
                now: vec![Undo::Heal],
                later: vec![],
            });
        }
        _ => {}
    }
    let t = topo.ok_or_else(|| anyhow!("--fault {} needs a local topology", cfg.fault.name()))?;
    let master = node_name(t, old_master)?;
    let restart =
        |names: Vec<String>| -> Vec<Undo> { names.into_iter().map(Undo::Restart).collect() };
    Ok(match cfg.fault {
        Fault::Kill => {
            t.kill(&master)?;
            Injected::later(vec![Undo::Restart(master)])
        }
        Fault::Stop => {
            t.stop(&master)?;
            Injected::later(vec![Undo::Cont(master)])
        }
        Fault::KillReplica => {
            let r = replicas
                .first()
                .ok_or_else(|| anyhow!("the topology has no replica"))?;
            let r = node_name(t, r)?;
            t.kill(&r)?;
            Injected::later(vec![Undo::Restart(r)])
        }
        Fault::KillSentinel => {
            let s = kill_sentinels(t, 1)?;
            t.kill(&master)?;
            Injected::later(restart([s, vec![master]].concat()))
        }
        Fault::KillSentinels => {
            let s = kill_sentinels(t, 2)?;
            t.kill(&master)?;
            // After the window, the sentinels first: a Redis node takes a
            // role only once a majority of them answers.
            Injected {
                now: restart([s, vec![master]].concat()),
                later: vec![],
            }
        }
        Fault::RollingRestart => {
            rolling_restart(cfg, t, old_master, replicas).await?;
            Injected::default()
        }
        Fault::WipeMaster => {
            wipe_and_restart(t, &master)?.await?;
            Injected::default()
        }
        Fault::WipeReplica => {
            let r = replicas
                .first()
                .ok_or_else(|| anyhow!("the topology has no replica"))?;
            wipe_and_restart(t, &node_name(t, r)?)?.await?;
            Injected::default()
        }
        Fault::ColdRestart => {
            cold_restart(cfg, t, replicas).await?;
            Injected::default()
        }
        Fault::RestartProxy => {
            crate::restart_proxy::restart(t).await?;
            Injected::default()
        }
        Fault::Failover | Fault::Switchover | Fault::Partition => Injected::default(),
    })
}

/// Kills Redis node `name`, removes its data (a lost disk) and starts it
/// again at once, well within down-after; the returned future ends when it
/// runs (as decided: an empty master hands over first).
fn wipe_and_restart<'a>(
    t: &'a Topology,
    name: &'a str,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + 'a> {
    let i = match t.opts.node(name)? {
        redis_ha_local::NodeKind::Redis(i) => i,
        _ => bail!("{name} is not a Redis node"),
    };
    t.kill(name)?;
    t.wipe_data(i)?;
    Ok(async move { t.restart(name).await })
}

/// Every process killed (after a stale replica, if asked), the sentinels'
/// files removed with `--sentinel-state lost`, then all started again in
/// the order asked; ends when the topology is healthy.
async fn cold_restart(cfg: &DrillConfig, t: &Topology, replicas: &[Addr]) -> anyhow::Result<()> {
    let c = cfg.cold;
    let stale = match (c.stale_replica, replicas.first()) {
        (false, _) => None,
        (true, None) => bail!("--stale-replica needs a replica"),
        (true, Some(r)) => {
            let name = node_name(t, r)?;
            t.kill(&name)?;
            tokio::time::sleep(STALE_FOR).await;
            t.redis_addrs().iter().position(|a| a == r)
        }
    };
    t.kill_all();
    if c.sentinel_state == SentinelState::Lost {
        t.forget_sentinel_state()?;
    }
    t.cold_start(c.order, stale).await?;
    t.wait_healthy(cfg.max_wait).await
}

/// Runs the undo steps in order.
pub async fn undo(t: Option<&Topology>, lab: Option<&Lab>, steps: &[Undo]) -> anyhow::Result<()> {
    let topo = || t.ok_or_else(|| anyhow!("no local topology to restore"));
    for s in steps {
        match s {
            Undo::Restart(n) => topo()?.restart(n).await?,
            Undo::Cont(n) => topo()?.cont(n)?,
            Undo::Heal => lab.ok_or_else(|| anyhow!("no partition to heal"))?.heal()?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_failover_window_outlasts_a_failover_with_quorum() {
        // down-after 1000 ms (the tests): a failover with a quorum promotes
        // about 1.5 s after the fault.
        assert_eq!(no_failover_window(1000), Duration::from_millis(4000));
        assert_eq!(no_failover_window(5000), Duration::from_millis(12_000));
    }
}
