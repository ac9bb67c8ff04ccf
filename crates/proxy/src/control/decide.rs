//! Pure decisions of the control plane: from what the sentinels and the
//! master's `ROLE` say to the master in the next [`Routes`](crate::route::Routes),
//! and whether a change of master is a failover.

use super::probe::RoleProbe;
use redis_ha_topology::Addr;

/// Where writes go after a refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterDecision {
    /// Route writes to this master (the current one kept, or a new one).
    Route(Addr),
    /// Leave the routes' master as it is (a failover's events move it).
    Unchanged,
    /// Hold writes: no verified master.
    Hold,
}

/// What the sentinels say about the master they name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SentinelVerdict {
    Up,
    /// Some answering sentinel flags it `s_down` or `o_down`.
    Down,
}

/// The master for the next routes. `candidate` is the sentinels' choice,
/// `current` the routes' master, `probe` the candidate's `ROLE` check.
/// A busy or slow current master is kept: only Sentinel (or a refused
/// connection, or a node that says it is not master) takes it away.
pub fn decide_master(
    candidate: Option<&Addr>,
    current: Option<&Addr>,
    probe: &RoleProbe,
    sentinels: SentinelVerdict,
    failover_in_progress: bool,
) -> MasterDecision {
    let Some(c) = candidate else {
        return MasterDecision::Hold;
    };
    let same = current == Some(c);
    match probe {
        RoleProbe::Master if same || !failover_in_progress => MasterDecision::Route(c.clone()),
        RoleProbe::Master => MasterDecision::Unchanged,
        RoleProbe::Busy | RoleProbe::NoReply if same && sentinels == SentinelVerdict::Up => {
            MasterDecision::Route(c.clone())
        }
        _ => MasterDecision::Hold,
    }
}

/// How the master in newly published routes relates to the last master the
/// proxy routed to (`None` while it has never had one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterChange {
    /// No master, or the same one again (after a hold or not): no new epoch.
    None,
    /// The first master since start: a new epoch, not a failover.
    First,
    /// A different node: a new epoch and a failover.
    Switch,
}

pub fn master_change(last_routed: Option<&Addr>, next: Option<&Addr>) -> MasterChange {
    match (last_routed, next) {
        (_, None) => MasterChange::None,
        (None, Some(_)) => MasterChange::First,
        (Some(a), Some(b)) if a == b => MasterChange::None,
        (Some(_), Some(_)) => MasterChange::Switch,
    }
}

/// Whether any answering sentinel's flags for the master say it is down.
pub fn sentinel_verdict<'a>(flags: impl IntoIterator<Item = &'a str>) -> SentinelVerdict {
    let down = flags
        .into_iter()
        .flat_map(|f| f.split(','))
        .any(|f| f == "s_down" || f == "o_down");
    if down {
        SentinelVerdict::Down
    } else {
        SentinelVerdict::Up
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MasterDecision::*;

    fn a(s: &str) -> Addr {
        s.to_string()
    }

    #[test]
    fn a_busy_or_slow_master_is_kept() {
        let m = a("127.0.0.1:7000");
        for p in [RoleProbe::Busy, RoleProbe::NoReply] {
            let d = decide_master(Some(&m), Some(&m), &p, SentinelVerdict::Up, false);
            assert_eq!(d, Route(m.clone()), "{p:?}");
            let d = decide_master(Some(&m), Some(&m), &p, SentinelVerdict::Up, true);
            assert_eq!(d, Route(m.clone()), "{p:?} during a failover");
        }
    }

    #[test]
    fn sentinel_or_a_refused_connection_takes_the_master_away() {
        let m = a("127.0.0.1:7000");
        let d = decide_master(
            Some(&m),
            Some(&m),
            &RoleProbe::NoReply,
            SentinelVerdict::Down,
            false,
        );
        assert_eq!(d, Hold);
        for p in [
            RoleProbe::Refused,
            RoleProbe::NotMaster,
            RoleProbe::Failed("reset".into()),
        ] {
            assert_eq!(
                decide_master(Some(&m), Some(&m), &p, SentinelVerdict::Up, false),
                Hold
            );
        }
        assert_eq!(
            decide_master(
                None,
                Some(&m),
                &RoleProbe::Master,
                SentinelVerdict::Up,
                false
            ),
            Hold
        );
    }

    #[test]
    fn a_new_master_needs_its_own_role_and_no_failover_running() {
        let (old, new) = (a("127.0.0.1:7000"), a("127.0.0.1:7001"));
        let busy = decide_master(
            Some(&new),
            Some(&old),
            &RoleProbe::Busy,
            SentinelVerdict::Up,
            false,
        );
        assert_eq!(busy, Hold, "an unverified new master is not adopted");
        let up = decide_master(
            Some(&new),
            Some(&old),
            &RoleProbe::Master,
            SentinelVerdict::Up,
            false,
        );
        assert_eq!(up, Route(new.clone()));
        let during = decide_master(
            Some(&new),
            Some(&old),
            &RoleProbe::Master,
            SentinelVerdict::Up,
            true,
        );
        assert_eq!(during, Unchanged);
        let from_hold = decide_master(
            Some(&new),
            None,
            &RoleProbe::Master,
            SentinelVerdict::Up,
            false,
        );
        assert_eq!(from_hold, Route(new));
    }

    #[test]
    fn the_same_master_back_is_no_failover() {
        let (m, n) = (a("127.0.0.1:7000"), a("127.0.0.1:7001"));
        assert_eq!(master_change(None, Some(&m)), MasterChange::First);
        assert_eq!(master_change(Some(&m), Some(&m)), MasterChange::None);
        assert_eq!(master_change(Some(&m), None), MasterChange::None);
        assert_eq!(master_change(Some(&m), Some(&n)), MasterChange::Switch);
    }

    #[test]
    fn sentinel_flags() {
        assert_eq!(sentinel_verdict(["master"]), SentinelVerdict::Up);
        assert_eq!(
            sentinel_verdict(["master", "master,s_down"]),
            SentinelVerdict::Down
        );
        assert_eq!(
            sentinel_verdict(["master,o_down,failover_in_progress"]),
            SentinelVerdict::Down
        );
    }
}
