//! `k8s render --metrics`: a redis_exporter sidecar in every Redis and
//! Sentinel pod (Prometheus metrics on `:9121`, the exporter's own port),
//! published on the headless Services as port `metrics`, allowed by the
//! NetworkPolicy and scraped by the monitoring component's ServiceMonitor.
//! The Grafana dashboard's "Redis nodes" row and the node alerts read it.

use super::meta::{
    container_security, resources, secret_env, tls_mount, Component, PASSWORD_KEY,
    SENTINEL_PASSWORD_KEY,
};
use crate::options::{Cpu, RenderOptions, REDIS_PORT, SENTINEL_PORT, TLS_DIR};
use k8s_openapi::api::core::v1::{Container, ContainerPort, HTTPGetAction, Probe, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// redis_exporter's registered port.
pub const EXPORTER_PORT: u16 = 9121;
/// The port's name on the containers and the headless Services.
pub const EXPORTER_PORT_NAME: &str = "metrics";
/// The ServiceMonitor of the sidecars.
pub const NODES_MONITOR: &str = "redis-ha-nodes";

/// The sidecar for a Redis or Sentinel pod, or `None` without `--metrics`.
/// It logs in with the node's password (the same Secret) and, under TLS,
/// presents the pod's certificate as the node requires.
pub fn sidecar(o: &RenderOptions, c: Component) -> Option<Container> {
    if !o.metrics {
        return None;
    }
    let (port, key) = match c {
        Component::Sentinel => (SENTINEL_PORT, SENTINEL_PASSWORD_KEY),
        _ => (REDIS_PORT, PASSWORD_KEY),
    };
    let scheme = if o.tls_secret.is_some() {
        "rediss"
    } else {
        "redis"
    };
    let mut args = vec![
        format!("-redis.addr={scheme}://localhost:{port}"),
        format!("-web.listen-address=:{EXPORTER_PORT}"),
        "-redis-only-metrics".into(),
    ];
    if o.tls_secret.is_some() {
        args.extend([
            format!("-tls-client-cert-file={TLS_DIR}/tls.crt"),
            format!("-tls-client-key-file={TLS_DIR}/tls.key"),
            format!("-tls-ca-cert-file={TLS_DIR}/ca.crt"),
        ]);
    }
    Some(Container {
        name: "redis-exporter".into(),
        image: Some(o.exporter_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        security_context: Some(container_security()),
        args: Some(args),
        env: Some(vec![secret_env(o, "REDIS_PASSWORD", key)]),
        ports: Some(vec![ContainerPort {
            name: Some(EXPORTER_PORT_NAME.into()),
            container_port: i32::from(EXPORTER_PORT),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(http_probe()),
        liveness_probe: Some(Probe {
            failure_threshold: Some(6),
            ..http_probe()
        }),
        resources: Some(resources(&exporter_cpu(), EXPORTER_MEMORY)),
        volume_mounts: tls_mount(o).map(|m| vec![m]),
        ..Default::default()
    })
}

/// A scrape of a few hundred series: small and steady.
fn exporter_cpu() -> Cpu {
    Cpu {
        request: "10m".into(),
        limit: "100m".into(),
    }
}
const EXPORTER_MEMORY: &str = "32Mi";

fn http_probe() -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".into()),
            port: IntOrString::String(EXPORTER_PORT_NAME.into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// The headless Services' `metrics` port, with `--metrics`.
pub fn service_port(o: &RenderOptions) -> Option<ServicePort> {
    o.metrics.then(|| ServicePort {
        name: Some(EXPORTER_PORT_NAME.into()),
        port: i32::from(EXPORTER_PORT),
        target_port: Some(IntOrString::String(EXPORTER_PORT_NAME.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_metrics(tls: bool) -> RenderOptions {
        RenderOptions {
            metrics: true,
            tls_secret: tls.then(|| "redis-ha-tls".into()),
            ..RenderOptions::default()
        }
    }

    #[test]
    fn no_sidecar_without_metrics() {
        let o = RenderOptions::default();
        assert!(sidecar(&o, Component::Redis).is_none());
        assert!(service_port(&o).is_none());
    }

    #[test]
    fn each_sidecar_scrapes_its_own_node_with_its_password() {
        let o = with_metrics(false);
        let r = sidecar(&o, Component::Redis).unwrap();
        let args = r.args.unwrap();
        assert!(args.contains(&"-redis.addr=redis://localhost:6379".to_string()));
        let env = &r.env.unwrap()[0];
        assert_eq!(env.name, "REDIS_PASSWORD");
        let key = &env
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key;
        assert_eq!(key, PASSWORD_KEY);
        let s = sidecar(&o, Component::Sentinel).unwrap();
        assert!(s
            .args
            .unwrap()
            .contains(&"-redis.addr=redis://localhost:26379".to_string()));
        let key = s.env.unwrap()[0]
            .value_from
            .clone()
            .unwrap()
            .secret_key_ref
            .unwrap()
            .key;
        assert_eq!(key, SENTINEL_PASSWORD_KEY);
    }

    #[test]
    fn under_tls_the_sidecar_presents_the_pod_certificate() {
        let r = sidecar(&with_metrics(true), Component::Redis).unwrap();
        let args = r.args.unwrap();
        assert!(args.contains(&"-redis.addr=rediss://localhost:6379".to_string()));
        assert!(args
            .iter()
            .any(|a| a == "-tls-client-cert-file=/tls/tls.crt"));
        assert_eq!(r.volume_mounts.unwrap()[0].mount_path, TLS_DIR);
    }
}
