//! The control plane's decisions, as pure functions: which master the next
//! routing table names after a look at the sentinels and the master, and
//! when a change of master is a new epoch (and a failover to count).

use super::probe::MasterCheck;
use redis_ha_topology::Addr;

/// What a refresh saw.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The master routed now.
    pub current: Option<&'a Addr>,
    /// The master the sentinels' views name.
    pub candidate: Option<&'a Addr>,
    /// Its own `ROLE`.
    pub check: MasterCheck,
    /// A majority of the sentinels answered.
    pub majority: bool,
    /// Sentinel declared the routed master down: +odown, or +sdown from a
    /// majority of the sentinels.
    pub odown: bool,
    /// A failover is running: only its events move the master.
    pub failover: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterDecision {
    /// Route writes to this master.
    Route(Addr),
    /// Leave the routed master as it is.
    Keep,
    /// Route writes nowhere (hold them): no usable master.
    Hold,
}

pub fn master(f: Facts<'_>) -> MasterDecision {
    let Some(candidate) = f.candidate else {
        return MasterDecision::Hold;
    };
    match f.check {
        // Between the promotion and +switch-master the leader reports the
        // old address with the new epoch, and the old master still says
        // master until demoted: a poll must not move the master then.
        MasterCheck::Master if f.failover && f.current != Some(candidate) => MasterDecision::Keep,
        MasterCheck::Master => MasterDecision::Route(candidate.clone()),
        // Slow is not gone: a long script or DEBUG SLEEP keeps the master,
        // as long as the sentinels still name it and have not declared it
        // down. Sending its requests elsewhere would run them twice.
        MasterCheck::Busy if f.current == Some(candidate) && f.majority && !f.odown => {
            MasterDecision::Keep
        }
        MasterCheck::Busy | MasterCheck::NotMaster | MasterCheck::Down => MasterDecision::Hold,
    }
}

/// A master change is a new epoch (and a failover) only when the master
/// differs from the last one adopted: the same master held for a moment
/// and routed again is the same epoch, and no failover.
pub fn epoch(last: Option<&Addr>, epoch: u64, next: Option<&Addr>) -> (u64, bool) {
    match next {
        Some(n) if last != Some(n) => (epoch + 1, last.is_some()),
        _ => (epoch, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        current: Option<&'a Addr>,
        candidate: Option<&'a Addr>,
        check: MasterCheck,
    ) -> Facts<'a> {
        Facts {
            current,
            candidate,
            check,
            majority: true,
            odown: false,
            failover: false,
        }
    }

    #[test]
    fn a_busy_master_is_kept_until_sentinel_says_down() {
        let m = "a:1".to_string();
        let f = facts(Some(&m), Some(&m), MasterCheck::Busy);
        assert_eq!(master(f), MasterDecision::Keep);
        assert_eq!(master(Facts { odown: true, ..f }), MasterDecision::Hold);
        assert_eq!(
            master(Facts {
                majority: false,
                ..f
            }),
            MasterDecision::Hold
        );
        // Busy but not the routed one: never adopted on a guess.
        assert_eq!(
            master(facts(None, Some(&m), MasterCheck::Busy)),
            MasterDecision::Hold
        );
        assert_eq!(
            master(facts(Some(&m), Some(&m), MasterCheck::Down)),
            MasterDecision::Hold
        );
        assert_eq!(
            master(facts(Some(&m), None, MasterCheck::Master)),
            MasterDecision::Hold
        );
    }

    #[test]
    fn polls_do_not_move_the_master_during_a_failover() {
        let (old, new) = ("a:1".to_string(), "b:1".to_string());
        let f = Facts {
            failover: true,
            ..facts(Some(&new), Some(&old), MasterCheck::Master)
        };
        assert_eq!(master(f), MasterDecision::Keep);
        let f = facts(Some(&old), Some(&new), MasterCheck::Master);
        assert_eq!(master(f), MasterDecision::Route(new.clone()));
    }

    #[test]
    fn the_same_master_back_is_no_failover() {
        let (a, b) = ("a:1".to_string(), "b:1".to_string());
        assert_eq!(epoch(None, 0, Some(&a)), (1, false));
        assert_eq!(epoch(Some(&a), 1, None), (1, false));
        assert_eq!(epoch(Some(&a), 1, Some(&a)), (1, false));
        assert_eq!(epoch(Some(&a), 1, Some(&b)), (2, true));
    }
}
