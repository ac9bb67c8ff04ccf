//! `redis-ha drill` command line: arguments, the human report (summary,
//! timeline beside the original's, unknown outcomes), JSON, chart, exit
//! code; `--fault all` runs every fault in turn and prints one summary.

use crate::run::{run_drill, DrillConfig, DrillReport};
use crate::timeline::Row;
use crate::verdict;
use crate::Fault;
use anyhow::Context;
use clap::builder::PossibleValue;
use clap::ValueEnum;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use redis_ha_local::Topology;
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `--fault`: one fault, or all of them in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultChoice {
    One(Fault),
    All,
}

impl FaultChoice {
    const VARIANTS: [FaultChoice; 10] = [
        FaultChoice::One(Fault::Kill),
        FaultChoice::One(Fault::Stop),
        FaultChoice::One(Fault::Failover),
        FaultChoice::One(Fault::Switchover),
        FaultChoice::One(Fault::KillReplica),
        FaultChoice::One(Fault::KillSentinel),
        FaultChoice::One(Fault::KillSentinels),
        FaultChoice::One(Fault::RollingRestart),
        FaultChoice::One(Fault::Partition),
        FaultChoice::All,
    ];
}

impl ValueEnum for FaultChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::VARIANTS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            FaultChoice::One(f) => f.to_possible_value(),
            FaultChoice::All => Some(PossibleValue::new("all").help(
                "Every fault above in turn on the local topology (healthy again between them), then one summary table",
            )),
        }
    }
}

/// Shown after the options in `--help`.
const EXIT_STATUS: &str = "\
Writers: each sends RPUSH of a unique value to its own list, then INCR of its own counter, one
request at a time; afterwards the new master's lists and counters are compared with what was
acknowledged (lost, duplicated, and each unknown outcome: applied or not).

Exit status: 0 passed; 1 the drill could not run; 2 an acknowledged write was lost, a write was
applied twice, two masters remained at the end (split brain), the fault needed a failover and
none happened, or a failover happened where none may (kill-replica, kill-sentinels: no quorum).
With --fault all: 2 when any drill failed.";

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
/// (split brain), the fault needed a failover and none happened, or one
/// happened where none may.
///
/// Examples:
///   redis-ha drill                                  # kill -9 the local master, writing through the proxy
///   redis-ha drill --fault failover --writers 16    # planned SENTINEL FAILOVER
///   redis-ha drill --fault kill-sentinel            # one sentinel dies, then the master
///   redis-ha drill --fault kill-sentinels           # two die, then the master: no failover may happen
///   redis-ha drill --fault switchover               # the zero-loss planned switch
///   redis-ha drill --fault rolling-restart          # replicas restarted in turn, switchover, old master
///   sudo redis-ha drill --fault partition           # master cut off from its replicas and sentinels (own topology)
///   redis-ha drill --fault all                      # every fault in turn, one summary table
///   redis-ha drill --chart drill.svg                # acknowledged writes and errors per 100 ms
///   redis-ha drill --target 127.0.0.1:7379          # through another endpoint (e.g. HAProxy)
///   redis-ha drill --via haproxy                    # the same load through HAProxy too, side by side
#[derive(clap::Args, Debug)]
#[command(after_help = EXIT_STATUS)]
pub struct DrillArgs {
    /// Fault to inject (on the current master unless named otherwise).
    #[arg(long, value_enum, default_value = "kill")]
    pub fault: FaultChoice,
    /// Endpoint the writers use (default: the local topology's proxy write endpoint).
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// The same load, at the same time, through another path for
    /// comparison, accounted apart (it does not change the verdict):
    /// HOST:PORT, `haproxy` (the drill starts HAProxy set up like the
    /// original, benchmarks/haproxy.cfg.in, on the drill's nodes, with a
    /// reader on its read frontend) or `master` (the master at the start,
    /// directly).
    #[arg(long, value_name = "HOST:PORT|haproxy|master")]
    pub via: Option<String>,
    /// The read endpoint a reader uses during the drill, counting read
    /// errors and stale reads (default: the local topology's proxy read
    /// endpoint when the writers use its write endpoint).
    #[arg(long = "read", value_name = "HOST:PORT")]
    pub read: Option<String>,
    /// The proxy's admin address, for when it switched (default: the local
    /// topology's proxy, when the writers use it).
    #[arg(long, value_name = "HOST:PORT")]
    pub admin: Option<String>,
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
    /// --fault partition: how long the master stays cut off (it must
    /// outlast Sentinel's failover: down-after is 2 s there).
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    pub heal_after: Duration,
    /// --fault partition: `min-replicas-to-write` on the drill's own
    /// master (1, as the local topology and the manifests run it; 0 is
    /// Redis's default).
    #[arg(long, default_value_t = 1)]
    pub min_replicas_to_write: u32,
    /// --fault partition: run the drill's proxy with `--write-ack` (e.g.
    /// replicas=1): a write is acknowledged only once a replica has it, so
    /// the cut-off master's writes get NOREPLICAS instead of being lost.
    #[arg(long, value_name = "replicas=N[,timeout=MS]", value_parser = redis_ha_proxy::data::ack::WriteAck::parse)]
    pub write_ack: Option<redis_ha_proxy::data::ack::WriteAck>,
    /// --fault partition: build the drill's own topology TLS only, as
    /// `up --tls` does (its own CA; the drill and its proxy speak TLS to
    /// every node and sentinel). The other faults take TLS from the local
    /// topology's state dir.
    #[arg(long)]
    pub tls: bool,
    /// Leave a killed node dead / a stopped node stopped (not with --fault all).
    #[arg(long)]
    pub no_restore: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Draw acknowledged writes and errors per 100 ms, with the fault and
    /// +switch-master marked, to FILE (.svg or .png); with --fault all one
    /// per fault, FILE's name suffixed with the fault's.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}

pub async fn run(a: DrillArgs) -> anyhow::Result<u8> {
    let fault = match a.fault {
        FaultChoice::One(f) => f,
        FaultChoice::All => return run_all(&a).await,
    };
    let r = drill_with_chart(&a, fault, a.chart.clone()).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", render(&r));
    }
    Ok(verdict::exit_code(&r.failures))
}

/// One drill, its chart drawn to `chart` if given.
async fn drill_with_chart(
    a: &DrillArgs,
    fault: Fault,
    chart: Option<PathBuf>,
) -> anyhow::Result<DrillReport> {
    let mut r = run_drill(config(a, fault)?).await?;
    if let Some(path) = chart {
        match crate::chart::write(&path, &r) {
            Ok(()) => r.chart = Some(path),
            // The numbers are out either way; a missing font is no failed drill.
            Err(e) => eprintln!("warning: no chart: {e:#}"),
        }
    }
    Ok(r)
}

/// `drill.svg` for kill: `drill-kill.svg`.
pub fn chart_path_for(path: &Path, fault: Fault) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(e) => format!("{stem}-{}.{}", fault.name(), e.to_string_lossy()),
        None => format!("{stem}-{}", fault.name()),
    };
    path.with_file_name(name)
}

/// `--fault all`: every fault in turn, each on a fresh topology (the
/// local one stopped, its node state removed, and started again with the
/// same options; partition builds its own); one summary at the end. A
/// fault that cannot run here (partition without root) is a summary row
/// saying why, not a failure.
async fn run_all(a: &DrillArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        !a.no_restore,
        "--fault all restores the topology between faults: drop --no-restore"
    );
    Topology::open(&a.state_dir).with_context(|| {
        format!(
            "--fault all needs a local topology in {}",
            a.state_dir.display()
        )
    })?;
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    for fault in Fault::ALL {
        let r = match (fault, crate::partition::available()) {
            (Fault::Partition, Err(why)) => {
                eprintln!("skipping partition: {why}");
                skipped.push(skipped_row(fault, &why));
                continue;
            }
            (Fault::Partition, Ok(())) => Ok(()),
            _ => fresh_topology(&a.state_dir, a.max_wait).await,
        };
        let r = match r {
            Ok(()) => {
                let chart = a.chart.as_deref().map(|p| chart_path_for(p, fault));
                drill_with_chart(a, fault, chart).await
            }
            Err(e) => Err(e.context("no fresh topology")),
        };
        match r {
            Ok(r) => {
                if !a.json {
                    println!("{}\n", render(&r));
                }
                reports.push(r);
            }
            Err(e) => {
                if !a.json && !reports.is_empty() {
                    println!("{}", summary_table(&all_rows(&reports)));
                }
                return Err(e.context(format!("--fault all: {} could not run", fault.name())));
            }
        }
    }
    let failures: Vec<verdict::Failure> = reports.iter().flat_map(|r| r.failures.clone()).collect();
    let mut rows = all_rows(&reports);
    rows.extend(skipped);
    if a.json {
        let out = AllReport {
            summary: rows,
            drills: reports,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", summary_table(&rows));
    }
    Ok(verdict::exit_code(&failures))
}

/// Stops the local topology, removes its nodes' state (data, configs the
/// sentinels rewrote, logs) and starts it again with the same options,
/// detached; waits until healthy.
pub async fn fresh_topology(state_dir: &Path, wait: Duration) -> anyhow::Result<()> {
    let old = Topology::open(state_dir)?;
    old.stop_all();
    for n in old.opts.node_names() {
        let d = old.opts.node_dir(&n);
        if d.exists() {
            std::fs::remove_dir_all(&d)
                .with_context(|| format!("cannot remove {}", d.display()))?;
        }
    }
    let mut t = Topology::start(old.opts.clone(), false).await?;
    t.detach();
    t.wait_healthy(wait).await
}

fn skipped_row(fault: Fault, why: &str) -> SummaryRow {
    SummaryRow {
        fault: fault.name(),
        outage_ms: 0.0,
        errors: 0,
        unknown_outcomes: 0,
        lost: 0,
        duplicated: 0,
        proxy_switched_ms: None,
        read_errors: None,
        stale_reads: None,
        verdict: format!("skipped: {why}"),
    }
}

/// `--fault all --json`: the summary, then every drill's full report.
#[derive(Serialize)]
struct AllReport {
    summary: Vec<SummaryRow>,
    drills: Vec<DrillReport>,
}

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

fn config(a: &DrillArgs, fault: Fault) -> anyhow::Result<DrillConfig> {
    if fault == Fault::Partition {
        anyhow::ensure!(
            a.target.is_none() && a.sentinels.is_empty(),
            "--fault partition builds its own topology and proxy: drop --target and --sentinel"
        );
        crate::partition::available().map_err(|e| anyhow::anyhow!(e))?;
    }
    let local = redis_ha_local::Options::load(&a.state_dir).ok();
    let sentinels = if fault == Fault::Partition {
        vec![] // the drill's own
    } else if a.sentinels.is_empty() {
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
    // Through the local topology's proxy unless --target says otherwise;
    // its read endpoint and admin then come with it.
    let proxy = local
        .as_ref()
        .and_then(|o| o.proxy.as_ref().map(|p| (o.announce_host().to_string(), p)));
    let own = |port: fn(&redis_ha_local::topo::ProxyPorts) -> u16| {
        proxy
            .as_ref()
            .filter(|_| a.target.is_none())
            .map(|(h, p)| format!("{h}:{}", port(p)))
    };
    Ok(DrillConfig {
        target: a
            .target
            .clone()
            .or_else(|| own(|p| p.write))
            .unwrap_or_else(|| "127.0.0.1:6379".to_string()),
        read_target: a.read.clone().or_else(|| own(|p| p.read)),
        via: a.via.clone(),
        admin: a.admin.clone().or_else(|| own(|p| p.admin)),
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
        tls: match &local {
            Some(o) => o.client_tls()?,
            None => None,
        },
        fault,
        writers: a.writers,
        before: a.before,
        after: a.after,
        max_wait: a.max_wait,
        request_timeout: a.timeout,
        restore: !a.no_restore,
        progress: !a.json && std::io::stderr().is_terminal(),
        heal_after: a.heal_after,
        min_replicas_to_write: a.min_replicas_to_write,
        write_ack: a.write_ack,
        partition_tls: a.tls,
    })
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

    #[test]
    fn every_fault_and_all_are_choices_and_charts_get_the_fault_name() {
        let names: Vec<String> = FaultChoice::value_variants()
            .iter()
            .filter_map(|c| c.to_possible_value())
            .map(|v| v.get_name().to_string())
            .collect();
        for f in Fault::ALL {
            assert!(names.contains(&f.name().to_string()), "{names:?}");
        }
        assert_eq!(names.len(), Fault::ALL.len() + 1);
        assert_eq!(names.last().map(String::as_str), Some("all"));
        assert_eq!(
            FaultChoice::from_str("kill-sentinels", false),
            Ok(FaultChoice::One(Fault::KillSentinels))
        );
        assert_eq!(
            chart_path_for(Path::new("out/drill.svg"), Fault::Stop),
            Path::new("out/drill-stop.svg")
        );
        assert_eq!(
            chart_path_for(Path::new("drill"), Fault::Kill),
            Path::new("drill-kill")
        );
    }
}
