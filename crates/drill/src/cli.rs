//! `redis-ha drill` command line.

use crate::run::{run_drill, DrillConfig, DrillReport, Fault};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Kill, stop or fail over the master while writers run, then report the
/// outage, client errors and lost acknowledged writes.
///
/// Examples:
///   redis-ha drill                                  # kill -9 the local master, writing through the proxy
///   redis-ha drill --fault failover --writers 16    # planned SENTINEL FAILOVER
///   redis-ha drill --target 127.0.0.1:7379          # through another endpoint (e.g. HAProxy)
#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    /// Fault to inject on the current master.
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
    /// Concurrent writer connections (each: one SET at a time).
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
}

pub async fn run(a: DrillArgs) -> anyhow::Result<u8> {
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
    let target = a
        .target
        .clone()
        .unwrap_or_else(|| "127.0.0.1:6379".to_string());
    let cfg = DrillConfig {
        target,
        state_dir: local.as_ref().map(|_| a.state_dir.clone()),
        sentinels,
        master_name: local
            .as_ref()
            .map(|o| o.spec.master_name.clone())
            .unwrap_or(a.master_name.clone()),
        password: a
            .password
            .clone()
            .or_else(|| local.as_ref().and_then(|o| o.spec.password.clone())),
        sentinel_password: a.sentinel_password.clone().or_else(|| {
            local
                .as_ref()
                .and_then(|o| o.spec.sentinel_password.clone())
        }),
        fault: a.fault,
        writers: a.writers,
        before: a.before,
        after: a.after,
        max_wait: a.max_wait,
        request_timeout: a.timeout,
        restore: !a.no_restore,
        progress: !a.json && std::io::stderr().is_terminal(),
    };
    let r = run_drill(cfg).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", render(&r));
    }
    Ok(
        if r.lost_writes == 0 && r.new_master.as_ref() != Some(&r.old_master) {
            0
        } else {
            1
        },
    )
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0} ms"))
        .unwrap_or_else(|| "never".into())
}

pub fn render(r: &DrillReport) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "drill",
        &format!("{:?} through {}", r.fault, r.target),
    ]);
    let errors = if r.errors.is_empty() {
        "none".to_string()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rows: Vec<(&str, String)> = vec![
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
        ("writes acknowledged", r.writes_acked.to_string()),
        ("client errors", format!("{} ({errors})", r.writes_failed)),
        (
            "lost acknowledged writes",
            format!(
                "{}{}",
                r.lost_writes,
                if r.lost_examples.is_empty() {
                    String::new()
                } else {
                    format!(" e.g. {}", r.lost_examples.join(", "))
                }
            ),
        ),
        (
            "writers / duration",
            format!("{} / {:.1} s", r.writers, r.duration_s),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    t.to_string()
}
