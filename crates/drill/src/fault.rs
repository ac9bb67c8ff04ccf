//! The faults a drill injects, and how each is undone afterwards.

use crate::run::DrillConfig;
use anyhow::{anyhow, bail, Context};
use redis_ha_local::Topology;
use redis_ha_topology::{Addr, Spec};
use serde::Serialize;
use std::time::Duration;

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
        }
    }

    /// The sentinels must promote a replica.
    pub fn failover_expected(self) -> bool {
        self != Fault::KillReplica
    }

    /// The old master is alive again at the end (restored, or demoted in a
    /// planned failover) and must come back as a replica.
    pub fn old_master_returns(self, restore: bool) -> bool {
        match self {
            Fault::Failover => true,
            Fault::KillReplica => false,
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
        cfg.sentinel_password.as_deref(),
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

/// Injects `cfg.fault` on `old_master` (or, for kill-replica, on the first
/// of `replicas`); returns the steps that undo it, in order.
pub async fn inject(
    cfg: &DrillConfig,
    topo: Option<&Topology>,
    old_master: &str,
    replicas: &[Addr],
) -> anyhow::Result<Vec<Undo>> {
    if cfg.fault == Fault::Failover {
        planned_failover(cfg).await?;
        return Ok(Vec::new());
    }
    let t = topo.ok_or_else(|| anyhow!("--fault {} needs a local topology", cfg.fault.name()))?;
    let master = node_name(t, old_master)?;
    Ok(match cfg.fault {
        Fault::Kill => {
            t.kill(&master)?;
            vec![Undo::Restart(master)]
        }
        Fault::Stop => {
            t.stop(&master)?;
            vec![Undo::Cont(master)]
        }
        Fault::KillReplica => {
            let r = replicas
                .first()
                .ok_or_else(|| anyhow!("the topology has no replica"))?;
            let r = node_name(t, r)?;
            t.kill(&r)?;
            vec![Undo::Restart(r)]
        }
        Fault::KillSentinel => {
            let s = running_sentinel(t)?;
            t.kill(&s)?;
            t.kill(&master)?;
            vec![Undo::Restart(s), Undo::Restart(master)]
        }
        Fault::Failover => Vec::new(),
    })
}

/// Runs the undo steps in order.
pub async fn undo(t: &Topology, steps: &[Undo]) -> anyhow::Result<()> {
    for s in steps {
        match s {
            Undo::Restart(n) => t.restart(n).await?,
            Undo::Cont(n) => t.cont(n)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_replica_kill_needs_no_failover() {
        use Fault::*;
        let want: Vec<bool> = [Kill, Stop, Failover, KillReplica, KillSentinel]
            .iter()
            .map(|f| f.failover_expected())
            .collect();
        assert_eq!(want, [true, true, true, false, true]);
        assert!(Failover.old_master_returns(false));
        assert!(!Kill.old_master_returns(false) && Kill.old_master_returns(true));
        assert!(!KillReplica.old_master_returns(true));
    }
}
