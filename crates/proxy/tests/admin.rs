//! The admin endpoint, including the dashboard as a browser renders it.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_dashboard() {
    let (t, p) = setup(|_| {}).await;
    let master = t.master().await.unwrap();
    let mut c = conn(p.write_addr()).await;
    for _ in 0..10 {
        cmd(&mut c, &["SET", "a", "b"]).await;
    }
    let (code, body) = http_get(p.admin_addr, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(p.admin_addr, "/readyz").await;
    assert_eq!(code, 200);
    assert!(body.contains(&master), "{body}");
    let (code, body) = http_get(p.admin_addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    for name in [
        "redis_ha_commands_total{endpoint=\"write\"}",
        "redis_ha_client_connections",
        "redis_ha_master_known 1",
        "redis_ha_failovers_total",
        "redis_ha_hold_seconds_bucket",
    ] {
        assert!(body.contains(name), "missing {name} in:\n{body}");
    }
    // Ten SETs: ten latency samples, 27 bytes each in, +OK (5 bytes) each out.
    let value = |series: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
    };
    let ep = "{endpoint=\"write\"}";
    assert!(value(&format!("redis_ha_request_duration_seconds_count{ep}")) >= 10.0);
    assert!(value(&format!("redis_ha_request_duration_seconds_sum{ep}")) > 0.0);
    assert!(value(&format!("redis_ha_received_bytes_total{ep}")) >= 270.0);
    assert!(value(&format!("redis_ha_sent_bytes_total{ep}")) >= 50.0);
    let inf = "redis_ha_request_duration_seconds_bucket{le=\"+Inf\",endpoint=\"write\"}";
    assert!(value(inf) >= 10.0);
    let (code, body) = http_get(p.admin_addr, "/api/status").await;
    assert_eq!(code, 200);
    let json: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["status"]["master"], master.as_str());
    assert_eq!(json["status"]["read_rotation"].as_array().unwrap().len(), 2);
    assert_eq!(json["status"]["sentinels"].as_array().unwrap().len(), 3);
    assert!(json["counters"]["write_commands"].as_u64().unwrap() >= 10);

    // The page as Chromium renders it (after its script refreshed it).
    let url = format!("http://{}/", p.admin_addr);
    let Some(out) =
        tokio::task::spawn_blocking(move || redis_ha_testkit::chromium::dump_dom(&url, 2500))
            .await
            .unwrap()
    else {
        return;
    };
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("redis-ha proxy"),
        "no dashboard in DOM: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains(&master), "master {master} not shown: {dom}");
    for r in t.redis_addrs().iter().filter(|a| **a != master) {
        assert!(dom.contains(r.as_str()), "replica {r} not shown");
    }
    assert!(
        dom.contains("in rotation") && dom.contains("subscribed"),
        "{dom}"
    );
}

/// `(name as exposed, type)` of every metric family in a `/metrics` body;
/// counters are exposed with `_total`.
fn exposed(body: &str) -> std::collections::BTreeSet<(String, String)> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| match t {
            "counter" => (format!("{n}_total"), t.to_string()),
            _ => (n.to_string(), t.to_string()),
        })
        .collect()
}

/// `(name, type)` of every row of the README's metrics table.
fn documented() -> std::collections::BTreeSet<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- metrics-table -->")
        .expect("metrics table marker");
    let end = readme
        .find("<!-- /metrics-table -->")
        .expect("metrics table end marker");
    readme[start..end]
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_metrics_table_matches_metrics() {
    let (t, p) = setup(|_| {}).await;
    let master = t.master().await.unwrap();
    // The per-node series appear after the control plane's first full look.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let (_, body) = http_get(p.admin_addr, "/metrics").await;
        if body.contains("redis_ha_replica_lag_bytes{") || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let (exposed, documented) = (exposed(&body), documented());
    let undocumented: Vec<_> = exposed.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&exposed).collect();
    assert!(
        undocumented.is_empty(),
        "in /metrics, not in README's table: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "in README's table, not in /metrics: {missing:?}"
    );
    assert!(
        body.contains(&format!("redis_ha_master_info{{addr=\"{master}\"}} 1")),
        "{body}"
    );
    for s in t.sentinel_addrs() {
        assert!(
            body.contains(&format!("redis_ha_sentinel_up{{addr=\"{s}\"}} 1")),
            "{body}"
        );
    }
    for r in t.redis_addrs().iter().filter(|r| **r != master) {
        assert!(
            body.contains(&format!("redis_ha_replica_in_rotation{{addr=\"{r}\"}} 1")),
            "{body}"
        );
        assert!(
            body.contains(&format!("redis_ha_replica_lag_bytes{{addr=\"{r}\"}}")),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_all_but_probes() {
    let (_t, p) = setup(|c| c.admin_token = Some("s3cret-token".into())).await;
    let a = p.admin_addr;
    for open in ["/healthz", "/readyz", "/dashboard.js"] {
        let (code, body) = http_get(a, open).await;
        assert_eq!(code, 200, "{open}: {body}");
    }
    for path in ["/", "/metrics", "/api/status", "/api/history"] {
        let (code, body) = http_get(a, path).await;
        assert_eq!(code, 401, "{path} without token: {body}");
        assert!(
            body.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{body}"
        );
        assert!(body.contains("Authorization: Bearer"), "says how: {body}");
        let (code, _) = http_get_with(a, path, "Authorization: Bearer wrong\r\n").await;
        assert_eq!(code, 401, "{path} with a wrong token");
        let (code, _) = http_get(a, &format!("{path}?token=wrong")).await;
        assert_eq!(code, 401, "{path} with a wrong query token");
    }
    let good = "Authorization: Bearer s3cret-token\r\n";
    for path in ["/", "/metrics", "/api/status", "/api/history"] {
        let (code, body) = http_get_with(a, path, good).await;
        assert_eq!(code, 200, "{path} with the token: {body}");
    }
    let (code, body) = http_get(a, "/?token=s3cret-token").await;
    assert_eq!(code, 200, "dashboard with ?token=: {body}");
    let (_, js) = http_get(a, "/dashboard.js").await;
    assert!(
        js.contains("Bearer"),
        "the dashboard script forwards the token"
    );
}
