//! The drill report as text: the summary, the timeline beside the
//! original's, the Sentinel events, the unknown outcomes, the `--via` path
//! side by side, and the `--fault all` summary table.

use crate::report::DrillReport;
use crate::timeline::Row;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

/// One line of the `--fault all` summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryRow {
    pub fault: &'static str,
    /// The longest gap between acknowledged writes.
    pub outage_ms: f64,
    pub errors: u64,
    pub unknown_outcomes: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// From the fault to the proxy adopting the new master.
    pub proxy_switched_ms: Option<f64>,
    pub read_errors: Option<u64>,
    pub stale_reads: Option<u64>,
    /// `passed`, or `FAILED: ` and why.
    pub verdict: String,
}

/// `passed`, or `FAILED: ` and every reason.
fn verdict_text(r: &DrillReport) -> String {
    if r.failures.is_empty() {
        return "passed".into();
    }
    let why: Vec<String> = r.failures.iter().map(|f| f.describe()).collect();
    format!("FAILED: {}", why.join("; "))
}

/// The summary of `--fault all`, one row per drill.
pub fn all_rows(reports: &[DrillReport]) -> Vec<SummaryRow> {
    reports
        .iter()
        .map(|r| SummaryRow {
            fault: r.fault.name(),
            outage_ms: r.write_outage_ms,
            errors: r.writes_failed,
            unknown_outcomes: r.unknown_outcomes,
            lost: r.lost_writes,
            duplicated: r.duplicated_writes,
            proxy_switched_ms: r.proxy_switched_after_ms,
            read_errors: r.reads.as_ref().map(|x| x.errors),
            stale_reads: r.reads.as_ref().map(|x| x.stale),
            verdict: verdict_text(r),
        })
        .collect()
}

pub fn summary_table(rows: &[SummaryRow]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "fault",
        "outage",
        "errors",
        "unknown outcomes",
        "lost",
        "duplicated",
        "proxy switched",
        "read errors / stale",
        "verdict",
    ]);
    for r in rows {
        t.add_row(vec![
            r.fault.to_string(),
            format!("{:.0} ms", r.outage_ms),
            r.errors.to_string(),
            r.unknown_outcomes.to_string(),
            r.lost.to_string(),
            r.duplicated.to_string(),
            r.proxy_switched_ms
                .map(|v| format!("T+{:.0} ms", v))
                .unwrap_or_else(|| "-".into()),
            match (r.read_errors, r.stale_reads) {
                (Some(e), Some(s)) => format!("{e} / {s}"),
                _ => "-".into(),
            },
            r.verdict.clone(),
        ]);
    }
    t
}

/// `T+1.23 s` for ms since the fault; before it, `T-0.05 s` (and never
/// `T+-0.00 s`).
pub fn t_plus(ms: f64) -> String {
    let s = ms / 1000.0;
    if format!("{s:.2}") == "-0.00" || s >= 0.0 {
        format!("T+{:.2} s", s.max(0.0))
    } else {
        format!("T-{:.2} s", -s)
    }
}

fn proxy_switch(r: &DrillReport) -> String {
    match (r.proxy_switched_after_ms, r.proxy_switches.len()) {
        (Some(v), 1) => format!("{v:.0} ms"),
        (Some(v), n) => format!("{v:.0} ms (first of {n} failovers it recorded)"),
        (None, 0) => "not seen (no failover in its /api/status, or no --admin)".into(),
        (None, _) => "never (its failover did not adopt a master)".into(),
    }
}

fn lost(r: &DrillReport) -> String {
    let n = with_examples(r.lost_writes, &r.lost_examples);
    match r.lost_acked_between_ms {
        Some((a, b)) => format!("{n}; acknowledged {}..{}", t_plus(a), t_plus(b)),
        None => n,
    }
}

fn reads(r: &DrillReport) -> String {
    let Some(x) = &r.reads else {
        return "no reader (--read HOST:PORT)".into();
    };
    let kinds: Vec<String> = x
        .errors_by_kind
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let kinds = if kinds.is_empty() {
        String::new()
    } else {
        format!(" ({})", kinds.join(", "))
    };
    format!(
        "{} through {}, {} errors{kinds}, {} stale (at most {} increments behind), longest gap {:.0} ms",
        x.reads, x.endpoint, x.errors, x.stale, x.max_behind, x.longest_gap_ms
    )
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0} ms"))
        .unwrap_or_else(|| "never".into())
}

/// Pauses in writes as `N, total X ms: T+a..b s, ...`.
fn pauses(r: &DrillReport) -> String {
    if r.pauses.is_empty() {
        return "none".into();
    }
    let total: f64 = r.pauses.iter().map(|(s, e)| e - s).sum();
    let each: Vec<String> = r
        .pauses
        .iter()
        .map(|(s, e)| format!("{}..{:.2} s", t_plus(*s).trim_end_matches(" s"), e / 1000.0))
        .collect();
    format!(
        "{}, {total:.0} ms in all: {}",
        r.pauses.len(),
        each.join(", ")
    )
}

/// Whether the master changed, and whether the fault wanted it to.
fn failover_line(r: &DrillReport) -> String {
    let moved = r.new_master.as_ref().is_some_and(|m| *m != r.old_master);
    let promoted = r.promoted_after_ms.is_some();
    match (r.failover_expected, moved || promoted) {
        (true, true) => "yes (expected)".into(),
        (true, false) => "NONE, though the fault needs one".into(),
        (false, false) => format!("none, as expected for {}", r.fault.name()),
        (false, true) => "YES, where none may happen".into(),
    }
}

fn with_examples(n: u64, examples: &[String]) -> String {
    if examples.is_empty() {
        n.to_string()
    } else {
        format!("{n} e.g. {}", examples.join(", "))
    }
}

fn summary_rows(r: &DrillReport) -> Vec<(&'static str, String)> {
    let errors = if r.errors.is_empty() {
        "none".to_string()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = verdict_text(r);
    let notes = r.notes.iter().map(|n| ("note", n.clone()));
    let mut rows = vec![
        (
            "master",
            format!(
                "{} -> {}",
                r.old_master,
                r.new_master.clone().unwrap_or_else(|| "none".into())
            ),
        ),
        ("failover", failover_line(r)),
        ("promoted after fault", ms(r.promoted_after_ms)),
        ("+switch-master after fault", ms(r.switch_master_after_ms)),
        ("proxy switched after fault", proxy_switch(r)),
        (
            "first ack after promotion",
            ms(r.first_ack_after_promotion_ms),
        ),
        ("longest write gap", format!("{:.0} ms", r.write_outage_ms)),
        ("write pauses > 100 ms", pauses(r)),
        ("writes acknowledged", r.writes_acked.to_string()),
        ("client errors", format!("{} ({errors})", r.writes_failed)),
        (
            "unknown outcomes",
            format!(
                "{} ({} applied, {} not, {} cannot tell)",
                r.unknown_outcomes,
                r.unknown_applied,
                r.unknown_not_applied,
                r.unknown_outcomes
                    .saturating_sub(r.unknown_applied + r.unknown_not_applied)
            ),
        ),
        ("lost acknowledged writes", lost(r)),
        (
            "duplicated writes",
            with_examples(r.duplicated_writes, &r.duplicate_examples),
        ),
        ("reads (read endpoint)", reads(r)),
        ("masters at the end", r.masters_at_end.join(", ")),
        (
            "writers / duration",
            format!("{} / {:.1} s", r.writers, r.duration_s),
        ),
        (
            "chart",
            r.chart
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none (--chart FILE)".into()),
        ),
        ("verdict", verdict),
    ];
    rows.extend(notes);
    rows
}

fn timeline_table(rows: &[Row]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["step", "original (expected)", "measured", "from"]);
    for r in rows {
        t.add_row(vec![
            r.label.to_string(),
            r.expected_s
                .map(|s| format!("T+{s:.0} s"))
                .unwrap_or_else(|| "-".into()),
            r.measured_ms
                .map(t_plus)
                .unwrap_or_else(|| "not seen".into()),
            r.source.clone(),
        ]);
    }
    t
}

/// The first event of each Sentinel channel after the fault.
fn events_table(r: &DrillReport) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["first event", "at", "sentinel", "payload"]);
    for e in &r.first_events {
        t.add_row(vec![
            e.channel.clone(),
            t_plus(e.at_ms),
            e.sentinel.clone(),
            e.payload.clone(),
        ]);
    }
    t
}

/// At most this many unknown outcomes are listed one by one (JSON: all).
const UNKNOWN_ROWS: usize = 16;

fn unknown_table(r: &DrillReport) -> Option<Table> {
    if r.unknown_writes.is_empty() {
        return None;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "unknown outcome",
        "write",
        "seen as",
        "at",
        "applied?",
    ]);
    for u in r.unknown_writes.iter().take(UNKNOWN_ROWS) {
        let applied = match u.applied {
            Some(true) => "yes",
            Some(false) => "no",
            None => "cannot tell",
        };
        t.add_row(vec![
            format!("writer {}", u.writer),
            format!("{:?} #{}", u.command, u.seq),
            u.kind.clone(),
            t_plus(u.at_ms - r.fault_at_s * 1000.0),
            applied.to_string(),
        ]);
    }
    let more = r.unknown_writes.len().saturating_sub(UNKNOWN_ROWS);
    if more > 0 {
        t.add_row(vec![format!("... {more} more (--json lists all)")]);
    }
    Some(t)
}

/// `--via`: the two paths side by side.
fn via_table(r: &DrillReport) -> Option<Table> {
    let v = r.via.as_ref()?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "same load, same run".to_string(),
        format!("target {}", r.target),
        format!("via {} ({})", v.via, v.endpoint),
    ]);
    let errs = |e: &std::collections::BTreeMap<String, u64>| {
        let k: Vec<String> = e.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        if k.is_empty() {
            "none".to_string()
        } else {
            k.join(", ")
        }
    };
    let window = |w: Option<(f64, f64)>| {
        w.map(|(a, b)| format!("; acknowledged {}..{}", t_plus(a), t_plus(b)))
            .unwrap_or_default()
    };
    let read = |x: &Option<crate::observe::ReadStats>| match x {
        Some(x) => format!("{} reads, {} errors, {} stale", x.reads, x.errors, x.stale),
        None => "-".into(),
    };
    let rows: [(&str, String, String); 8] = [
        (
            "writes acknowledged",
            r.writes_acked.to_string(),
            v.writes_acked.to_string(),
        ),
        (
            "client errors",
            format!("{} ({})", r.writes_failed, errs(&r.errors)),
            format!("{} ({})", v.writes_failed, errs(&v.errors)),
        ),
        (
            "unknown outcomes",
            r.unknown_outcomes.to_string(),
            v.unknown_outcomes.to_string(),
        ),
        (
            "lost acknowledged writes",
            format!("{}{}", r.lost_writes, window(r.lost_acked_between_ms)),
            format!("{}{}", v.lost_writes, window(v.lost_acked_between_ms)),
        ),
        (
            "duplicated writes",
            r.duplicated_writes.to_string(),
            v.duplicated_writes.to_string(),
        ),
        (
            "longest write gap",
            format!("{:.0} ms", r.write_outage_ms),
            if v.out_at_end {
                format!(
                    "{:.0} ms, still out when the writers stopped",
                    v.write_outage_ms
                )
            } else {
                format!("{:.0} ms", v.write_outage_ms)
            },
        ),
        (
            "first ack after promotion",
            ms(r.first_ack_after_promotion_ms),
            ms(v.first_ack_after_promotion_ms),
        ),
        ("reads", read(&r.reads), read(&v.reads)),
    ];
    for (k, a, b) in rows {
        t.add_row(vec![k.to_string(), a, b]);
    }
    Some(t)
}

/// The human report: summary, timeline, unknown outcomes.
pub fn render(r: &DrillReport) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "drill",
        &format!("{} through {}", r.fault.name(), r.target),
    ]);
    for (k, v) in summary_rows(r) {
        t.add_row(vec![k.to_string(), v]);
    }
    let mut out = format!(
        "{t}\ntimeline (T = the fault):\n{}\nSentinel events, first of each kind:\n{}",
        timeline_table(&r.timeline),
        events_table(r)
    );
    if let Some(v) = via_table(r) {
        out.push_str(&format!("\n{v}"));
    }
    if let Some(u) = unknown_table(r) {
        out.push_str(&format!("\n{u}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::UnknownWrite;
    use crate::timeline::{rows, Measured};
    use crate::verdict::Failure;
    use crate::writer::Command;
    use crate::Fault;
    fn report() -> DrillReport {
        let measured = Measured {
            promotion_seen_ms: Some(5430.0),
            ..Measured::default()
        };
        DrillReport {
            target: "127.0.0.1:6379".into(),
            fault: Fault::Kill,
            failover_expected: true,
            old_master: "127.0.0.1:6381".into(),
            new_master: Some("127.0.0.1:6382".into()),
            writers: 2,
            writes_acked: 1000,
            writes_failed: 2,
            errors: [("unknown_outcome".to_string(), 2)].into(),
            lost_writes: 1,
            lost_examples: vec!["RPUSH 0:7".into()],
            lost_acked_between_ms: Some((-0.001, 12.0)),
            duplicated_writes: 0,
            duplicate_examples: vec![],
            unknown_outcomes: 2,
            unknown_applied: 1,
            unknown_not_applied: 0,
            unknown_writes: [(Command::Rpush, Some(true)), (Command::Incr, None)]
                .into_iter()
                .enumerate()
                .map(|(i, (command, applied))| UnknownWrite {
                    writer: i,
                    command,
                    seq: 9,
                    kind: "unknown_outcome".into(),
                    at_ms: 3010.0,
                    applied,
                })
                .collect(),
            promoted_after_ms: Some(5430.0),
            proxy_switched_after_ms: Some(5480.0),
            proxy_switches: vec![],
            reads: None,
            via: None,
            switch_master_after_ms: None,
            first_ack_after_promotion_ms: None,
            write_outage_ms: 5400.0,
            outage_window_s: Some((3.0, 8.4)),
            errors_in_outage: 2,
            pauses: vec![(0.0, 5400.0)],
            timeline: rows(&[], "127.0.0.1:6381", &measured),
            first_events: vec![],
            events: vec![],
            masters_at_end: vec!["127.0.0.1:6382".into()],
            failures: vec![Failure::Lost { writes: 1 }],
            notes: vec![],
            fault_at_s: 3.0,
            writes_per_100ms: vec![],
            chart: None,
            duration_s: 12.0,
        }
    }

    #[test]
    fn the_report_shows_the_verdict_the_timeline_and_each_unknown_outcome() {
        let out = render(&report());
        for want in [
            "kill through 127.0.0.1:6379",
            "FAILED: 1 acknowledged writes lost",
            "1 e.g. RPUSH 0:7",
            "2 (1 applied, 0 not, 1 cannot tell)",
            "1, 5400 ms in all: T+0.00..5.40 s",
            // Never "T+-0.00 s".
            "acknowledged T+0.00 s..T+0.01 s",
            "5480 ms",
            "no reader",
            // The original's guess beside the measured value, row by row.
            "T+5 s",
            "T+5.43 s",
            "not seen",
            // Unknown outcomes, timed from the fault.
            "Rpush #9",
            "T+0.01 s",
            "cannot tell",
            "yes (expected)",
        ] {
            assert!(out.contains(want), "no {want:?} in\n{out}");
        }
    }

    #[test]
    fn times_before_the_fault_are_t_minus_and_zero_has_no_sign() {
        assert_eq!(t_plus(-0.001), "T+0.00 s");
        assert_eq!(t_plus(-4.9), "T+0.00 s");
        assert_eq!(t_plus(-50.0), "T-0.05 s");
        assert_eq!(t_plus(1234.0), "T+1.23 s");
    }

    #[test]
    fn a_drill_without_quorum_reports_no_failover_as_expected() {
        let r = DrillReport {
            fault: Fault::KillSentinels,
            failover_expected: false,
            new_master: Some("127.0.0.1:6381".into()),
            promoted_after_ms: None,
            failures: vec![],
            ..report()
        };
        assert_eq!(failover_line(&r), "none, as expected for kill-sentinels");
        let promoted = DrillReport {
            promoted_after_ms: Some(1500.0),
            ..r
        };
        assert_eq!(failover_line(&promoted), "YES, where none may happen");
    }

    #[test]
    fn the_summary_of_all_faults_has_one_row_each_and_the_verdicts() {
        let failed = report();
        let passed = DrillReport {
            fault: Fault::Switchover,
            write_outage_ms: 80.4,
            writes_failed: 0,
            unknown_outcomes: 0,
            lost_writes: 0,
            failures: vec![],
            ..report()
        };
        let rows = all_rows(&[passed, failed]);
        assert_eq!(
            rows,
            [
                SummaryRow {
                    fault: "switchover",
                    outage_ms: 80.4,
                    errors: 0,
                    unknown_outcomes: 0,
                    lost: 0,
                    duplicated: 0,
                    proxy_switched_ms: Some(5480.0),
                    read_errors: None,
                    stale_reads: None,
                    verdict: "passed".into(),
                },
                SummaryRow {
                    fault: "kill",
                    outage_ms: 5400.0,
                    errors: 2,
                    unknown_outcomes: 2,
                    lost: 1,
                    duplicated: 0,
                    proxy_switched_ms: Some(5480.0),
                    read_errors: None,
                    stale_reads: None,
                    verdict: "FAILED: 1 acknowledged writes lost".into(),
                },
            ]
        );
        let table = summary_table(&rows).to_string();
        for want in ["unknown outcomes", "switchover", "80 ms", "FAILED"] {
            assert!(table.contains(want), "no {want:?} in\n{table}");
        }
    }
}
