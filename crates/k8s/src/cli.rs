//! `redis-ha k8s …`: argument parsing and dispatch.

use crate::options::{RenderOptions, DEFAULT_NAMESPACE};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(
    about = "Redis Sentinel on Kubernetes: render the manifests, apply, check, benchmark, drill",
    long_about = "Redis Sentinel on Kubernetes (3 Redis in a StatefulSet, 3 Sentinels in a \
        StatefulSet, the redis-ha proxy as Service `redis-ha`: 6379 write, 6380 read, 8404 admin).\n\n\
        Typical session (the current kubeconfig context, or --context):\n  \
        redis-ha k8s render --out deploy/kubernetes   # the manifests (checked in already)\n  \
        redis-ha k8s apply                            # server-side apply in order, waiting for each step\n  \
        redis-ha k8s status                           # roles, sentinel agreement, split brain; exit 0 = healthy\n  \
        redis-ha k8s bench                            # write Jobs then read Jobs, one combined report\n  \
        redis-ha k8s drill                            # delete the master pod under load, report the outage\n  \
        redis-ha k8s delete                           # keeps the data volumes unless --purge\n\n\
        Without redis-ha: kubectl apply -k deploy/kubernetes (replace the Secret's placeholder passwords first)."
)]
pub struct K8sArgs {
    /// kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace of the deployment.
    #[arg(short = 'n', long, global = true, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    #[command(subcommand)]
    pub cmd: K8sCmd,
}

#[derive(Subcommand, Debug)]
pub enum K8sCmd {
    /// Write the manifests (no cluster needed); the defaults are deploy/kubernetes/
    Render(RenderArgs),
    /// Server-side apply the manifests in order, waiting for each workload to be ready
    Apply(ApplyArgs),
    /// Delete in reverse order; the data volumes stay unless --purge
    Delete(DeleteArgs),
    /// Roles, sentinel agreement and split-brain check (exit 0 only when healthy)
    Status(StatusArgs),
    /// Run the benchmark Jobs (write phase, then read phase) and merge their reports
    Bench(BenchArgs),
    /// Delete the master pod under load and report the outage
    Drill(DrillArgs),
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Output directory (stdout, as one multi-document YAML, without it).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the alert rules as a plain Prometheus rules file (for a
    /// Prometheus without the operator, e.g. deploy/prometheus/rules.yml).
    #[arg(long, value_name = "FILE")]
    pub prometheus_rules: Option<PathBuf>,
    #[command(flatten)]
    pub options: RenderOptions,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// How long to wait for each workload.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub options: RenderOptions,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Also delete the data volumes, the Secret and the Namespace.
    #[arg(long)]
    pub purge: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Seconds per phase (the original: 120).
    #[arg(long, default_value_t = 120)]
    pub test_time: u64,
    /// Pods per phase (the original: 4).
    #[arg(long, default_value_t = 4)]
    pub pods: i32,
    /// Print the combined report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub options: RenderOptions,
}

/// How the drill deletes the master pod.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodFault {
    /// `kubectl delete pod`: the preStop hook hands the master role over first.
    Delete,
    /// Grace period 0: the pod is killed at once, as on a node crash.
    Kill,
}

impl PodFault {
    pub fn grace_period_seconds(self) -> Option<u32> {
        match self {
            PodFault::Delete => None,
            PodFault::Kill => Some(0),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            PodFault::Delete => "graceful delete: preStop switchover",
            PodFault::Kill => "grace period 0: no handover",
        }
    }
}

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Graceful delete (planned handover) or kill (grace period 0).
    #[arg(long, value_enum, default_value = "delete")]
    pub fault: PodFault,
    /// Load before the master pod is deleted.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub before: Duration,
    /// Total length of the load (it keeps going after the delete).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub length: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub options: RenderOptions,
}

fn with_namespace(mut o: RenderOptions, ns: &str) -> RenderOptions {
    o.namespace = ns.to_string();
    o
}

/// Runs one `k8s` subcommand; the exit code is the command's verdict.
pub async fn run(a: K8sArgs) -> anyhow::Result<u8> {
    let ns = a.namespace.clone();
    let connect = || crate::cluster::Cluster::connect(a.context.as_deref(), &ns);
    match a.cmd {
        K8sCmd::Render(r) => {
            let o = with_namespace(r.options, &ns);
            if let Some(file) = &r.prometheus_rules {
                std::fs::write(file, crate::render::prometheus_rules_file(&o)?)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
                eprintln!("wrote the alert rules to {}", file.display());
            }
            render(&o, r.out.as_deref())
        }
        K8sCmd::Apply(x) => {
            let o = with_namespace(x.options, &ns);
            connect().await?.apply(&o, x.timeout).await
        }
        K8sCmd::Delete(x) => connect().await?.delete(x.purge).await,
        K8sCmd::Status(x) => connect().await?.status(x.json).await,
        K8sCmd::Bench(x) => {
            let o = with_namespace(x.options, &ns);
            connect()
                .await?
                .bench(&o, x.test_time, x.pods, x.json)
                .await
        }
        K8sCmd::Drill(x) => {
            let o = with_namespace(x.options.clone(), &ns);
            connect().await?.drill(&o, &x).await
        }
    }
}

fn render(o: &RenderOptions, out: Option<&std::path::Path>) -> anyhow::Result<u8> {
    match out {
        Some(dir) => {
            let written = crate::render::write(o, dir)?;
            eprintln!("wrote {} files to {}", written.len(), dir.display());
        }
        None => {
            for m in crate::render::manifests(o)? {
                print!("---\n{}", crate::render::to_yaml(&m)?);
            }
        }
    }
    Ok(0)
}
