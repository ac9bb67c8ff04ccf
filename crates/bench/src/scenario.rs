//! Predefined runs. `seed` is the original's benchmark: a write phase (100%
//! SET) on the write endpoint, then a read phase (100% GET over the keys
//! written) on the read endpoint, reported together. It takes a plain
//! [`SeedConfig`], not the command line's arguments.

use crate::report::Report;
use crate::run::{run as run_once, RunOptions};
use crate::worker::{auth_args, open, ConnConfig};
use crate::workload::{KeyPattern, Template, Workload};
use anyhow::bail;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What `seed` runs, as plain values: the command line builds it from its
/// flags (with the scenario's defaults), a test or another crate directly.
#[derive(Clone, Debug)]
pub struct SeedConfig {
    /// The write phase: the write endpoint, connections, duration, TLS.
    pub write: RunOptions,
    /// The read phase: the read endpoint (the rest as the write phase).
    pub read: RunOptions,
    /// Value size range in bytes (min, max).
    pub data_size: (usize, usize),
    pub key_prefix: String,
    pub key_min: u64,
    pub key_max: u64,
    pub seed: u64,
    pub distinct_client_seed: bool,
    pub percentiles: Vec<f64>,
    /// Each phase's `config` in the JSON report.
    pub write_config: Value,
    pub read_config: Value,
}

/// Both phases' reports and the summary; printing is the caller's.
pub struct SeedResult {
    pub write: Report,
    pub read: Report,
    pub keys_written: u64,
    /// Replicas that acknowledged the writes before the read phase.
    pub replicas_acknowledged: Option<i64>,
    /// One row per phase (endpoint, connections, ops/s, p99, hits...).
    pub summary: Vec<Value>,
}

impl SeedResult {
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": "seed",
            "keys_written": self.keys_written,
            "replicas_acknowledged": self.replicas_acknowledged,
            "summary": self.summary,
            "write": self.write.to_json(),
            "read": self.read.to_json(),
        })
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "phase", "endpoint", "conns", "ops/s", "p99", "hits", "errors", "outages",
        ]);
        for r in &self.summary {
            t.add_row(vec![
                r["phase"].as_str().unwrap_or_default().to_string(),
                r["endpoint"].as_str().unwrap_or_default().to_string(),
                r["connections"].to_string(),
                format!("{:.0}", r["ops_per_sec"].as_f64().unwrap_or(0.0)),
                format!("{:.3} ms", r["p99_ms"].as_f64().unwrap_or(0.0)),
                r["hit_ratio"]
                    .as_f64()
                    .map(|h| format!("{:.1}%", h * 100.0))
                    .unwrap_or_else(|| "-".into()),
                r["errors"].to_string(),
                r["outages"].to_string(),
            ]);
        }
        t
    }
}

/// SET and GET templates with `set:get` weights on `pattern` keys.
fn workload(
    c: &SeedConfig,
    pattern: KeyPattern,
    set_get: [u32; 2],
    key_max: u64,
) -> anyhow::Result<Workload> {
    Workload::new(
        vec![Template::set(pattern), Template::get(pattern)],
        &set_get,
        &c.key_prefix,
        c.key_min,
        key_max,
        c.data_size.0,
        c.data_size.1,
        c.seed,
        c.distinct_client_seed,
    )
}

pub async fn seed(c: SeedConfig) -> anyhow::Result<SeedResult> {
    let wl = Arc::new(workload(&c, KeyPattern::Sequential, [1, 0], c.key_max)?);
    eprintln!(
        "seed phase 1/2: write, 100% SET {} B, {} connections, to {}",
        c.data_size.1,
        c.write.threads * c.write.clients,
        c.write.conn.addr
    );
    let mut write = run_once(c.write.clone(), wl.clone()).await?;
    write.percentiles = c.percentiles.clone();
    write.config = c.write_config.clone();
    // S hands out keys in order, so the keys written are the first `sent`.
    let written = write.sent.min(wl.key_range());
    if written == 0 {
        bail!("the write phase wrote nothing: see the errors above");
    }
    let synced = wait_replicas(&c.write.conn).await;

    let rl = Arc::new(workload(
        &c,
        KeyPattern::Random,
        [0, 1],
        c.key_min + written - 1,
    )?);
    eprintln!(
        "seed phase 2/2: read, 100% GET over the {written} keys written, from {}",
        c.read.conn.addr
    );
    let mut read = run_once(c.read.clone(), rl).await?;
    read.percentiles = c.percentiles.clone();
    read.config = c.read_config.clone();

    let summary = |name: &str, endpoint: &str, r: &Report| {
        let gets = &r.types[1].1;
        json!({
            "phase": name,
            "endpoint": endpoint,
            "connections": r.connections,
            "ops_per_sec": r.ops_per_sec(),
            "p99_ms": r.totals.hist.value_at_quantile(0.99) as f64 / 1000.0,
            "hit_ratio": if gets.ops > 0 { Some(gets.hits as f64 / gets.ops as f64) } else { None },
            "errors": r.error_count(),
            "outages": r.outages.len(),
        })
    };
    let rows = vec![
        summary("write", &c.write.conn.addr, &write),
        summary("read", &c.read.conn.addr, &read),
    ];
    Ok(SeedResult {
        write,
        read,
        keys_written: written,
        replicas_acknowledged: synced,
        summary: rows,
    })
}

/// Waits (up to 5 s) until the replicas have the writes, so the read phase
/// reads what was written; returns how many replicas acknowledged. Uses the
/// run's TLS and credentials.
async fn wait_replicas(c: &ConnConfig) -> Option<i64> {
    let mut conn = open(c).await.ok()?;
    conn.timeout = Duration::from_secs(7);
    if let Some(auth) = &c.auth {
        conn.request_ok(&auth_args(auth)).await.ok()?;
    }
    conn.request_ok(&["WAIT", "2", "5000"])
        .await
        .ok()
        .and_then(|f| f.as_int())
}
