//! Renders the whole deployment from [`RenderOptions`]: typed k8s-openapi
//! objects, grouped into the numbered files of `deploy/kubernetes/`, plus
//! the kustomization and the optional monitoring component.

mod certificate;
mod config;
mod exporter;
mod jobs;
mod meta;
mod monitoring;
mod network;
mod workloads;

pub use config::PLACEHOLDER_PASSWORD;
pub use jobs::{job, Load, Phase};
pub use meta::{selector_labels, Component, PASSWORD_KEY, SENTINEL_PASSWORD_KEY};

use crate::options::RenderOptions;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;
use std::path::Path;

/// One rendered object.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    Secret(Secret),
    ConfigMap(ConfigMap),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    Job(Job),
    PodDisruptionBudget(PodDisruptionBudget),
    NetworkPolicy(NetworkPolicy),
    /// A custom resource (the monitoring component's).
    Custom(serde_json::Value),
}

/// One file of `deploy/kubernetes/` and what it holds.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Path relative to the output directory.
    pub file: &'static str,
    pub objects: Vec<Object>,
}

const HEADER: &str = "# Rendered by `redis-ha k8s render`; do not edit: change the flags and run\n\
                      #   cargo run -- k8s render --out deploy/kubernetes\n";

/// The base manifests in apply order (the original's numbering, with the
/// Secret, budgets and policies added).
pub fn manifests(o: &RenderOptions) -> anyhow::Result<Vec<Manifest>> {
    let spec = o.spec()?;
    let m = |file, objects| Manifest { file, objects };
    use Object as O;
    let mut all = vec![
        m(
            "00-namespace.yaml",
            vec![O::Namespace(config::namespace(o))],
        ),
        m("00a-secret.yaml", vec![O::Secret(config::secret(o))]),
        m(
            "01-configmap-redis.yaml",
            vec![O::ConfigMap(config::redis_config(o, &spec))],
        ),
        m(
            "02-configmap-sentinel.yaml",
            vec![O::ConfigMap(config::sentinel_config(o, &spec))],
        ),
        m(
            "03-service.yaml",
            vec![
                O::Service(network::redis_service(o)),
                O::Service(network::sentinel_service(o)),
            ],
        ),
        m(
            "04-statefulset-redis.yaml",
            vec![O::StatefulSet(workloads::redis(o, &spec))],
        ),
        m(
            "05-statefulset-sentinel.yaml",
            vec![O::StatefulSet(workloads::sentinel(o, &spec))],
        ),
        m(
            "06a-benchmark-write-job.yaml",
            vec![O::Job(job(
                o,
                Phase::Write.job_name(),
                Phase::Write,
                &Load::SEED,
            ))],
        ),
        m(
            "06b-benchmark-read-job.yaml",
            vec![O::Job(job(
                o,
                Phase::Read.job_name(),
                Phase::Read,
                &Load::SEED,
            ))],
        ),
        m(
            "07-configmap-proxy.yaml",
            vec![O::ConfigMap(config::proxy_config(o, &spec))],
        ),
        m(
            "08-deployment-proxy.yaml",
            vec![O::Deployment(workloads::proxy(o))],
        ),
        m(
            "09-service-proxy.yaml",
            vec![O::Service(network::proxy_service(o))],
        ),
        m(
            "10-poddisruptionbudgets.yaml",
            vec![
                O::PodDisruptionBudget(workloads::pdb(o, "redis", Component::Redis)),
                O::PodDisruptionBudget(workloads::pdb(o, "sentinel", Component::Sentinel)),
                O::PodDisruptionBudget(workloads::pdb(o, "redis-ha-proxy", Component::Proxy)),
            ],
        ),
        m(
            "11-networkpolicy.yaml",
            [
                O::NetworkPolicy(network::backend_policy(o)),
                O::NetworkPolicy(network::proxy_policy(o)),
            ]
            .into_iter()
            .chain(network::exporter_policy(o).map(O::NetworkPolicy))
            .collect(),
        ),
    ];
    if let Some(c) = certificate::certificate(o) {
        all.insert(2, m("00b-certificate.yaml", vec![O::Custom(c)]));
    }
    Ok(all)
}

/// The monitoring component's objects.
pub fn monitoring(o: &RenderOptions) -> Vec<Manifest> {
    vec![
        Manifest {
            file: "components/monitoring/servicemonitor.yaml",
            objects: vec![Object::Custom(monitoring::service_monitor(o))],
        },
        Manifest {
            file: "components/monitoring/prometheusrule.yaml",
            objects: vec![Object::Custom(monitoring::prometheus_rule(o))],
        },
    ]
    .into_iter()
    .chain(o.metrics.then(|| Manifest {
        file: "components/monitoring/servicemonitor-nodes.yaml",
        objects: vec![Object::Custom(monitoring::nodes_monitor(o))],
    }))
    .collect()
}

/// The alert rules as a plain Prometheus rules file (`rule_files:`), for
/// promtool and a Prometheus without the operator.
pub fn prometheus_rules_file(o: &RenderOptions) -> anyhow::Result<String> {
    Ok(format!(
        "# Rendered by `redis-ha k8s render --prometheus-rules FILE`: the PrometheusRule's groups\n\
         # for a Prometheus without the operator (rule_files:).\n{}",
        serde_norway::to_string(&monitoring::rules_file(o))?
    ))
}

/// Whether a base file is applied by `kubectl apply -k` (the benchmark
/// Jobs run on demand, write phase before read phase).
pub fn in_kustomization(file: &str) -> bool {
    !file.starts_with("06")
}

pub fn to_yaml(m: &Manifest) -> anyhow::Result<String> {
    let mut out = String::from(HEADER);
    for (i, obj) in m.objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_norway::to_string(obj)?);
    }
    Ok(out)
}

fn kustomization(o: &RenderOptions, base: &[Manifest]) -> String {
    let mut s = String::from(HEADER);
    s.push_str("# kubectl apply -k deploy/kubernetes   (the benchmark Jobs 06a/06b are applied on their own)\n");
    s.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n");
    s.push_str(&format!("namespace: {}\nresources:\n", o.namespace));
    for m in base.iter().filter(|m| in_kustomization(m.file)) {
        s.push_str(&format!("- {}\n", m.file));
    }
    s.push_str("# Prometheus-operator ServiceMonitor and alerts: uncomment (needs its CRDs).\n");
    s.push_str("# components:\n# - components/monitoring\n");
    s
}

fn component_kustomization(o: &RenderOptions) -> String {
    let mut s = format!(
        "{HEADER}apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n"
    );
    for m in monitoring(o) {
        let file = m.file.trim_start_matches("components/monitoring/");
        s.push_str(&format!("- {file}\n"));
    }
    s
}

/// Every file of the output directory and its text.
pub fn files(o: &RenderOptions) -> anyhow::Result<Vec<(String, String)>> {
    let base = manifests(o)?;
    let mut out = Vec::new();
    for m in base.iter().chain(monitoring(o).iter()) {
        out.push((m.file.to_string(), to_yaml(m)?));
    }
    out.push(("kustomization.yaml".into(), kustomization(o, &base)));
    out.push((
        "components/monitoring/kustomization.yaml".into(),
        component_kustomization(o),
    ));
    Ok(out)
}

/// Writes [`files`] under `dir`.
pub fn write(o: &RenderOptions, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    for (file, text) in files(o)? {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        written.push(file);
    }
    Ok(written)
}
