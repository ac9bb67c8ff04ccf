//! Services (headless ones for stable pod DNS names, `redis-ha` for
//! clients) and the NetworkPolicies: clients reach only the proxy; proxy,
//! Redis and Sentinel reach each other.

use super::exporter;
use super::meta::{meta, selector, selector_labels, Component};
use crate::options::{
    RenderOptions, ADMIN_PORT, PROXY_SERVICE, READ_PORT, REDIS_PORT, REDIS_SERVICE, SENTINEL_PORT,
    SENTINEL_SERVICE, WRITE_PORT,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn port(name: &str, p: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: i32::from(p),
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// A headless Service that publishes pods before they are ready: Redis and
/// Sentinel must resolve each other's names while they start.
fn headless(o: &RenderOptions, name: &str, c: Component, ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: meta(o, name, Some(c)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(c)),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn redis_service(o: &RenderOptions) -> Service {
    headless(
        o,
        REDIS_SERVICE,
        Component::Redis,
        [port("redis", REDIS_PORT)]
            .into_iter()
            .chain(exporter::service_port(o))
            .collect(),
    )
}

pub fn sentinel_service(o: &RenderOptions) -> Service {
    headless(
        o,
        SENTINEL_SERVICE,
        Component::Sentinel,
        [port("sentinel", SENTINEL_PORT)]
            .into_iter()
            .chain(exporter::service_port(o))
            .collect(),
    )
}

/// The clients' endpoint: 6379 writes, 6380 reads, 8404 admin/metrics.
pub fn proxy_service(o: &RenderOptions) -> Service {
    Service {
        metadata: meta(o, PROXY_SERVICE, Some(Component::Proxy)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(Component::Proxy)),
            ports: Some(vec![
                port("write", WRITE_PORT),
                port("read", READ_PORT),
                port("admin", ADMIN_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp(p: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(p))),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn components(key_values: &[Component]) -> LabelSelector {
    LabelSelector {
        match_labels: Some([("app.kubernetes.io/name".to_string(), "redis-ha".to_string())].into()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app.kubernetes.io/component".into(),
            operator: "In".into(),
            values: Some(key_values.iter().map(|c| c.name().to_string()).collect()),
        }]),
    }
}

fn policy(
    o: &RenderOptions,
    name: &str,
    pods: LabelSelector,
    rule: NetworkPolicyIngressRule,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(o, name, None),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![rule]),
            ..Default::default()
        }),
    }
}

/// Redis and Sentinel accept only each other and the proxy.
pub fn backend_policy(o: &RenderOptions) -> NetworkPolicy {
    let inner = [Component::Redis, Component::Sentinel, Component::Proxy];
    policy(
        o,
        "redis-ha-backend",
        components(&[Component::Redis, Component::Sentinel]),
        NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(components(&inner)),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(REDIS_PORT), tcp(SENTINEL_PORT)]),
        },
    )
}

/// With `--metrics`: the exporter sidecars' port, open to any pod (the
/// cluster's Prometheus runs in a namespace of its own, unknown here), as
/// the proxy's admin port is. Only metrics are served there.
pub fn exporter_policy(o: &RenderOptions) -> Option<NetworkPolicy> {
    o.metrics.then(|| {
        policy(
            o,
            "redis-ha-exporter",
            components(&[Component::Redis, Component::Sentinel]),
            NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![tcp(exporter::EXPORTER_PORT)]),
            },
        )
    })
}

/// The proxy accepts clients from anywhere, on its three ports only.
pub fn proxy_policy(o: &RenderOptions) -> NetworkPolicy {
    policy(
        o,
        "redis-ha-proxy",
        selector(Component::Proxy),
        NetworkPolicyIngressRule {
            from: None,
            ports: Some(vec![tcp(WRITE_PORT), tcp(READ_PORT), tcp(ADMIN_PORT)]),
        },
    )
}
