//! `redis-ha drill` command line: arguments, running one fault or `--fault
//! all` in turn, printing the report (as text, see [`crate::render`], or
//! JSON), the chart, the exit code.

use crate::config::DrillConfig;
use crate::render::{all_rows, render, summary_table, SummaryRow};
use crate::report::DrillReport;
use crate::run::run_drill;
use crate::verdict;
use crate::Fault;
use anyhow::Context;
use clap::builder::PossibleValue;
use clap::ValueEnum;
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
    const VARIANTS: [FaultChoice; 14] = [
        FaultChoice::One(Fault::Kill),
        FaultChoice::One(Fault::Stop),
        FaultChoice::One(Fault::Failover),
        FaultChoice::One(Fault::Switchover),
        FaultChoice::One(Fault::KillReplica),
        FaultChoice::One(Fault::RestartProxy),
        FaultChoice::One(Fault::KillSentinel),
        FaultChoice::One(Fault::KillSentinels),
        FaultChoice::One(Fault::RollingRestart),
        FaultChoice::One(Fault::ColdRestart),
        FaultChoice::One(Fault::WipeMaster),
        FaultChoice::One(Fault::WipeReplica),
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
none happened, or a failover happened where none may (kill-replica, wipe-replica, kill-sentinels:
no quorum), or with restart-proxy a write ran although its connection was closed without a
reply (the drain may close only between requests). A cold restart may keep the master or move
it to the node with the newest data.
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
///   redis-ha drill --fault wipe-master              # master back with an empty disk before Sentinel reacts
///   redis-ha drill --fault wipe-replica             # a replica back with an empty disk: it resyncs
///   redis-ha drill --fault cold-restart --order sentinels-last --stale-replica
///   redis-ha drill --fault cold-restart --sentinel-state lost   # sentinels' files gone: master chosen by data
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
    /// Which cluster, when not the local topology's: `--sentinel` (to
    /// watch instead of the local topology's; with --fault failover only),
    /// `--master-name`, the passwords (default: the local topology's) and
    /// TLS (`--tls`: with --fault partition, the drill's own topology is
    /// built TLS only, as `up --tls` does; otherwise the sentinels and nodes
    /// given are reached with TLS; a local topology's TLS comes from its
    /// state dir). The same group as `init-role` and `switchover`.
    #[command(flatten)]
    pub cluster: redis_ha_local::cluster_args::ClusterArgs,
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
    /// --fault cold-restart: the order the processes come back in.
    #[arg(long, value_enum, default_value = "all-at-once")]
    pub order: redis_ha_local::cold::Order,
    /// --fault cold-restart: kill a replica first and write on without it
    /// for a second (a stale node), then stop everything.
    #[arg(long)]
    pub stale_replica: bool,
    /// --fault cold-restart: whether the sentinels keep their files (`lost`:
    /// removed, as recreated volumes; the master is then chosen by data).
    #[arg(long, value_enum, default_value = "kept")]
    pub sentinel_state: crate::fault::SentinelState,
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

fn config(a: &DrillArgs, fault: Fault) -> anyhow::Result<DrillConfig> {
    if fault == Fault::Partition {
        anyhow::ensure!(
            a.target.is_none() && a.cluster.sentinels.is_empty(),
            "--fault partition builds its own topology and proxy: drop --target and --sentinel"
        );
        crate::partition::available().map_err(|e| anyhow::anyhow!(e))?;
    }
    let local = redis_ha_local::Options::load(&a.state_dir).ok();
    let sentinels = if fault == Fault::Partition {
        vec![] // the drill's own
    } else if a.cluster.sentinels.is_empty() {
        local.as_ref().map(|o| o.sentinel_addrs()).ok_or_else(|| {
            anyhow::anyhow!(
                "no topology in {} and no --sentinel given: run `redis-ha up --detach` first",
                a.state_dir.display()
            )
        })?
    } else {
        a.cluster.sentinels.clone()
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
            .unwrap_or_else(|| a.cluster.master_name_or_default()),
        password: a
            .cluster
            .password
            .clone()
            .or_else(|| spec.and_then(|s| s.password.clone())),
        sentinel_password: a
            .cluster
            .sentinel_password
            .clone()
            .or_else(|| spec.and_then(|s| s.sentinel_password.clone())),
        tls: match &local {
            Some(o) => o.client_tls()?,
            None => a.cluster.tls.client()?,
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
        partition_tls: a.cluster.tls.on,
        cold: crate::fault::ColdRestart {
            order: a.order,
            stale_replica: a.stale_replica,
            sentinel_state: a.sentinel_state,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
