//! Plain-language notes on the Sentinel events that delay or prevent a
//! failover (TILT mode, aborted attempts), so a drill that saw no failover
//! says why instead of only that; and on writes lost by a master that came
//! back from its own disk.

use crate::events::{Event, Kind};
use crate::kind::Fault;

/// Why acknowledged writes can be missing after a fault that restarts the
/// master from its own disk, and what closes it; `None` otherwise.
/// `between_ms`: when the lost writes were acknowledged (after the fault).
pub fn persistence_note(fault: Fault, lost: u64, between_ms: Option<(f64, f64)>) -> Option<String> {
    if lost == 0 || !fault.restarts_master_from_disk() {
        return None;
    }
    let when = between_ms
        .map(|(a, b)| {
            format!(
                ", acknowledged between T+{} and T+{} ms",
                a.round(),
                b.round()
            )
        })
        .unwrap_or_default();
    Some(format!(
        "{lost} writes lost{when}: the master came back from its AOF. With appendfsync \
         everysec Redis postpones writing its AOF while an fsync runs (a busy disk) and still \
         replies, so killing the process loses what it acknowledged meanwhile (up to 2 s). \
         appendfsync always (`redis-ha up --appendfsync always`, `k8s render --appendfsync \
         always`) keeps them, at a throughput cost"
    ))
}

/// One note per sentinel that entered TILT and per distinct abort reason,
/// in the order they happened.
pub fn sentinel_notes(events: &[Event]) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    let mut seen: Vec<(Kind, &str, &str)> = Vec::new();
    for e in events.iter().filter(|e| e.at_ms >= 0.0) {
        let key = match e.kind {
            Kind::Tilt => (e.kind, e.sentinel.as_str(), ""),
            Kind::FailoverAborted => (e.kind, "", e.channel.as_str()),
            _ => continue,
        };
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        notes.push(note(e));
    }
    notes
}

fn note(e: &Event) -> String {
    let at = e.at_ms.round();
    match e.kind {
        Kind::Tilt => format!(
            "sentinel {} entered TILT mode at T+{at} ms (it was stalled or its clock jumped by \
             more than 2 s, e.g. a slow disk or an overloaded machine): it takes no action, \
             failovers included, for 30 s",
            e.sentinel
        ),
        _ => format!(
            "a failover attempt was aborted at T+{at} ms ({}): {}",
            e.channel,
            abort_reason(&e.channel)
        ),
    }
}

/// What Sentinel's `-failover-abort-*` reasons mean, and what follows.
fn abort_reason(channel: &str) -> &'static str {
    match channel.trim_start_matches("-failover-abort-") {
        "no-good-slave" => {
            "no replica was fit to promote (all down or disconnected, replica-priority 0, or \
             cut off from the master for longer than 10 x down-after beyond the master's own \
             down time); Sentinel retries after 2 x failover-timeout"
        }
        "not-elected" => {
            "no sentinel won a majority of votes; Sentinel retries after 2 x failover-timeout"
        }
        "slave-timeout" => "the chosen replica did not become master within failover-timeout",
        _ => "see the sentinels' logs",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Instance;

    fn ev(at_ms: f64, sentinel: &str, channel: &str) -> Event {
        Event {
            at_ms,
            sentinel: sentinel.into(),
            channel: channel.into(),
            payload: String::new(),
            kind: Kind::of_channel(channel),
            instance: Instance::Unnamed,
        }
    }

    #[test]
    fn tilt_once_per_sentinel_and_each_abort_reason_once() {
        let events = [
            ev(-50.0, "s0", "+tilt"),
            ev(120.4, "s1", "+tilt"),
            ev(130.0, "s1", "+tilt"),
            ev(140.0, "s2", "+sdown"),
            ev(30_000.0, "s2", "-failover-abort-no-good-slave"),
            ev(30_010.0, "s0", "-failover-abort-no-good-slave"),
            ev(50_000.0, "s0", "-failover-abort-not-elected"),
        ];
        let n = sentinel_notes(&events);
        assert_eq!(n.len(), 3, "{n:?}");
        assert!(n[0].starts_with("sentinel s1 entered TILT mode at T+120 ms"));
        assert!(n[1].contains("(-failover-abort-no-good-slave): no replica was fit"));
        assert!(n[2].contains("no sentinel won a majority"));
    }

    #[test]
    fn lost_writes_get_a_note_only_where_the_master_restarts_from_disk() {
        let n = persistence_note(Fault::ColdRestart, 23, Some((1002.1, 1003.2))).unwrap();
        assert!(n.starts_with("23 writes lost, acknowledged between T+1002 and T+1003 ms"));
        assert!(n.contains("appendfsync always"));
        assert_eq!(persistence_note(Fault::ColdRestart, 0, None), None);
        assert_eq!(persistence_note(Fault::Kill, 5, None), None);
    }

    #[test]
    fn a_clean_failover_has_no_notes() {
        let events = [ev(10.0, "s0", "+sdown"), ev(900.0, "s0", "+switch-master")];
        assert!(sentinel_notes(&events).is_empty());
    }
}
