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

/// Why there is no master to route to, in one line that says what to check:
/// told to held clients (`TRYAGAIN ...`), shown in `/api/status`, logged.
/// `errors` are the sentinels' failures, one per sentinel asked. `None` when
/// the cause is not known (sentinels that time out, no majority): then the
/// generic "failover in progress?" text stands.
pub fn hold_reason(
    master_name: &str,
    errors: &[(Addr, Option<String>)],
    candidate: Option<&Addr>,
    role: &RoleProbe,
) -> Option<String> {
    if let Some(c) = candidate {
        return Some(match role {
            RoleProbe::Refused => {
                format!("master {c} refuses connections; waiting for Sentinel to fail over")
            }
            RoleProbe::NotMaster => {
                format!("{c}, named master by the sentinels, is not a master; waiting for Sentinel")
            }
            RoleProbe::Busy | RoleProbe::NoReply => {
                format!(
                    "master {c} does not answer and Sentinel flags it down; waiting for a failover"
                )
            }
            RoleProbe::Failed(e) => format!("master {c} cannot be checked: {e}"),
            RoleProbe::Master => {
                format!("master {c} is not adopted yet (a failover is in progress)")
            }
        });
    }
    let failed: Vec<(&Addr, &String)> = errors
        .iter()
        .filter_map(|(a, e)| e.as_ref().map(|e| (a, e)))
        .collect();
    if failed.is_empty() || failed.len() < errors.len() {
        return None;
    }
    let hints: Vec<Option<String>> = failed
        .iter()
        .map(|(_, e)| sentinel_hint(master_name, e))
        .collect();
    if hints.iter().all(Option::is_none) {
        return None;
    }
    let each: Vec<String> = failed
        .iter()
        .zip(hints)
        .map(|((a, e), h)| format!("{a}: {}", h.unwrap_or_else(|| e.to_string())))
        .collect();
    Some(format!("no sentinel gives a master: {}", each.join("; ")))
}

/// What to do about a sentinel's error, when the cause is known.
fn sentinel_hint(master_name: &str, e: &str) -> Option<String> {
    let l = e.to_ascii_lowercase();
    let hint = if l.contains("no such master") {
        format!(
            "no master named {master_name:?} (check --master-name; SENTINEL MASTERS lists them)"
        )
    } else if l.contains("lookup") || l.contains("name or service not known") {
        "the name does not resolve (check --sentinel)".to_string()
    } else if l.contains("refused") {
        "connection refused: nothing listens there (check --sentinel; is redis-sentinel running?)"
            .to_string()
    } else if l.contains("noauth") || l.contains("wrongpass") || l.contains("invalid password") {
        "login refused (check --sentinel-password)".to_string()
    } else {
        return None;
    };
    Some(format!("{hint} [{e}]"))
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
    fn hold_reasons_say_what_to_check() {
        let s = |e: &str| vec![(a("nohost:1"), Some(e.to_string()))];
        let none = RoleProbe::Failed(String::new());
        let r = |m, e: &[(Addr, Option<String>)], c, p| hold_reason(m, e, c, p).unwrap_or_default();
        let r = r("m", &s("cannot connect to nohost:1: failed to lookup address information: Name or service not known"), None, &none);
        assert!(
            r.contains("does not resolve") && r.contains("--sentinel"),
            "{r}"
        );
        let r2 =
            |m, e: &[(Addr, Option<String>)], c, p| hold_reason(m, e, c, p).unwrap_or_default();
        let r = r2(
            "m",
            &s("cannot connect to 127.0.0.1:9: Connection refused (os error 111)"),
            None,
            &none,
        );
        assert!(r.contains("nothing listens"), "{r}");
        let r = r2(
            "nosuch",
            &s("ERR No such master with that name"),
            None,
            &none,
        );
        assert!(
            r.contains("no master named \"nosuch\"") && r.contains("--master-name"),
            "{r}"
        );
        let r = r2("m", &[], Some(&a("127.0.0.1:7000")), &RoleProbe::Refused);
        assert!(r.contains("127.0.0.1:7000 refuses connections"), "{r}");
        let mixed = vec![(a("s1:1"), None), (a("s2:1"), Some("x".into()))];
        assert_eq!(
            hold_reason("m", &mixed, None, &none),
            None,
            "no majority: cause unknown"
        );
        assert_eq!(
            hold_reason("m", &s("timed out after 1s"), None, &none),
            None
        );
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
