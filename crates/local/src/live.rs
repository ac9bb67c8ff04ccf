//! The proxy's live numbers for `redis-ha status`: its admin endpoint's
//! `/api/status` (ops/s over the last second, latency, errors, holds, the
//! read rotation, the last failover's steps), over plain HTTP/1.0.

use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Table};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /api/status` from the proxy's admin endpoint `admin` (`host:port`).
pub async fn fetch(admin: &str, timeout: Duration) -> anyhow::Result<Value> {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(admin).await?;
        s.write_all(format!("GET /api/status HTTP/1.0\r\nHost: {admin}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(timeout, get)
        .await
        .with_context(|| format!("no answer from {admin} in {timeout:?}"))??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("not an HTTP reply")?;
    let code = head.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        bail!("/api/status answered {code}");
    }
    serde_json::from_str(body).context("/api/status is not JSON")
}

fn node(v: &Value, addr: &Value) -> String {
    match (
        addr.as_str(),
        addr.as_str().and_then(|a| v["names"][a].as_str()),
    ) {
        (Some(a), Some(n)) => format!("{n} {a}"),
        (Some(a), None) => a.to_string(),
        _ => "none".into(),
    }
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map(|m| format!("{m:.2} ms"))
        .unwrap_or_else(|| "-".into())
}

/// The proxy's live numbers as a table. `prev`: the previous refresh's
/// answer, `secs` before; errors and holds are then also shown per second.
pub fn render(v: &Value, prev: Option<(&Value, f64)>) -> String {
    let c = &v["counters"];
    let s = &v["status"];
    let per_sec = |k: &str| match prev {
        Some((p, secs)) if secs > 0.0 => {
            let d =
                c[k].as_u64().unwrap_or(0) as f64 - p["counters"][k].as_u64().unwrap_or(0) as f64;
            format!(" ({:.1}/s)", d.max(0.0) / secs)
        }
        _ => String::new(),
    };
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "proxy live",
        "ops/s",
        "p50 / p99",
        "clients",
        "errors",
        "held",
        "retried",
    ]);
    for ep in ["write", "read"] {
        t.add_row(vec![
            Cell::new(ep),
            Cell::new(c[format!("{ep}_ops_per_sec")].to_string()),
            Cell::new(format!(
                "{} / {}",
                ms(&c[format!("{ep}_p50_ms")]),
                ms(&c[format!("{ep}_p99_ms")])
            )),
            Cell::new(c[format!("{ep}_clients")].to_string()),
            Cell::new(""),
            Cell::new(""),
            Cell::new(""),
        ]);
    }
    let kinds: Vec<String> = c["errors_by_kind"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    t.add_row(vec![
        Cell::new("total"),
        Cell::new(""),
        Cell::new(""),
        Cell::new(""),
        Cell::new(format!(
            "{}{}{}",
            c["errors"],
            per_sec("errors"),
            if kinds.is_empty() {
                String::new()
            } else {
                format!("\n{}", kinds.join(", "))
            }
        )),
        Cell::new(format!("{}{}", c["held"], per_sec("held"))),
        Cell::new(format!("{}{}", c["retried"], per_sec("retried"))),
    ]);
    let mut out = t.to_string();
    out.push('\n');
    let rotation: Vec<String> = s["read_rotation"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| node(v, a))
        .collect();
    out.push_str(&format!(
        "proxy routes writes to {} (epoch {}), reads to {}; {} failovers adopted\n",
        node(v, &s["master"]),
        s["epoch"],
        if rotation.is_empty() {
            "no replica".to_string()
        } else {
            rotation.join(", ")
        },
        c["failovers"],
    ));
    if let Some(f) = s["failovers"].get(0) {
        let steps: Vec<String> = [
            ("odown_ms", "+odown"),
            ("promoted_ms", "promoted"),
            ("adopted_ms", "adopted"),
            ("first_write_ms", "first write"),
            ("switch_master_ms", "+switch-master"),
        ]
        .iter()
        .filter_map(|(k, name)| Some(format!("{name} +{:.0} ms", f[*k].as_f64()?)))
        .collect();
        out.push_str(&format!(
            "last failover: {} → {} ({}, {}): {}\n",
            node(v, &f["old_master"]),
            node(v, &f["new_master"]),
            f["trigger"].as_str().unwrap_or(""),
            f["outcome"].as_str().unwrap_or(""),
            steps.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rates_and_the_last_failover() {
        let v = |errors: u64| {
            serde_json::json!({
                "names": {"127.0.0.1:6382": "redis-1"},
                "status": {"master": "127.0.0.1:6382", "epoch": 2, "read_rotation": ["127.0.0.1:6383"],
                           "failovers": [{"old_master": "127.0.0.1:6381", "new_master": "127.0.0.1:6382",
                                          "trigger": "+sdown", "outcome": "+switch-master",
                                          "adopted_ms": 1234.4, "first_write_ms": 1240.0}]},
                "counters": {"write_ops_per_sec": 812.0, "read_ops_per_sec": 0.0, "write_p50_ms": 0.21,
                             "write_p99_ms": 1.5, "read_p50_ms": null, "read_p99_ms": null,
                             "write_clients": 3, "read_clients": 0, "errors": errors,
                             "errors_by_kind": {"unknown_outcome": errors}, "held": 4, "retried": 0, "failovers": 1},
            })
        };
        let (a, b) = (v(2), v(6));
        let out = render(&b, Some((&a, 2.0)));
        assert!(out.contains("812"), "{out}");
        assert!(out.contains("0.21 ms / 1.50 ms"), "{out}");
        assert!(out.contains("6 (2.0/s)"), "{out}");
        assert!(out.contains("unknown_outcome 6"), "{out}");
        assert!(out.contains("writes to redis-1 127.0.0.1:6382"), "{out}");
        assert!(
            out.contains("adopted +1234 ms, first write +1240 ms"),
            "{out}"
        );
    }
}
