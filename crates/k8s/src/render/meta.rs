//! Building blocks every manifest shares: labels, object metadata, the
//! restricted security context, resources, Secret-backed environment.

use crate::options::{Cpu, RenderOptions, TLS_DIR, TLS_VOLUME};
use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, ObjectFieldSelector, PodSecurityContext,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

/// The non-root user every container runs as (the Dockerfile's `redis-ha`).
pub const UID: i64 = 10001;

/// The parts of the deployment, as `app.kubernetes.io/component`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Redis,
    Sentinel,
    Proxy,
    Benchmark,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Redis => "redis",
            Component::Sentinel => "sentinel",
            Component::Proxy => "proxy",
            Component::Benchmark => "benchmark",
        }
    }
}

/// The labels that select a component's pods.
pub fn selector_labels(c: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "redis-ha".into()),
        ("app.kubernetes.io/component".into(), c.name().into()),
    ])
}

pub fn selector(c: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(c)),
        ..Default::default()
    }
}

/// Selector labels plus the ones for people and tools.
pub fn labels(c: Option<Component>) -> BTreeMap<String, String> {
    let mut l = c
        .map(selector_labels)
        .unwrap_or_else(|| BTreeMap::from([("app.kubernetes.io/name".into(), "redis-ha".into())]));
    l.insert("app.kubernetes.io/part-of".into(), "redis-ha".into());
    l.insert("app.kubernetes.io/managed-by".into(), "redis-ha".into());
    l
}

pub fn meta(o: &RenderOptions, name: &str, c: Option<Component>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(o.namespace.clone()),
        labels: Some(labels(c)),
        ..Default::default()
    }
}

/// Checkov skips, each with its reason, as `checkov.io/skipN` annotations.
pub fn skips(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .enumerate()
        .map(|(i, (id, why))| (format!("checkov.io/skip{}", i + 1), format!("{id}={why}")))
        .collect()
}

/// Checkov skips every workload carries (checkov reads them from the
/// workload's own metadata, not its pod template).
pub const WORKLOAD_SKIPS: [(&str, &str); 3] = [
    (
        "CKV_K8S_43",
        "images are pinned by tag, set by render flags; pin a digest with --image/--redis-image",
    ),
    (
        "CKV_K8S_35",
        "redis-ha and redis-cli take passwords from the environment (REDIS_HA_PASSWORD, REDISCLI_AUTH)",
    ),
    (
        "CKV_K8S_15",
        "tags are pinned, and IfNotPresent lets locally loaded images run (kind load, minikube image load)",
    ),
];

/// Metadata of a Deployment, StatefulSet or Job: [`meta`] plus the skips.
pub fn workload_meta(o: &RenderOptions, name: &str, c: Component) -> ObjectMeta {
    workload_meta_skipping(o, name, c, &[])
}

/// [`workload_meta`] with the workload's own skips after the common ones.
pub fn workload_meta_skipping(
    o: &RenderOptions,
    name: &str,
    c: Component,
    own: &[(&str, &str)],
) -> ObjectMeta {
    let all: Vec<(&str, &str)> = WORKLOAD_SKIPS.iter().chain(own).copied().collect();
    ObjectMeta {
        annotations: Some(skips(&all)),
        ..meta(o, name, Some(c))
    }
}

pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(UID),
        run_as_group: Some(UID),
        fs_group: Some(UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(UID),
        run_as_group: Some(UID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn resources(cpu: &Cpu, memory: &str) -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q(&cpu.request)),
            ("memory".into(), q(memory)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q(&cpu.limit)),
            ("memory".into(), q(memory)),
        ])),
        ..Default::default()
    }
}

/// Keys of the password Secret.
pub const PASSWORD_KEY: &str = "password";
pub const SENTINEL_PASSWORD_KEY: &str = "sentinel-password";

pub fn secret_env(o: &RenderOptions, name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: o.password_secret.clone(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `REDIS_HA_PASSWORD` and `REDIS_HA_SENTINEL_PASSWORD` from the Secret.
pub fn password_env(o: &RenderOptions) -> Vec<EnvVar> {
    vec![
        secret_env(o, "REDIS_HA_PASSWORD", PASSWORD_KEY),
        secret_env(o, "REDIS_HA_SENTINEL_PASSWORD", SENTINEL_PASSWORD_KEY),
    ]
}

/// `POD_NAME` from the downward API.
pub fn pod_name_env() -> EnvVar {
    EnvVar {
        name: "POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `--tls-secret` volume (`None` without TLS): group-readable, as the
/// pods' fsGroup owns it, so the non-root servers can read the key.
pub fn tls_volume(o: &RenderOptions) -> Option<Volume> {
    Some(Volume {
        name: TLS_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(o.tls_secret.clone()?),
            default_mode: Some(0o440),
            optional: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Its read-only mount at [`TLS_DIR`] (`None` without TLS).
pub fn tls_mount(o: &RenderOptions) -> Option<VolumeMount> {
    o.tls_secret.as_ref().map(|_| VolumeMount {
        name: TLS_VOLUME.into(),
        mount_path: TLS_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    })
}
