//! The alert rules, proven with Prometheus's own tools: `promtool check
//! rules` on the rendered rules, and `promtool test rules` with a firing
//! case and a quiet case for every alert the render has (synthetic series,
//! evaluated by promtool exactly as Prometheus would). The real-process
//! side (a real Prometheus firing an alert) is crates/proxy/tests/prometheus.rs.

use redis_ha_k8s::options::RenderOptions;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// One `promtool test rules` case: input series, when to look, and the
/// label sets of the alerts expected to fire then (empty: none may fire).
struct Case {
    alert: &'static str,
    series: &'static [(&'static str, &'static str)],
    at: &'static str,
    fires: &'static [&'static [(&'static str, &'static str)]],
}

const NS: (&str, &str) = ("namespace", "redis-sentinel");
const R0: (&str, &str) = ("instance", "redis-0:9121");

#[rustfmt::skip]
const CASES: &[Case] = &[
    // No proxy knows a master for longer than 30 s.
    Case { alert: "RedisHaNoMasterKnown", at: "1m",
        series: &[("redis_ha_master_known{namespace=\"redis-sentinel\",instance=\"p1\"}", "0x8"),
                  ("redis_ha_master_known{namespace=\"redis-sentinel\",instance=\"p2\"}", "0x8")],
        fires: &[&[NS, ("severity", "critical")]] },
    // One proxy still knows it: the master is there.
    Case { alert: "RedisHaNoMasterKnown", at: "1m",
        series: &[("redis_ha_master_known{namespace=\"redis-sentinel\",instance=\"p1\"}", "0x8"),
                  ("redis_ha_master_known{namespace=\"redis-sentinel\",instance=\"p2\"}", "1x8")],
        fires: &[] },
    // Three failovers in a couple of minutes: flapping.
    Case { alert: "RedisHaSplitBrainSuspected", at: "3m",
        series: &[("redis_ha_failovers_total{namespace=\"redis-sentinel\",instance=\"p1\"}", "0 1 2 3 3 3 3 3 3 3 3 3 3 3 3")],
        fires: &[&[NS, ("severity", "critical")]] },
    // One failover is a failover.
    Case { alert: "RedisHaSplitBrainSuspected", at: "3m",
        series: &[("redis_ha_failovers_total{namespace=\"redis-sentinel\",instance=\"p1\"}", "0 1 1 1 1 1 1 1 1 1 1 1 1 1 1")],
        fires: &[] },
    Case { alert: "RedisHaReplicasOutOfRotation", at: "3m",
        series: &[("redis_ha_healthy_replicas{namespace=\"redis-sentinel\",instance=\"p1\"}", "1x16")],
        fires: &[&[NS, ("severity", "warning")]] },
    Case { alert: "RedisHaReplicasOutOfRotation", at: "3m",
        series: &[("redis_ha_healthy_replicas{namespace=\"redis-sentinel\",instance=\"p1\"}", "2x16")],
        fires: &[] },
    Case { alert: "RedisHaSentinelsUnreachable", at: "2m",
        series: &[("redis_ha_sentinels_reachable{namespace=\"redis-sentinel\",instance=\"p1\"}", "1x10")],
        fires: &[&[NS, ("severity", "critical")]] },
    // A sentinel restart: one down for 30 s, then back.
    Case { alert: "RedisHaSentinelsUnreachable", at: "2m",
        series: &[("redis_ha_sentinels_reachable{namespace=\"redis-sentinel\",instance=\"p1\"}", "3 1 1 3 3 3 3 3 3 3 3")],
        fires: &[] },
    Case { alert: "RedisHaProxyErrors", at: "7m",
        series: &[("redis_ha_errors_total{namespace=\"redis-sentinel\",instance=\"p1\",kind=\"timeout\"}", "0+10x40")],
        fires: &[&[NS, ("kind", "timeout"), ("severity", "warning")]] },
    Case { alert: "RedisHaProxyErrors", at: "7m",
        series: &[("redis_ha_errors_total{namespace=\"redis-sentinel\",instance=\"p1\",kind=\"timeout\"}", "5x40")],
        fires: &[] },
    Case { alert: "RedisNodeDown", at: "2m",
        series: &[("redis_up{instance=\"redis-0:9121\"}", "0x10"), ("redis_up{instance=\"redis-1:9121\"}", "1x10")],
        fires: &[&[R0, ("severity", "critical")]] },
    Case { alert: "RedisNodeDown", at: "2m",
        series: &[("redis_up{instance=\"redis-0:9121\"}", "1x10")],
        fires: &[] },
    Case { alert: "RedisReplicationLinkDown", at: "2m",
        series: &[("redis_master_link_up{instance=\"redis-0:9121\"}", "0x10")],
        fires: &[&[R0, ("severity", "critical")]] },
    // A failover: the link is down for 30 s, then resynced.
    Case { alert: "RedisReplicationLinkDown", at: "2m",
        series: &[("redis_master_link_up{instance=\"redis-0:9121\"}", "1 0 0 1 1 1 1 1 1 1 1")],
        fires: &[] },
    Case { alert: "RedisMemoryNearMaxmemory", at: "6m",
        series: &[("redis_memory_used_bytes{instance=\"redis-0:9121\"}", "95x30"),
                  ("redis_memory_max_bytes{instance=\"redis-0:9121\"}", "100x30")],
        fires: &[&[R0, ("severity", "warning")]] },
    // No maxmemory (0): never "near" it; and half full is fine.
    Case { alert: "RedisMemoryNearMaxmemory", at: "6m",
        series: &[("redis_memory_used_bytes{instance=\"redis-0:9121\"}", "95x30"),
                  ("redis_memory_max_bytes{instance=\"redis-0:9121\"}", "0x30"),
                  ("redis_memory_used_bytes{instance=\"redis-1:9121\"}", "50x30"),
                  ("redis_memory_max_bytes{instance=\"redis-1:9121\"}", "100x30")],
        fires: &[] },
    Case { alert: "RedisWritesRefusedOutOfMemory", at: "1m",
        series: &[("redis_errors_total{instance=\"redis-0:9121\",err=\"OOM\"}", "0 0 1 1 1 1")],
        fires: &[&[R0, ("err", "OOM"), ("severity", "critical")]] },
    // Other errors (a client's typo) are not memory.
    Case { alert: "RedisWritesRefusedOutOfMemory", at: "1m",
        series: &[("redis_errors_total{instance=\"redis-0:9121\",err=\"ERR\"}", "0 0 5 9 9 9")],
        fires: &[] },
    Case { alert: "RedisKeysEvicted", at: "1m",
        series: &[("redis_evicted_keys_total{instance=\"redis-0:9121\"}", "0 0 5 5 5 5")],
        fires: &[&[R0, ("severity", "critical")]] },
    Case { alert: "RedisKeysEvicted", at: "1m",
        series: &[("redis_evicted_keys_total{instance=\"redis-0:9121\"}", "0x5")],
        fires: &[] },
    Case { alert: "RedisRejectedConnections", at: "1m",
        series: &[("redis_rejected_connections_total{instance=\"redis-0:9121\"}", "0 0 1 1 1 1")],
        fires: &[&[R0, ("severity", "warning")]] },
    Case { alert: "RedisRejectedConnections", at: "1m",
        series: &[("redis_rejected_connections_total{instance=\"redis-0:9121\"}", "3x5")],
        fires: &[] },
];

/// The rendered rules as promtool reads them, and each alert's summary.
fn rules() -> (String, Vec<(String, String)>) {
    let text = redis_ha_k8s::render::prometheus_rules_file(&RenderOptions::default()).unwrap();
    let v: Value = serde_norway::from_str(&text).unwrap();
    let alerts = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| {
            let summary = r["annotations"]["summary"].as_str().unwrap().to_string();
            (r["alert"].as_str().unwrap().to_string(), summary)
        })
        .collect();
    (text, alerts)
}

/// The summary as Prometheus expands it for an alert with these labels.
fn expand(summary: &str, labels: &[(&str, &str)]) -> String {
    labels.iter().fold(summary.to_string(), |s, (k, v)| {
        s.replace(&format!("{{{{ $labels.{k} }}}}"), v)
    })
}

fn test_file(alerts: &[(String, String)]) -> Value {
    let tests: Vec<Value> = CASES
        .iter()
        .map(|c| {
            let summary = &alerts.iter().find(|(a, _)| a == c.alert).unwrap().1;
            let exp: Vec<Value> = c
                .fires
                .iter()
                .map(|l| {
                    let labels: serde_json::Map<_, _> =
                        l.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                    json!({"exp_labels": labels, "exp_annotations": {"summary": expand(summary, l)}})
                })
                .collect();
            json!({
                "interval": "15s",
                "input_series": c.series.iter().map(|(s, v)| json!({"series": s, "values": v})).collect::<Vec<_>>(),
                "alert_rule_test": [{"eval_time": c.at, "alertname": c.alert, "exp_alerts": exp}]
            })
        })
        .collect();
    json!({"rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": tests})
}

fn promtool() -> Option<std::path::PathBuf> {
    redis_ha_testkit::program("promtool")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_case() {
    let (_, alerts) = rules();
    let names: BTreeSet<&str> = alerts.iter().map(|(a, _)| a.as_str()).collect();
    for a in &names {
        let cases = CASES.iter().filter(|c| c.alert == *a);
        let (firing, quiet): (Vec<_>, Vec<_>) = cases.partition(|c| !c.fires.is_empty());
        assert!(!firing.is_empty(), "{a} has no case where it fires");
        assert!(!quiet.is_empty(), "{a} has no case where it stays quiet");
    }
    for c in CASES {
        assert!(
            names.contains(c.alert),
            "a case for {}, which the render does not have",
            c.alert
        );
    }
}

#[test]
fn promtool_checks_and_tests_the_rendered_rules() {
    let Some(promtool) = promtool() else {
        return;
    };
    let (text, alerts) = rules();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), &text).unwrap();
    let tests = serde_norway::to_string(&test_file(&alerts)).unwrap();
    std::fs::write(dir.path().join("rules.test.yml"), tests).unwrap();
    let out = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(dir.path().join("rules.yml")));
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{out}"
    );
    let out = run(Command::new(&promtool)
        .args(["test", "rules", "rules.test.yml"])
        .current_dir(dir.path()));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_committed_plain_rules_file_is_the_render() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/rules.yml");
    let committed = std::fs::read_to_string(&path).expect("deploy/prometheus/rules.yml");
    assert_eq!(
        committed,
        rules().0,
        "deploy/prometheus/rules.yml is stale: run `cargo run -- k8s render --out deploy/kubernetes --prometheus-rules deploy/prometheus/rules.yml`"
    );
}
