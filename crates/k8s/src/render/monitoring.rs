//! The optional monitoring component: a Prometheus-operator ServiceMonitor
//! for the proxy's /metrics and PrometheusRule alerts on its metrics
//! (`crates/proxy/src/metrics.rs`, prefix `redis_ha_`). These are CRDs, so
//! they are plain JSON rather than k8s-openapi types.

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

fn alert(name: &str, expr: &str, for_: &str, severity: &str, summary: &str) -> Value {
    json!({
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary}
    })
}

pub fn prometheus_rule(o: &RenderOptions) -> Value {
    let want = o.redis_replicas.saturating_sub(1);
    let rules = vec![
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
    ];
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "redis-ha", "namespace": o.namespace, "labels": labels(Some(Component::Proxy))},
        "spec": {"groups": [{"name": "redis-ha", "rules": rules}]}
    })
}
