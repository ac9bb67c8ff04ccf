//! The measured timeline, row by row beside the original's guessed one
//! (T+5 s master seen down, T+8 s vote, T+10 s promotion, T+12 s other
//! replica follows, T+15 s old master back as a replica).

use crate::events::{Event, Instance, Kind};
use serde::Serialize;

/// One step of a failover as the timeline shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    MasterSeenDown,
    QuorumAgrees,
    FailoverStarted,
    Vote,
    ReplicaSelected,
    Promotion,
    PromotionSeen,
    WritesStop,
    SwitchMaster,
    ProxySwitched,
    FirstAckAfterPromotion,
    WritesResume,
    OtherReplicaFollows,
    OldMasterBack,
}

impl Step {
    pub const ALL: [Step; 14] = [
        Step::MasterSeenDown,
        Step::QuorumAgrees,
        Step::FailoverStarted,
        Step::Vote,
        Step::ReplicaSelected,
        Step::Promotion,
        Step::PromotionSeen,
        Step::WritesStop,
        Step::SwitchMaster,
        Step::ProxySwitched,
        Step::FirstAckAfterPromotion,
        Step::WritesResume,
        Step::OtherReplicaFollows,
        Step::OldMasterBack,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Step::MasterSeenDown => "master seen down (+sdown)",
            Step::QuorumAgrees => "quorum agrees (+odown)",
            Step::FailoverStarted => "failover started (+try-failover)",
            Step::Vote => "vote won (+elected-leader)",
            Step::ReplicaSelected => "replica selected (+selected-slave)",
            Step::Promotion => "promotion (+promoted-slave)",
            Step::PromotionSeen => "replica answers ROLE master",
            Step::WritesStop => "writes stop (outage begins)",
            Step::SwitchMaster => "sentinels switch (+switch-master)",
            Step::ProxySwitched => "proxy adopts the new master",
            Step::FirstAckAfterPromotion => "first write acknowledged after promotion",
            Step::WritesResume => "writes resume (outage ends)",
            Step::OtherReplicaFollows => "other replica follows (+slave-reconf-done)",
            Step::OldMasterBack => "old master back as a replica",
        }
    }

    /// The original's guess, seconds after the fault.
    pub fn expected_s(self) -> Option<f64> {
        match self {
            Step::MasterSeenDown => Some(5.0),
            Step::Vote => Some(8.0),
            Step::Promotion => Some(10.0),
            Step::OtherReplicaFollows => Some(12.0),
            Step::OldMasterBack => Some(15.0),
            _ => None,
        }
    }
}

/// What the drill measured itself, in ms since the fault.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    pub promotion_seen_ms: Option<f64>,
    pub first_ack_after_promotion_ms: Option<f64>,
    /// The longest gap between acknowledged writes: (start, end).
    pub outage_ms: Option<(f64, f64)>,
    /// The old master answered ROLE as a replica again.
    pub old_master_replica_ms: Option<f64>,
    /// The proxy adopted the new master (its `/api/status`).
    pub proxy_switched_ms: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub step: Step,
    pub label: &'static str,
    pub expected_s: Option<f64>,
    /// Milliseconds since the fault; `None`: not seen.
    pub measured_ms: Option<f64>,
    /// Which sentinel or measurement it comes from.
    pub source: String,
}

/// The first event at or after the fault that `f` accepts.
fn first(events: &[Event], f: impl Fn(&Event) -> bool) -> Option<&Event> {
    events
        .iter()
        .filter(|e| e.at_ms >= 0.0 && f(e))
        .min_by(|a, b| a.at_ms.total_cmp(&b.at_ms))
}

fn of_kind(kind: Kind, instance: Option<Instance>) -> impl Fn(&Event) -> bool {
    move |e| e.kind == kind && instance.is_none_or(|i| e.instance == i)
}

/// The old master is back as a replica: Sentinel converts it, or clears
/// its down flag while it is listed as a replica.
fn old_master_back(old: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| {
        let back = e.kind == Kind::ConvertToSlave
            || (e.kind == Kind::SdownCleared && e.instance == Instance::Slave);
        back && e.instance_addr().as_deref() == Some(old)
    }
}

fn event_row(e: Option<&Event>) -> (Option<f64>, String) {
    match e {
        Some(e) => (Some(e.at_ms), format!("sentinel {}", e.sentinel)),
        None => (None, String::new()),
    }
}

/// The first event of each channel at or after the fault, in time order
/// (with the sentinel that published it).
pub fn first_per_channel(events: &[Event]) -> Vec<Event> {
    let mut sorted: Vec<&Event> = events.iter().filter(|e| e.at_ms >= 0.0).collect();
    sorted.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut out: Vec<Event> = Vec::new();
    for e in sorted {
        if !out.iter().any(|o| o.channel == e.channel) {
            out.push(e.clone());
        }
    }
    out
}

/// The timeline of a drill: Sentinel's events (first of each step, any
/// sentinel) and the drill's own measurements, in the order of [`Step::ALL`].
pub fn rows(events: &[Event], old_master: &str, m: &Measured) -> Vec<Row> {
    let own = |v: Option<f64>, src: &str| {
        (
            v,
            if v.is_some() {
                src.into()
            } else {
                String::new()
            },
        )
    };
    Step::ALL
        .iter()
        .map(|&step| {
            let (measured_ms, source) = match step {
                Step::MasterSeenDown => {
                    event_row(first(events, of_kind(Kind::Sdown, Some(Instance::Master))))
                }
                Step::QuorumAgrees => event_row(first(events, of_kind(Kind::Odown, None))),
                Step::FailoverStarted => event_row(first(events, of_kind(Kind::TryFailover, None))),
                Step::Vote => event_row(first(events, of_kind(Kind::ElectedLeader, None))),
                Step::ReplicaSelected => {
                    event_row(first(events, of_kind(Kind::SelectedSlave, None)))
                }
                Step::Promotion => event_row(first(events, of_kind(Kind::PromotedSlave, None))),
                Step::PromotionSeen => own(m.promotion_seen_ms, "drill: ROLE polled"),
                Step::WritesStop => own(m.outage_ms.map(|o| o.0), "drill: last ack before the gap"),
                Step::SwitchMaster => event_row(first(events, of_kind(Kind::SwitchMaster, None))),
                Step::ProxySwitched => own(m.proxy_switched_ms, "proxy: /api/status"),
                Step::FirstAckAfterPromotion => {
                    own(m.first_ack_after_promotion_ms, "drill: writers")
                }
                Step::WritesResume => {
                    own(m.outage_ms.map(|o| o.1), "drill: first ack after the gap")
                }
                Step::OtherReplicaFollows => {
                    event_row(first(events, of_kind(Kind::SlaveReconfDone, None)))
                }
                Step::OldMasterBack => match first(events, old_master_back(old_master)) {
                    Some(e) => event_row(Some(e)),
                    None => own(m.old_master_replica_ms, "drill: ROLE polled"),
                },
            };
            Row {
                step,
                label: step.label(),
                expected_s: step.expected_s(),
                measured_ms,
                source,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: f64, sentinel: &str, channel: &str, payload: &str) -> Event {
        Event {
            at_ms,
            sentinel: sentinel.into(),
            channel: channel.into(),
            payload: payload.into(),
            kind: Kind::of_channel(channel),
            instance: Instance::of_payload(payload),
        }
    }

    fn row(rows: &[Row], step: Step) -> &Row {
        rows.iter().find(|r| r.step == step).unwrap()
    }

    #[test]
    fn each_step_is_the_first_matching_event_after_the_fault() {
        let old = "127.0.0.1:6381";
        let events = [
            // Before the fault: not part of the timeline.
            ev(-50.0, "s0", "+sdown", "master mymaster 127.0.0.1 6381"),
            ev(1010.0, "s1", "+sdown", "master mymaster 127.0.0.1 6381"),
            ev(1005.0, "s2", "+sdown", "master mymaster 127.0.0.1 6381"),
            // A replica down is not the master seen down.
            ev(
                900.0,
                "s0",
                "+sdown",
                "slave 127.0.0.1:6383 127.0.0.1 6383 @ mymaster 127.0.0.1 6381",
            ),
            ev(
                1100.0,
                "s2",
                "+odown",
                "master mymaster 127.0.0.1 6381 #quorum 2/2",
            ),
            ev(
                1200.0,
                "s2",
                "+elected-leader",
                "master mymaster 127.0.0.1 6381",
            ),
            ev(
                1900.0,
                "s2",
                "+switch-master",
                "mymaster 127.0.0.1 6381 127.0.0.1 6382",
            ),
            ev(
                5000.0,
                "s1",
                "-sdown",
                "slave 127.0.0.1:6383 127.0.0.1 6383 @ mymaster 127.0.0.1 6382",
            ),
            ev(
                6000.0,
                "s0",
                "-sdown",
                "slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6382",
            ),
        ];
        let m = Measured {
            promotion_seen_ms: Some(1500.0),
            first_ack_after_promotion_ms: Some(1520.0),
            outage_ms: Some((-1.0, 1520.0)),
            old_master_replica_ms: Some(5900.0),
            proxy_switched_ms: None,
        };
        let r = rows(&events, old, &m);
        assert_eq!(r.len(), Step::ALL.len());
        let down = row(&r, Step::MasterSeenDown);
        assert_eq!(
            (down.measured_ms, down.source.as_str(), down.expected_s),
            (Some(1005.0), "sentinel s2", Some(5.0))
        );
        assert_eq!(row(&r, Step::QuorumAgrees).measured_ms, Some(1100.0));
        assert_eq!(row(&r, Step::Vote).measured_ms, Some(1200.0));
        assert_eq!(row(&r, Step::Promotion).measured_ms, None, "not published");
        assert_eq!(row(&r, Step::PromotionSeen).measured_ms, Some(1500.0));
        assert_eq!(row(&r, Step::WritesResume).measured_ms, Some(1520.0));
        assert_eq!(row(&r, Step::SwitchMaster).measured_ms, Some(1900.0));
        // The old master's own -sdown as a replica, not the other replica's,
        // and the event wins over the drill's poll.
        let back = row(&r, Step::OldMasterBack);
        assert_eq!(
            (back.measured_ms, back.expected_s),
            (Some(6000.0), Some(15.0))
        );
    }

    #[test]
    fn first_per_channel_keeps_the_earliest_after_the_fault() {
        let events = [
            ev(-5.0, "s0", "+sdown", "master m 127.0.0.1 1"),
            ev(30.0, "s1", "+sdown", "master m 127.0.0.1 1"),
            ev(20.0, "s2", "+sdown", "master m 127.0.0.1 1"),
            ev(10.0, "s2", "+new-epoch", "5"),
        ];
        let f = first_per_channel(&events);
        let got: Vec<(&str, &str)> = f
            .iter()
            .map(|e| (e.channel.as_str(), e.sentinel.as_str()))
            .collect();
        assert_eq!(got, [("+new-epoch", "s2"), ("+sdown", "s2")]);
    }

    #[test]
    fn without_events_the_drills_own_measurements_fill_in() {
        let m = Measured {
            old_master_replica_ms: Some(700.0),
            proxy_switched_ms: None,
            ..Measured::default()
        };
        let r = rows(&[], "127.0.0.1:6381", &m);
        assert_eq!(row(&r, Step::OldMasterBack).measured_ms, Some(700.0));
        assert!(r
            .iter()
            .filter(|r| r.step != Step::OldMasterBack)
            .all(|r| r.measured_ms.is_none() && r.source.is_empty()));
    }
}
