//! `redis-ha`: one binary for a Redis + Sentinel high-availability setup:
//! run the topology locally, route clients through a Sentinel-aware proxy,
//! load it, and drill failovers. Each subcommand lives in its own crate;
//! this file only parses the command line and dispatches.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "redis-ha",
    version,
    about = "Redis high availability on one binary: topology, Sentinel-aware proxy, benchmarks",
    long_about = "Redis high availability on one binary.\n\n\
        Typical session:\n  \
        redis-ha up --detach        # 3 redis-server + 3 redis-sentinel + proxy on this machine\n  \
        redis-ha status             # roles, replication lag, sentinel agreement, split-brain check\n  \
        redis-ha bench --scenario seed --test-time 10\n  \
        redis-ha drill              # kill -9 the master under load: outage, errors, lost writes\n  \
        redis-ha node kill redis-0  # or inject faults by hand\n  \
        redis-ha switchover         # planned master switch, no write lost\n  \
        redis-ha down\n\n\
        On Kubernetes: redis-ha k8s --help",
    propagate_version = true
)]
struct Cli {
    /// Log lines on stderr as text or as JSON (one object per line, for
    /// Kubernetes log collectors). The level comes from REDIS_HA_LOG
    /// (e.g. `info`, `redis_ha_proxy=debug`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "REDIS_HA_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr. By default warnings only, except that the proxy
/// also logs each routing change and failover step (its control plane at
/// `info`).
fn init_logs(format: LogFormat, proxy: bool) {
    let default = if proxy {
        "warn,redis_ha_proxy::control=info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REDIS_HA_LOG")
        .unwrap_or_else(|_| default.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the whole topology on this machine (3 Redis, 3 Sentinels, proxy)
    Up(redis_ha_local::cli::UpArgs),
    /// Stop a topology started with `up --detach`
    Down(redis_ha_local::cli::DownArgs),
    /// Health of a topology: roles, lag, sentinel views, quorum, split brain
    Status(redis_ha_local::cli::StatusArgs),
    /// Fault injection on one node: kill, stop, cont, restart
    Node(redis_ha_local::cli::NodeArgs),
    /// Run the Sentinel-aware proxy (write, read and admin endpoints)
    Proxy(Box<redis_ha_proxy::cli::ProxyArgs>),
    /// memtier-style load generator that keeps going through failovers
    Bench(Box<redis_ha_bench::cli::BenchArgs>),
    /// Failover drill under load: outage, client errors, lost writes
    Drill(redis_ha_drill::cli::DrillArgs),
    K8s(Box<redis_ha_k8s::cli::K8sArgs>),
    /// Decide master or replica for a Redis node about to start (init container)
    InitRole(redis_ha_local::init_role::InitRoleArgs),
    /// Make a restarted replica promotable once it has synced (sidecar)
    ReplicaGuard(redis_ha_local::replica_guard::GuardArgs),
    // Its help is the struct's: the long text teaches the steps.
    Switchover(redis_ha_local::switchover::SwitchoverArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format, matches!(cli.cmd, Cmd::Proxy(_)));
    let rt = match &cli.cmd {
        Cmd::Proxy(a) => redis_ha_proxy::cli::runtime(a),
        _ => tokio::runtime::Runtime::new(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Up(a) => redis_ha_local::cli::up(a).await,
            Cmd::Down(a) => redis_ha_local::cli::down(a).await,
            Cmd::Status(a) => redis_ha_local::cli::status(a).await,
            Cmd::Node(a) => redis_ha_local::cli::node(a).await,
            Cmd::Bench(a) => redis_ha_bench::cli::run(*a).await,
            Cmd::Proxy(a) => redis_ha_proxy::cli::run(*a).await,
            Cmd::Drill(a) => redis_ha_drill::cli::run(a).await,
            Cmd::K8s(a) => redis_ha_k8s::cli::run(*a).await,
            Cmd::InitRole(a) => redis_ha_local::init_role::run(a).await,
            Cmd::ReplicaGuard(a) => redis_ha_local::replica_guard::run(a).await,
            Cmd::Switchover(a) => redis_ha_local::switchover::run(a).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
