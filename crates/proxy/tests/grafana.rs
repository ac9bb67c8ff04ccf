//! `deploy/grafana/redis-ha.json`: a dashboard Grafana loads as it is, whose
//! every `redis_ha_` metric exists on a running proxy's `/metrics`.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/redis-ha.json"
    );
    let text = std::fs::read_to_string(path).expect("deploy/grafana/redis-ha.json");
    serde_json::from_str(&text).expect("the Grafana dashboard is not valid JSON")
}

/// Every panel, those inside (collapsed) rows included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Every PromQL query: panel targets, annotations, variables.
fn queries(d: &Value) -> Vec<String> {
    let mut q: Vec<String> = panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| {
            t["expr"]
                .as_str()
                .expect("a target without expr")
                .to_string()
        })
        .collect();
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        q.extend(a["expr"].as_str().map(str::to_string));
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        q.extend(v["definition"].as_str().map(str::to_string));
    }
    q
}

/// The metric names (identifiers starting with `prefix`) in `expr`.
fn names_in(expr: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Not inside another name, nor a $variable.
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// What a query can name on `/metrics`: every sample's name, and for each
/// family its exposed names (`_total` of counters; `_bucket`, `_sum`,
/// `_count` of histograms), series or not.
fn queryable(body: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in body.lines() {
        if let Some(t) = l.strip_prefix("# TYPE ") {
            let Some((n, kind)) = t.split_once(' ') else {
                continue;
            };
            match kind {
                "counter" => {
                    out.insert(format!("{n}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        out.insert(format!("{n}{s}"));
                    }
                }
                _ => {
                    out.insert(n.to_string());
                }
            }
        } else if !l.starts_with('#') && !l.is_empty() {
            let end = l.find(['{', ' ']).unwrap_or(l.len());
            out.insert(l[..end].to_string());
        }
    }
    out
}

#[test]
fn dashboard_is_loadable() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "schemaVersion");
    assert_eq!(d["uid"], "redis-ha");
    assert!(d["title"].is_string());
    assert!(
        d.get("id").is_none_or(Value::is_null),
        "an id ties it to one Grafana"
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus datasource variable"
    );
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &p["gridPos"];
        for k in ["h", "w", "x", "y"] {
            assert!(g[k].is_u64(), "panel {id}: gridPos.{k}");
        }
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24);
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} queries nothing");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {id}");
            assert!(t["refId"].is_string(), "panel {id}: refId");
        }
    }
    // Everything else it queries is redis_exporter's.
    let exporter: BTreeSet<String> = queries(&d)
        .iter()
        .flat_map(|q| names_in(q, "redis_"))
        .filter(|n| !n.starts_with("redis_ha_"))
        .collect();
    let known = [
        "redis_up",
        "redis_connected_clients",
        "redis_commands_processed_total",
        "redis_memory_used_bytes",
        "redis_connected_slaves",
        "redis_master_repl_offset",
    ];
    for n in &exporter {
        assert!(
            known.contains(&n.as_str()),
            "{n} is not a redis_exporter metric this test knows"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redis_ha_metric_it_queries_exists() {
    let d = dashboard();
    let wanted: BTreeSet<String> = queries(&d)
        .iter()
        .flat_map(|q| names_in(q, "redis_ha_"))
        .collect();
    assert!(wanted.len() >= 20, "{wanted:?}");
    let (_t, p) = setup(|_| {}).await;
    let mut c = conn(p.write_addr()).await;
    cmd(&mut c, &["SET", "a", "b"]).await;
    let (code, body) = http_get(p.admin_addr, "/metrics").await;
    assert_eq!(code, 200);
    let have = queryable(&body);
    let missing: Vec<_> = wanted.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboard queries {missing:?}, not on /metrics:\n{body}"
    );
    assert!(wanted.contains("redis_ha_request_duration_seconds_bucket"));
}

#[test]
fn metric_names_in_promql() {
    let n = names_in(
        "histogram_quantile(0.99, sum by (le) (rate(redis_ha_hold_seconds_bucket{a=\"redis_ha_x\"}[1m]))) / my_redis_ha_y",
        "redis_ha_",
    );
    // The label value is a name too, to this scan: harmless, it over-asks.
    assert!(n.contains("redis_ha_hold_seconds_bucket") && !n.contains("redis_ha_y"));
}
