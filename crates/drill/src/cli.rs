//! `redis-ha drill` command line: arguments, the human report (summary,
//! timeline beside the original's, unknown outcomes), JSON, chart, exit code.

use crate::run::{run_drill, DrillConfig, DrillReport};
use crate::timeline::Row;
use crate::verdict;
use crate::Fault;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Shown after the options in `--help`.
const EXIT_STATUS: &str = "\
Writers: each sends RPUSH of a unique value to its own list, then INCR of its own counter, one
request at a time; afterwards the new master's lists and counters are compared with what was
acknowledged (lost, duplicated, and each unknown outcome: applied or not).

Exit status: 0 passed; 1 the drill could not run; 2 an acknowledged write was lost, a write was
applied twice, two masters remained at the end (split brain), or the fault needed a failover and
none happened.";

/// Inject a fault while writers run, then report the outage, client errors,
/// the Sentinel timeline beside the original's expected one, and what was
/// lost, applied twice, or had an unknown outcome.
///
/// Each writer sends RPUSH of a unique value to its own list, then INCR of
/// its own counter, one request at a time; at the end the new master's
/// lists and counters are compared with what was acknowledged.
///
/// Exit status: 0 passed; 1 the drill could not run; 2 an acknowledged write
/// was lost, a write was applied twice, two masters remained at the end
/// (split brain), or the fault needed a failover and none happened.
///
/// Examples:
///   redis-ha drill                                  # kill -9 the local master, writing through the proxy
///   redis-ha drill --fault failover --writers 16    # planned SENTINEL FAILOVER
///   redis-ha drill --fault kill-sentinel            # one sentinel dies, then the master
///   redis-ha drill --chart drill.svg                # acknowledged writes and errors per 100 ms
///   redis-ha drill --target 127.0.0.1:7379          # through another endpoint (e.g. HAProxy)
#[derive(clap::Args, Debug)]
#[command(after_help = EXIT_STATUS)]
pub struct DrillArgs {
    /// Fault to inject (on the current master unless named otherwise).
    #[arg(long, value_enum, default_value = "kill")]
    pub fault: Fault,
    /// Endpoint the writers use (default: the local topology's proxy write endpoint).
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// State dir of the local topology (for kill/stop and to restore the node).
    #[arg(long, default_value = ".redis-ha")]
    pub state_dir: PathBuf,
    /// Sentinels to watch instead of the local topology's (with --fault failover only).
    #[arg(long = "sentinel", value_name = "HOST:PORT")]
    pub sentinels: Vec<String>,
    #[arg(long, default_value = "mymaster")]
    pub master_name: String,
    /// Password of the Redis nodes (default: the local topology's).
    #[arg(long, env = "REDIS_HA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Password of the sentinels, if they have one (default: the local
    /// topology's).
    #[arg(long, env = "REDIS_HA_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    /// Concurrent writer connections (each: one RPUSH or INCR at a time).
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Writing before the fault.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub before: Duration,
    /// Writing after writes resume.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub after: Duration,
    /// Give up waiting for the failover / for writes to resume after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_wait: Duration,
    /// Client timeout per request (keep it above the proxy's --failover-hold).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Leave a killed node dead / a stopped node stopped.
    #[arg(long)]
    pub no_restore: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Draw acknowledged writes and errors per 100 ms, with the fault and
    /// +switch-master marked, to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}

pub async fn run(a: DrillArgs) -> anyhow::Result<u8> {
    let cfg = config(&a)?;
    let mut r = run_drill(cfg).await?;
    if let Some(path) = &a.chart {
        match crate::chart::write(path, &r) {
            Ok(()) => r.chart = Some(path.clone()),
            // The numbers are out either way; a missing font is no failed drill.
            Err(e) => eprintln!("warning: no chart: {e:#}"),
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", render(&r));
    }
    Ok(verdict::exit_code(&r.failures))
}

fn config(a: &DrillArgs) -> anyhow::Result<DrillConfig> {
    let local = redis_ha_local::Options::load(&a.state_dir).ok();
    let sentinels = if a.sentinels.is_empty() {
        local.as_ref().map(|o| o.sentinel_addrs()).ok_or_else(|| {
            anyhow::anyhow!(
                "no topology in {} and no --sentinel given: run `redis-ha up --detach` first",
                a.state_dir.display()
            )
        })?
    } else {
        a.sentinels.clone()
    };
    let spec = local.as_ref().map(|o| &o.spec);
    Ok(DrillConfig {
        target: a
            .target
            .clone()
            .unwrap_or_else(|| "127.0.0.1:6379".to_string()),
        state_dir: local.as_ref().map(|_| a.state_dir.clone()),
        sentinels,
        master_name: spec
            .map(|s| s.master_name.clone())
            .unwrap_or(a.master_name.clone()),
        password: a
            .password
            .clone()
            .or_else(|| spec.and_then(|s| s.password.clone())),
        sentinel_password: a
            .sentinel_password
            .clone()
            .or_else(|| spec.and_then(|s| s.sentinel_password.clone())),
        fault: a.fault,
        writers: a.writers,
        before: a.before,
        after: a.after,
        max_wait: a.max_wait,
        request_timeout: a.timeout,
        restore: !a.no_restore,
        progress: !a.json && std::io::stderr().is_terminal(),
    })
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
        .map(|(s, e)| format!("T+{:.2}..{:.2} s", s / 1000.0, e / 1000.0))
        .collect();
    format!(
        "{}, {total:.0} ms in all: {}",
        r.pauses.len(),
        each.join(", ")
    )
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
    let verdict = if r.failures.is_empty() {
        "passed".to_string()
    } else {
        let why: Vec<String> = r.failures.iter().map(|f| f.describe()).collect();
        format!("FAILED: {}", why.join("; "))
    };
    vec![
        (
            "master",
            format!(
                "{} -> {}",
                r.old_master,
                r.new_master.clone().unwrap_or_else(|| "none".into())
            ),
        ),
        ("promoted after fault", ms(r.promoted_after_ms)),
        ("+switch-master after fault", ms(r.switch_master_after_ms)),
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
        (
            "lost acknowledged writes",
            with_examples(r.lost_writes, &r.lost_examples),
        ),
        (
            "duplicated writes",
            with_examples(r.duplicated_writes, &r.duplicate_examples),
        ),
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
    ]
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
                .map(|m| format!("T+{:.2} s", m / 1000.0))
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
            format!("T+{:.2} s", e.at_ms / 1000.0),
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
            format!("T+{:.2} s", (u.at_ms / 1000.0) - r.fault_at_s),
            applied.to_string(),
        ]);
    }
    let more = r.unknown_writes.len().saturating_sub(UNKNOWN_ROWS);
    if more > 0 {
        t.add_row(vec![format!("... {more} more (--json lists all)")]);
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

    fn report() -> DrillReport {
        let measured = Measured {
            promotion_seen_ms: Some(5430.0),
            ..Measured::default()
        };
        DrillReport {
            target: "127.0.0.1:6379".into(),
            fault: Fault::Kill,
            old_master: "127.0.0.1:6381".into(),
            new_master: Some("127.0.0.1:6382".into()),
            writers: 2,
            writes_acked: 1000,
            writes_failed: 2,
            errors: [("unknown_outcome".to_string(), 2)].into(),
            lost_writes: 1,
            lost_examples: vec!["RPUSH 0:7".into()],
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
            // The original's guess beside the measured value, row by row.
            "T+5 s",
            "T+5.43 s",
            "not seen",
            // Unknown outcomes, timed from the fault.
            "Rpush #9",
            "T+0.01 s",
            "cannot tell",
        ] {
            assert!(out.contains(want), "no {want:?} in\n{out}");
        }
    }
}
