//! The faults a drill injects, and how each is undone afterwards: kill -9,
//! SIGSTOP, a planned `SENTINEL FAILOVER` or zero-loss switchover, a
//! replica or one sentinel killed, two sentinels killed (no quorum), and
//! the rolling restart of an upgrade.

use crate::partition::Lab;
use crate::run::{wait_replica, DrillConfig};
use anyhow::{anyhow, bail, Context};
use redis_ha_local::switchover::{switchover, SwitchoverArgs};
use redis_ha_local::Topology;
use redis_ha_resp::Access;
use redis_ha_topology::{Addr, Spec};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL the master process (a crash); restarted at the end.
    Kill,
    /// SIGSTOP the master (a hang); it is resumed at the end.
    Stop,
    /// `SENTINEL FAILOVER`: a planned switch.
    Failover,
    /// SIGKILL a replica: writes must go on without a pause.
    KillReplica,
    /// SIGKILL one sentinel, then the master: the other two fail over.
    KillSentinel,
    /// `redis-ha switchover`: writes paused, replicas caught up, then the
    /// switch; no error and no write lost.
    Switchover,
    /// SIGKILL two of three sentinels, then the master: no quorum, so no
    /// failover may happen; the master is restarted after the wait.
    KillSentinels,
    /// The upgrade procedure: each replica restarted in turn (linked again
    /// before the next), a switchover, then the old master restarted.
    RollingRestart,
    /// Linux, root: on a topology the drill builds with the master in a
    /// network namespace, the master cut off from the sentinels and
    /// replicas while clients still reach it, healed after `--heal-after`.
    Partition,
}

impl Fault {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Failover => "failover",
            Fault::KillReplica => "kill-replica",
            Fault::KillSentinel => "kill-sentinel",
            Fault::Switchover => "switchover",
            Fault::KillSentinels => "kill-sentinels",
            Fault::RollingRestart => "rolling-restart",
            Fault::Partition => "partition",
        }
    }

    /// Every fault, in the order `--fault all` runs them (the gentle ones
    /// first).
    pub const ALL: [Fault; 9] = [
        Fault::KillReplica,
        Fault::Failover,
        Fault::Switchover,
        Fault::RollingRestart,
        Fault::Kill,
        Fault::Stop,
        Fault::KillSentinel,
        Fault::KillSentinels,
        Fault::Partition,
    ];

    /// The sentinels must promote a replica; for the others a promotion
    /// is a failure.
    pub fn failover_expected(self) -> bool {
        !matches!(self, Fault::KillReplica | Fault::KillSentinels)
    }

    /// It signals or restarts processes of the local topology (failover and
    /// switchover need only the sentinels; partition builds its own).
    pub fn needs_topology(self) -> bool {
        !matches!(self, Fault::Failover | Fault::Switchover | Fault::Partition)
    }

    /// No failover may happen: the drill watches for one during
    /// [`no_failover_window`], then brings the master back itself.
    pub fn proves_no_failover(self) -> bool {
        self == Fault::KillSentinels
    }

    /// The old master is alive again at the end (restored, or demoted in a
    /// planned failover) and must come back as a replica.
    pub fn old_master_returns(self, restore: bool) -> bool {
        match self {
            Fault::Failover | Fault::Switchover | Fault::RollingRestart => true,
            // Healed: the sentinels demote it.
            Fault::Partition => true,
            // Kill-sentinels restarts the old master as the master.
            Fault::KillReplica | Fault::KillSentinels => false,
            Fault::Kill | Fault::Stop | Fault::KillSentinel => restore,
        }
    }
}

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
    a.master_name = Some(cfg.master_name.clone());
    a.password = cfg.password.clone();
    a.sentinel_password = cfg.sentinel_password.clone();
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
    restart_linked(t, old_master, pw, deadline).await
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
            Injected {
                now: vec![Undo::Restart(master)],
                later: restart(s),
            }
        }
        Fault::RollingRestart => {
            rolling_restart(cfg, t, old_master, replicas).await?;
            Injected::default()
        }
        Fault::Failover | Fault::Switchover | Fault::Partition => Injected::default(),
    })
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
    fn killing_a_replica_or_two_sentinels_needs_no_failover() {
        use Fault::*;
        let want: Vec<bool> = Fault::ALL.iter().map(|f| f.failover_expected()).collect();
        // kill-replica, failover, switchover, rolling-restart, kill, stop,
        // kill-sentinel, kill-sentinels, partition
        assert_eq!(
            want,
            [false, true, true, true, true, true, true, false, true]
        );
        assert!(Partition.old_master_returns(false));
        assert!(Failover.old_master_returns(false));
        assert!(Switchover.old_master_returns(false) && RollingRestart.old_master_returns(false));
        assert!(!Kill.old_master_returns(false) && Kill.old_master_returns(true));
        assert!(!KillReplica.old_master_returns(true));
        // Without a quorum the old master comes back as the master.
        assert!(!KillSentinels.old_master_returns(true));
        assert!(KillSentinels.proves_no_failover() && !KillReplica.proves_no_failover());
    }

    #[test]
    fn only_planned_switches_run_without_a_local_topology() {
        let remote: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|f| !f.needs_topology())
            .collect();
        assert_eq!(
            remote,
            [Fault::Failover, Fault::Switchover, Fault::Partition]
        );
    }

    #[test]
    fn the_no_failover_window_outlasts_a_failover_with_quorum() {
        // down-after 1000 ms (the tests): a failover with a quorum promotes
        // about 1.5 s after the fault.
        assert_eq!(no_failover_window(1000), Duration::from_millis(4000));
        assert_eq!(no_failover_window(5000), Duration::from_millis(12_000));
    }
}
