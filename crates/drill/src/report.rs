//! The drill's report: what it holds, and how it is built from the
//! writers' logs, the accounting, the Sentinel events and the times
//! measured (gaps between acknowledgements, errors by kind, the verdict).

use crate::account::{self, Accounting, FinalState, UnknownWrite};
use crate::config::DrillConfig;
use crate::events::{Event, Kind};
use crate::kind::Fault;
use crate::observe::{ProxySwitch, ReadStats};
use crate::timeline::{self, Measured, Row};
use crate::verdict::{self, Facts, Failure};
use crate::writer::{Outcome, WriterLog};
use redis_ha_topology::Addr;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub target: Addr,
    pub fault: Fault,
    /// The fault needs a failover; otherwise one is a failure.
    pub failover_expected: bool,
    pub old_master: Addr,
    pub new_master: Option<Addr>,
    pub writers: usize,
    pub writes_acked: u64,
    /// Requests that got an error or no answer, and failed connections.
    pub writes_failed: u64,
    /// Errors seen by the clients, by kind (`READONLY`, `timeout`,
    /// `unknown_outcome`...).
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged writes missing on the new master afterwards.
    pub lost_writes: u64,
    pub lost_examples: Vec<String>,
    /// When the lost RPUSH writes were acknowledged: the first and the last,
    /// ms since the fault.
    pub lost_acked_between_ms: Option<(f64, f64)>,
    /// Writes applied more often than sent (a value twice in a list, a
    /// counter above acknowledged + unknown).
    pub duplicated_writes: u64,
    pub duplicate_examples: Vec<String>,
    /// Writes whose outcome the client could not know, and how many of them
    /// the master turned out to hold.
    pub unknown_outcomes: u64,
    pub unknown_applied: u64,
    pub unknown_not_applied: u64,
    pub unknown_writes: Vec<UnknownWrite>,
    /// Milliseconds from the fault to a replica reporting `role:master`.
    pub promoted_after_ms: Option<f64>,
    /// Milliseconds from the fault to the first `+switch-master` event.
    pub switch_master_after_ms: Option<f64>,
    /// Milliseconds from the fault to the proxy adopting the new master
    /// (the first failover in its `/api/status` with an adoption).
    pub proxy_switched_after_ms: Option<f64>,
    /// Every failover the proxy recorded from the fault on.
    pub proxy_switches: Vec<ProxySwitch>,
    /// The reader on the read endpoint.
    pub reads: Option<ReadStats>,
    /// `--via`: the same load through the other path, in the same run.
    pub via: Option<ViaReport>,
    /// Milliseconds from the promotion to the first write acknowledged
    /// through the target (the proxy's own reaction lag).
    pub first_ack_after_promotion_ms: Option<f64>,
    /// Longest gap between acknowledged writes (any writer).
    pub write_outage_ms: f64,
    /// That gap, in seconds since the drill started.
    pub outage_window_s: Option<(f64, f64)>,
    /// Errors seen during that outage window.
    pub errors_in_outage: u64,
    /// Every gap of more than [`PAUSE_MS`] between acknowledged writes:
    /// (start, end) in ms since the fault. A failover can pause writes more
    /// than once (the promotion, then the sentinels' switch).
    pub pauses: Vec<(f64, f64)>,
    /// Measured steps beside the original's expected timeline.
    pub timeline: Vec<Row>,
    /// The first event of each Sentinel channel after the fault.
    pub first_events: Vec<Event>,
    /// Every Sentinel event from the subscription on.
    pub events: Vec<Event>,
    /// Nodes answering ROLE as master at the end.
    pub masters_at_end: Vec<Addr>,
    /// Why the drill failed (empty: passed; see `--help` for exit codes).
    pub failures: Vec<Failure>,
    /// What the numbers mean where a fault is expected to cost something
    /// (a partition's lost writes).
    pub notes: Vec<String>,
    /// The fault, in seconds since the drill started.
    pub fault_at_s: f64,
    pub writes_per_100ms: Vec<Bucket>,
    /// Where the chart was written (`--chart`).
    pub chart: Option<PathBuf>,
    pub duration_s: f64,
}

/// What the `--via` writers (and reader, for HAProxy) saw, accounted like
/// the target's; it does not change the drill's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct ViaReport {
    /// As given: `haproxy`, `master` or `HOST:PORT`.
    pub via: String,
    pub endpoint: Addr,
    pub writes_acked: u64,
    pub writes_failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub unknown_outcomes: u64,
    pub unknown_applied: u64,
    pub lost_writes: u64,
    pub lost_examples: Vec<String>,
    pub lost_acked_between_ms: Option<(f64, f64)>,
    pub duplicated_writes: u64,
    pub duplicate_examples: Vec<String>,
    /// Longest gap between acknowledged writes, counting the end of writing
    /// as one: a path that never came back is out until the writers stop.
    pub write_outage_ms: f64,
    /// That gap ran until the writers stopped (at least that long, then).
    pub out_at_end: bool,
    pub first_ack_after_promotion_ms: Option<f64>,
    pub reads: Option<ReadStats>,
}

/// Width of one chart bucket.
pub const BUCKET_MS: f64 = 100.0;

/// Acknowledged writes and errors in one 100 ms bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub acked: u64,
    pub errors: u64,
}

/// Counts `acks` and `errors` (ms since the start) per [`BUCKET_MS`],
/// from 0 to `end_ms`.
pub fn buckets(acks: &[f64], errors: &[f64], end_ms: f64) -> Vec<Bucket> {
    let n = (end_ms / BUCKET_MS).ceil().max(1.0) as usize;
    let mut out = vec![Bucket::default(); n];
    let slot = |t: f64| ((t / BUCKET_MS) as usize).min(n - 1);
    for t in acks {
        out[slot(*t)].acked += 1;
    }
    for t in errors {
        out[slot(*t)].errors += 1;
    }
    out
}

/// The `--via` path as it ended: its name, endpoint and when its writers
/// were told to stop (ms since the start).
pub(crate) struct ViaEnd<'a> {
    pub via: &'a str,
    pub endpoint: &'a str,
    pub ended_ms: f64,
}

/// The `--via` path's figures, from its writers' logs and final state.
pub(crate) fn via_report(
    v: ViaEnd<'_>,
    logs: &[WriterLog],
    states: &[FinalState],
    reads: Option<ReadStats>,
    fault_at: f64,
    promoted_ms: Option<f64>,
) -> ViaReport {
    let a = account::account_all(
        &logs.iter().map(|l| l.writes.as_slice()).collect::<Vec<_>>(),
        states,
    );
    let (errors, _) = errors_of(logs);
    let acks = acked_times(logs);
    let first_after = promoted_ms.and_then(|p| acks.iter().find(|a| **a > p).map(|f| f - p));
    let mut points = acks.clone();
    if acks.last().is_none_or(|l| *l < v.ended_ms) {
        points.push(v.ended_ms);
    }
    let gap = longest_gap(&points);
    let (applied, _) = a.unknown_applied();
    ViaReport {
        via: v.via.to_string(),
        endpoint: v.endpoint.to_string(),
        writes_acked: a.acked,
        writes_failed: errors.values().sum(),
        errors,
        unknown_outcomes: a.unknown,
        unknown_applied: applied,
        lost_writes: a.lost,
        lost_acked_between_ms: min_max(&a.lost_acked_at_ms)
            .map(|(f, l)| (f - fault_at, l - fault_at)),
        lost_examples: a.lost_examples,
        duplicated_writes: a.duplicated,
        duplicate_examples: a.duplicate_examples,
        write_outage_ms: gap.map_or(0.0, |(s, e)| e - s),
        out_at_end: gap.is_some_and(|(s, e)| e == v.ended_ms && e - s > PAUSE_MS),
        first_ack_after_promotion_ms: first_after,
        reads,
    }
}

fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let min = v.iter().copied().min_by(f64::total_cmp)?;
    let max = v.iter().copied().max_by(f64::total_cmp)?;
    Some((min, max))
}

/// Every acknowledgement's time (ms since the start), sorted.
pub(crate) fn acked_times(logs: &[WriterLog]) -> Vec<f64> {
    let mut acks: Vec<f64> = logs
        .iter()
        .flat_map(|l| l.writes.iter())
        .filter(|w| matches!(w.outcome, Outcome::Acked(_)))
        .map(|w| w.at_ms)
        .collect();
    acks.sort_by(f64::total_cmp);
    acks
}

/// What a partition's lost writes mean.
pub fn partition_note(lost: u64, min_replicas: Option<u32>) -> String {
    let min = match min_replicas {
        Some(0) => "min-replicas-to-write is 0 on this master (Redis's default, as in the local topology), so nothing stopped it".to_string(),
        Some(n) => format!("min-replicas-to-write is {n} on this master: it refuses writes once its replicas have been silent for min-replicas-max-lag (10 s), which bounds the window, not closes it"),
        None => "the master did not report min-replicas-to-write".to_string(),
    };
    if lost == 0 {
        format!("partition: no acknowledged write was lost; {min}")
    } else {
        format!(
            "partition: {lost} acknowledged writes lost, the expected finding with asynchronous replication: the cut-off master went on acknowledging writes its replicas never received, and discarded them when it rejoined as a replica; {min}"
        )
    }
}

/// A gap between acknowledged writes longer than this is a pause.
pub const PAUSE_MS: f64 = 100.0;

/// Every gap of more than `min_ms` between consecutive `acks` (sorted).
pub fn gaps_over(acks: &[f64], min_ms: f64) -> Vec<(f64, f64)> {
    acks.windows(2)
        .filter(|w| w[1] - w[0] > min_ms)
        .map(|w| (w[0], w[1]))
        .collect()
}

/// The longest gap between consecutive `acks` (sorted): (start, end).
pub fn longest_gap(acks: &[f64]) -> Option<(f64, f64)> {
    acks.windows(2)
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
}

/// Errors by kind and their times (ms since the start), from the writes
/// that were not acknowledged and the connections that failed.
pub(crate) fn errors_of(logs: &[WriterLog]) -> (BTreeMap<String, u64>, Vec<f64>) {
    let mut kinds = BTreeMap::new();
    let mut at = Vec::new();
    for l in logs {
        let failed = l.writes.iter().filter_map(|w| match &w.outcome {
            Outcome::Acked(_) => None,
            Outcome::Refused(k) | Outcome::Unknown(k) => Some((w.at_ms, k)),
        });
        let connects = l.connect_failures.iter().map(|(t, k)| (*t, k));
        for (t, k) in failed.chain(connects) {
            *kinds.entry(k.clone()).or_insert(0) += 1;
            at.push(t);
        }
    }
    (kinds, at)
}

/// Times the report is built from: ms since the start unless named.
pub(crate) struct Times {
    pub fault_at: f64,
    /// Since the fault.
    pub proxy_switched_ms: Option<f64>,
    /// The replica seen answering ROLE master, and when.
    pub promoted: Option<(Addr, f64)>,
    /// Since the fault.
    pub old_master_back_ms: Option<f64>,
    pub duration_s: f64,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    cfg: &DrillConfig,
    logs: &[WriterLog],
    a: Accounting,
    events: Vec<Event>,
    t: &Times,
    old_master: Addr,
    new_master: Option<Addr>,
    masters_at_end: Vec<Addr>,
) -> DrillReport {
    let (errors, err_ms) = errors_of(logs);
    let promoted_ms = t.promoted.as_ref().map(|p| p.1);
    let acks = acked_times(logs);
    let gap = longest_gap(&acks);
    let first_after = promoted_ms.and_then(|p| acks.iter().find(|a| **a > p).copied());
    let since_fault = |v: f64| v - t.fault_at;
    let measured = Measured {
        promotion_seen_ms: promoted_ms.map(since_fault),
        first_ack_after_promotion_ms: first_after.map(since_fault),
        // Only a real pause is an outage on the timeline (a replica kill
        // has none, just its slowest write).
        outage_ms: gap
            .filter(|(s, e)| e - s > PAUSE_MS)
            .map(|(s, e)| (since_fault(s), since_fault(e))),
        old_master_replica_ms: t.old_master_back_ms,
        proxy_switched_ms: t.proxy_switched_ms,
    };
    let failures = verdict::failures(&Facts {
        lost: a.lost,
        duplicated: a.duplicated,
        masters_at_end: masters_at_end.clone(),
        expect: cfg.fault.expect(),
        old_master: old_master.clone(),
        new_master: new_master.clone(),
        promotion_seen: t.promoted.as_ref().map(|p| p.0.clone()),
        ran_without_reply: if cfg.fault.unanswered_writes_did_not_run() {
            a.unknown_writes
                .iter()
                .filter(|u| u.applied != Some(false))
                .count() as u64
        } else {
            0
        },
    });
    let (applied, not_applied) = a.unknown_applied();
    let end_ms = t.duration_s * 1000.0;
    let lost_between = min_max(&a.lost_acked_at_ms).map(|(f, l)| (since_fault(f), since_fault(l)));
    let mut notes = crate::explain::sentinel_notes(&events);
    notes.extend(crate::explain::persistence_note(
        cfg.fault,
        a.lost,
        lost_between,
    ));
    DrillReport {
        target: cfg.target.clone(),
        fault: cfg.fault,
        failover_expected: cfg.fault.failover_expected(),
        timeline: timeline::rows(&events, &old_master, &measured),
        first_events: timeline::first_per_channel(&events),
        switch_master_after_ms: events
            .iter()
            .filter(|e| e.kind == Kind::SwitchMaster && e.at_ms >= 0.0)
            .map(|e| e.at_ms)
            .min_by(f64::total_cmp),
        events,
        old_master,
        new_master,
        writers: cfg.writers,
        writes_acked: a.acked,
        writes_failed: errors.values().sum(),
        errors_in_outage: gap.map_or(0, |(s, e)| {
            err_ms.iter().filter(|t| **t >= s && **t <= e).count() as u64
        }),
        writes_per_100ms: buckets(&acks, &err_ms, end_ms),
        errors,
        lost_writes: a.lost,
        lost_acked_between_ms: lost_between,
        lost_examples: a.lost_examples,
        duplicated_writes: a.duplicated,
        duplicate_examples: a.duplicate_examples,
        unknown_outcomes: a.unknown,
        unknown_applied: applied,
        unknown_not_applied: not_applied,
        unknown_writes: a.unknown_writes,
        promoted_after_ms: promoted_ms.map(since_fault),
        proxy_switched_after_ms: t.proxy_switched_ms,
        proxy_switches: vec![],
        reads: None,
        via: None,
        first_ack_after_promotion_ms: promoted_ms.and_then(|p| first_after.map(|f| f - p)),
        write_outage_ms: gap.map_or(0.0, |(s, e)| e - s),
        outage_window_s: gap.map(|(s, e)| (s / 1000.0, e / 1000.0)),
        pauses: gaps_over(&acks, PAUSE_MS)
            .into_iter()
            .map(|(s, e)| (since_fault(s), since_fault(e)))
            .collect(),
        masters_at_end,
        failures,
        notes,
        fault_at_s: t.fault_at / 1000.0,
        chart: None,
        duration_s: t.duration_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_between_acknowledgements_is_the_outage() {
        assert_eq!(longest_gap(&[]), None);
        assert_eq!(longest_gap(&[1.0]), None);
        assert_eq!(longest_gap(&[1.0, 2.0, 50.0, 51.0]), Some((2.0, 50.0)));
    }

    #[test]
    fn every_long_gap_is_a_pause() {
        let acks = [0.0, 10.0, 300.0, 310.0, 900.0, 1000.0];
        assert_eq!(gaps_over(&acks, 100.0), [(10.0, 300.0), (310.0, 900.0)]);
        assert_eq!(gaps_over(&acks[..2], 100.0), []);
    }
}
