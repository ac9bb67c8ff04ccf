//! The monitoring component: Prometheus-operator ServiceMonitors for the
//! proxy's /metrics (and, with `--metrics`, the redis_exporter sidecars of
//! the Redis and Sentinel pods) and the alert rules, which also render as a
//! plain Prometheus rules file (`deploy/prometheus/rules.yml`) for a
//! Prometheus without the operator. CRDs, so plain JSON rather than
//! k8s-openapi types.

use super::exporter::{EXPORTER_PORT_NAME, NODES_MONITOR};
use super::meta::{labels, selector_labels, Component};
use crate::options::RenderOptions;
use serde_json::{json, Value};

pub fn service_monitor(o: &RenderOptions) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "redis-ha-proxy", "namespace": o.namespace, "labels": labels(Some(Component::Proxy))},
        "spec": {
            "selector": {"matchLabels": selector_labels(Component::Proxy)},
            "endpoints": [{"port": "admin", "path": "/metrics", "interval": "15s"}]
        }
    })
}

/// The redis_exporter sidecars of the Redis and Sentinel pods, through
/// their headless Services' `metrics` port (only rendered with `--metrics`).
pub fn nodes_monitor(o: &RenderOptions) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": NODES_MONITOR, "namespace": o.namespace, "labels": labels(None)},
        "spec": {
            "selector": {"matchExpressions": [{
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": ["redis", "sentinel"]
            }], "matchLabels": {"app.kubernetes.io/name": "redis-ha"}},
            "endpoints": [{"port": EXPORTER_PORT_NAME, "path": "/metrics", "interval": "15s",
                           "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"}]}]
        }
    })
}

fn alert(name: &str, expr: &str, for_: &str, severity: &str, summary: &str) -> Value {
    json!({
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary}
    })
}

/// Alerts on the proxies' own metrics (`redis_ha_*`, crates/proxy/src/metrics.rs).
fn proxy_alerts(o: &RenderOptions) -> Vec<Value> {
    let want = o.redis_replicas.saturating_sub(1);
    vec![
        alert(
            "RedisHaNoMasterKnown",
            "max by (namespace) (redis_ha_master_known) == 0",
            "30s",
            "critical",
            "No redis-ha proxy knows a verified master: writes are held or failing.",
        ),
        // The proxies see a split brain as the master flipping back and forth
        // between the nodes that each claim it.
        alert(
            "RedisHaSplitBrainSuspected",
            "sum by (namespace) (increase(redis_ha_failovers_total[10m])) > 2",
            "1m",
            "critical",
            "The proxies switched master more than twice in 10 minutes: run `redis-ha k8s status` to check for more than one master.",
        ),
        alert(
            "RedisHaReplicasOutOfRotation",
            &format!("min by (namespace) (redis_ha_healthy_replicas) < {want}"),
            "2m",
            "warning",
            "Fewer healthy replicas than deployed are in the read rotation.",
        ),
        alert(
            "RedisHaSentinelsUnreachable",
            &format!("min by (namespace) (redis_ha_sentinels_reachable) < {}", o.sentinels / 2 + 1),
            "1m",
            "critical",
            "A proxy reaches fewer sentinels than the quorum.",
        ),
        alert(
            "RedisHaProxyErrors",
            "sum by (namespace, kind) (rate(redis_ha_errors_total[5m])) > 0",
            "5m",
            "warning",
            "The proxy is returning errors of its own to clients (see the kind label).",
        ),
    ]
}

/// Alerts on the Redis and Sentinel nodes themselves, from redis_exporter
/// (`redis_*`): what operators of the usual charts get from their metrics
/// sidecar. Per instance, so the alert names the node.
fn node_alerts() -> Vec<Value> {
    vec![
        alert(
            "RedisNodeDown",
            "redis_up == 0",
            "1m",
            "critical",
            "redis_exporter {{ $labels.instance }} cannot reach its Redis or Sentinel node.",
        ),
        // A failover takes a replica's link down for seconds; a minute is a
        // replica that cannot resync (auth, network, a master that refuses it).
        alert(
            "RedisReplicationLinkDown",
            "redis_master_link_up == 0",
            "1m",
            "critical",
            "Replica {{ $labels.instance }} has had no replication link to its master for a minute: it serves stale reads and cannot be promoted safely.",
        ),
        alert(
            "RedisMemoryNearMaxmemory",
            "(redis_memory_used_bytes / redis_memory_max_bytes > 0.9) and redis_memory_max_bytes > 0",
            "5m",
            "warning",
            "{{ $labels.instance }} uses over 90% of maxmemory: with maxmemory-policy noeviction, writes will soon be refused (OOM).",
        ),
        alert(
            "RedisWritesRefusedOutOfMemory",
            "increase(redis_errors_total{err=\"OOM\"}[5m]) > 0",
            "0s",
            "critical",
            "{{ $labels.instance }} refused writes with OOM (maxmemory reached under noeviction): raise maxmemory or free memory.",
        ),
        alert(
            "RedisKeysEvicted",
            "increase(redis_evicted_keys_total[5m]) > 0",
            "0s",
            "critical",
            "{{ $labels.instance }} evicted keys: acknowledged data was dropped. redis-ha renders maxmemory-policy noeviction; check the node's configuration.",
        ),
        alert(
            "RedisRejectedConnections",
            "increase(redis_rejected_connections_total[5m]) > 0",
            "0s",
            "warning",
            "{{ $labels.instance }} refused connections at maxclients.",
        ),
    ]
}

/// The rule groups, shared by the PrometheusRule and the plain rules file.
pub fn rule_groups(o: &RenderOptions) -> Value {
    json!([
        {"name": "redis-ha", "rules": proxy_alerts(o)},
        {"name": "redis-ha-nodes", "rules": node_alerts()}
    ])
}

pub fn prometheus_rule(o: &RenderOptions) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "redis-ha", "namespace": o.namespace, "labels": labels(Some(Component::Proxy))},
        "spec": {"groups": rule_groups(o)}
    })
}

/// The same rules as a Prometheus `rule_files:` entry, for `promtool` and a
/// Prometheus run without the operator (`redis-ha up`).
pub fn rules_file(o: &RenderOptions) -> Value {
    json!({"groups": rule_groups(o)})
}
