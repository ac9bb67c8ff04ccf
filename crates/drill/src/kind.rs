//! The faults a drill can inject, what each needs of the master (a
//! failover, none, or either) and of the topology, and the cold restart's
//! options. Injecting them is [`crate::fault`]'s job.

use crate::verdict::Expect;
use redis_ha_local::cold::Order;
use serde::Serialize;

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
    /// `redis-ha node restart proxy`: the new proxy starts beside the old
    /// one, which drains; no failover, no refused connection, and a writer
    /// sees at most a closed connection whose write did not run.
    RestartProxy,
    /// SIGKILL one sentinel, then the master: the other two fail over.
    KillSentinel,
    /// `redis-ha switchover`: writes paused, replicas caught up, then the
    /// switch; no error and no write lost.
    Switchover,
    /// SIGKILL two of three sentinels, then the master: no quorum, so no
    /// failover may happen; the sentinels and then the master are restarted
    /// after the wait (a node takes a role once a majority answers).
    KillSentinels,
    /// The upgrade procedure: each replica restarted in turn (linked again
    /// before the next), a switchover, then the old master restarted.
    RollingRestart,
    /// Every Redis, Sentinel and proxy process killed, then started again
    /// in `--order` (optionally with a stale replica and `--sentinel-state
    /// lost`): the newest node must lead, nothing acknowledged lost.
    ColdRestart,
    /// The master killed, its data removed, and restarted at once (before
    /// Sentinel reacts): it must hand the role to a replica with the data.
    WipeMaster,
    /// The same for a replica: it must resync, not be promoted.
    WipeReplica,
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
            Fault::RestartProxy => "restart-proxy",
            Fault::KillSentinel => "kill-sentinel",
            Fault::Switchover => "switchover",
            Fault::KillSentinels => "kill-sentinels",
            Fault::RollingRestart => "rolling-restart",
            Fault::ColdRestart => "cold-restart",
            Fault::WipeMaster => "wipe-master",
            Fault::WipeReplica => "wipe-replica",
            Fault::Partition => "partition",
        }
    }

    /// Every fault, in the order `--fault all` runs them (the gentle ones
    /// first).
    pub const ALL: [Fault; 13] = [
        Fault::KillReplica,
        Fault::RestartProxy,
        Fault::WipeReplica,
        Fault::Failover,
        Fault::Switchover,
        Fault::RollingRestart,
        Fault::Kill,
        Fault::WipeMaster,
        Fault::Stop,
        Fault::KillSentinel,
        Fault::KillSentinels,
        Fault::ColdRestart,
        Fault::Partition,
    ];

    /// What the fault needs of the master: a promotion, none, or either.
    pub fn expect(self) -> Expect {
        match self {
            Fault::KillReplica
            | Fault::KillSentinels
            | Fault::WipeReplica
            | Fault::RestartProxy => Expect::NoFailover,
            Fault::ColdRestart => Expect::Either,
            _ => Expect::Failover,
        }
    }

    /// Every write left without a reply did not run: the proxy's drain
    /// closes a connection only between requests (restart-proxy). Where
    /// the master dies, an unanswered write may have run: not promised.
    pub fn unanswered_writes_did_not_run(self) -> bool {
        matches!(self, Fault::RestartProxy)
    }

    /// The master comes back from its own disk (every process killed, or
    /// no failover): what its AOF lacks is lost.
    pub fn restarts_master_from_disk(self) -> bool {
        matches!(self, Fault::ColdRestart | Fault::KillSentinels)
    }

    /// The sentinels must promote a replica.
    pub fn failover_expected(self) -> bool {
        self.expect() == Expect::Failover
    }

    /// It signals or restarts processes of the local topology (failover and
    /// switchover need only the sentinels; partition builds its own).
    pub fn needs_topology(self) -> bool {
        !matches!(self, Fault::Failover | Fault::Switchover | Fault::Partition)
    }

    /// No failover may happen: the drill watches for one during
    /// [`no_failover_window`], then brings the master back itself.
    pub fn proves_no_failover(self) -> bool {
        matches!(self, Fault::KillSentinels | Fault::WipeReplica)
    }

    /// The old master is alive again at the end (restored, or demoted in a
    /// planned failover) and must come back as a replica.
    pub fn old_master_returns(self, restore: bool) -> bool {
        match self {
            Fault::Failover | Fault::Switchover | Fault::RollingRestart => true,
            // Healed: the sentinels demote it.
            Fault::Partition => true,
            // Kill-sentinels restarts the old master as the master.
            Fault::KillReplica
            | Fault::KillSentinels
            | Fault::WipeReplica
            | Fault::RestartProxy => false,
            // Back empty: it hands over and rejoins as a replica.
            Fault::WipeMaster => true,
            // The newest node leads: the old master may lead again.
            Fault::ColdRestart => false,
            Fault::Kill | Fault::Stop | Fault::KillSentinel => restore,
        }
    }
}

/// What the sentinels keep across a cold restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SentinelState {
    /// Their config files (the current master, epochs, known nodes).
    #[default]
    Kept,
    /// Their files removed, as if their volumes were recreated: the master
    /// is chosen by data.
    Lost,
}

/// `--fault cold-restart`'s options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ColdRestart {
    pub order: Order,
    /// A replica is killed first and the writes go on without it for a
    /// while: a stale node, which must not lead after the restart.
    pub stale_replica: bool,
    pub sentinel_state: SentinelState,
}

impl Default for ColdRestart {
    fn default() -> ColdRestart {
        ColdRestart {
            order: Order::AllAtOnce,
            stale_replica: false,
            sentinel_state: SentinelState::Kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn killing_a_replica_or_two_sentinels_needs_no_failover() {
        use Fault::*;
        let want: Vec<bool> = Fault::ALL.iter().map(|f| f.failover_expected()).collect();
        // kill-replica, restart-proxy, wipe-replica, failover, switchover,
        // rolling-restart, kill, wipe-master, stop, kill-sentinel,
        // kill-sentinels, cold-restart, partition
        assert_eq!(
            want,
            [false, false, false, true, true, true, true, true, true, true, false, false, true]
        );
        assert!(!RestartProxy.old_master_returns(true) && !RestartProxy.proves_no_failover());
        assert!(
            RestartProxy.unanswered_writes_did_not_run() && !Kill.unanswered_writes_did_not_run()
        );
        assert!(ColdRestart.restarts_master_from_disk() && !Kill.restarts_master_from_disk());
        assert_eq!(ColdRestart.expect(), Expect::Either);
        assert!(WipeReplica.proves_no_failover() && WipeMaster.old_master_returns(false));
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
}
