//! Predefined runs. `seed` is the original's benchmark: a write phase (100%
//! SET) on the write endpoint, then a read phase (100% GET over the keys
//! written) on the read endpoint, reported together.

use crate::cli::{output, BenchArgs};
use crate::run::run as run_once;
use crate::worker::{auth_args, open, ConnConfig};
use anyhow::bail;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub async fn seed(a: &BenchArgs) -> anyhow::Result<u8> {
    if !a.command.is_empty() {
        bail!("--scenario seed sends SET then GET: drop --command (or run without --scenario)");
    }
    let mut w = a.clone();
    // The original: 4 pods × 2 threads × 10 connections = 80, 256 B values,
    // 2 minutes per phase.
    w.threads.get_or_insert(2);
    w.clients.get_or_insert(40);
    w.data_size.get_or_insert(256);
    w.key_maximum.get_or_insert(400_000);
    if w.test_time.is_none() && w.requests.is_none() {
        w.test_time = Some(120);
    }
    let percentiles = w.percentiles()?;
    let key_min = w.key_minimum;
    let key_max = w.key_maximum();

    w.ratio = "1:0".into();
    w.key_pattern = "S:S".into();
    let wl = Arc::new(w.workload(key_min, key_max)?);
    // One TLS config for both phases.
    let tls = w.tls()?;
    eprintln!(
        "seed phase 1/2: write, 100% SET {} B, {} connections, to {}:{}",
        w.data_size(),
        w.threads() * w.clients(),
        w.server,
        w.port
    );
    let mut write = run_once(w.run_options(w.port, "write", tls.clone()), wl.clone()).await?;
    write.percentiles = percentiles.clone();
    write.config = w.config_json(w.port);
    // S hands out keys in order, so the keys written are the first `sent`.
    let range = wl.key_range();
    let written = write.sent.min(range);
    if written == 0 {
        bail!("the write phase wrote nothing: see the errors above");
    }
    let synced = wait_replicas(&w.conn(w.port, tls.clone())).await;

    w.ratio = "0:1".into();
    w.key_pattern = "R:R".into();
    let rl = Arc::new(w.workload(key_min, key_min + written - 1)?);
    eprintln!(
        "seed phase 2/2: read, 100% GET over the {written} keys written, from {}:{}",
        w.server, w.read_port
    );
    let mut read = run_once(w.run_options(w.read_port, "read", tls), rl).await?;
    read.percentiles = percentiles;
    read.config = w.config_json(w.read_port);

    let summary = |name: &str, port: u16, r: &crate::report::Report| {
        let gets = &r.types[1].1;
        json!({
            "phase": name,
            "endpoint": format!("{}:{port}", w.server),
            "connections": r.connections,
            "ops_per_sec": r.ops_per_sec(),
            "p99_ms": r.totals.hist.value_at_quantile(0.99) as f64 / 1000.0,
            "hit_ratio": if gets.ops > 0 { Some(gets.hits as f64 / gets.ops as f64) } else { None },
            "errors": r.error_count(),
            "outages": r.outages.len(),
        })
    };
    let rows = [
        summary("write", w.port, &write),
        summary("read", w.read_port, &read),
    ];
    let report = json!({
        "scenario": "seed",
        "keys_written": written,
        "replicas_acknowledged": synced,
        "summary": rows,
        "write": write.to_json(),
        "read": read.to_json(),
    });
    output(&w, &[("write", &write), ("read", &read)], report)?;
    if !w.json {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "phase", "endpoint", "conns", "ops/s", "p99", "hits", "errors", "outages",
        ]);
        for r in &rows {
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
        println!("== seed scenario: {written} keys written, then read back\n{t}");
    }
    Ok(0)
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
