//! The long-running workloads: the Redis and Sentinel StatefulSets, the
//! proxy Deployment, and a PodDisruptionBudget for each.

use super::config::{PROXY_CONFIGMAP, REDIS_CONFIGMAP, ROLE_FILE, SENTINEL_CONFIGMAP};
use super::meta::*;
use crate::options::*;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, TCPSocketAction,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use redis_ha_topology::spec::Spec;
use std::collections::BTreeMap;

/// Where the redis-ha binary is copied for the Redis container's preStop.
const TOOLS_DIR: &str = "/opt/redis-ha";

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

/// `mounts` plus the TLS mount when the render has TLS.
fn with_tls_mount(o: &RenderOptions, mut mounts: Vec<VolumeMount>) -> Vec<VolumeMount> {
    mounts.extend(tls_mount(o));
    mounts
}

/// `volumes` plus the TLS Secret volume when the render has TLS.
fn with_tls_volume(o: &RenderOptions, mut volumes: Vec<Volume>) -> Vec<Volume> {
    volumes.extend(tls_volume(o));
    volumes
}

fn config_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            default_mode: Some(0o444),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn container_port(name: &str, p: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(p),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn exec_probe(script: &str, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn tcp_probe(p: u16, period: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(p)),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// A container with the shared hardening; the caller fills in the rest.
fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        security_context: Some(container_security()),
        ..Default::default()
    }
}

fn pod_template(c: Component, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(Some(c))),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            security_context: Some(pod_security()),
            ..spec
        }),
    }
}

fn volume_claim(o: &RenderOptions, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(labels(None)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: o.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `--sentinel HOST:PORT` for every sentinel.
fn sentinel_flags(o: &RenderOptions) -> Vec<String> {
    o.sentinel_addrs()
        .into_iter()
        .flat_map(|a| ["--sentinel".to_string(), a])
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Copies the redis-ha binary where the Redis container's preStop finds it.
fn tools_init(o: &RenderOptions) -> Container {
    Container {
        command: Some(strings(&["cp", "/usr/local/bin/redis-ha", TOOLS_DIR])),
        volume_mounts: Some(vec![mount("tools", TOOLS_DIR)]),
        resources: Some(resources(&o.sentinel_cpu, &o.sentinel_memory)),
        ..container("copy-redis-ha", &o.image)
    }
}

/// Decides the boot role: empty file, or `replicaof` the current master.
/// It stays in Init until a majority of the sentinels answers (they start
/// in parallel with the Redis pods), reads the pod's own data volume
/// (`--data-dir`) and the other Redis pods while they run (`--peer`), so
/// an empty pod named master hands over instead of starting empty. With
/// TLS, the same command with the client TLS flags (`--tls --cert --key
/// --cacert`, the Secret mounted), as the sentinels listen on TLS only.
fn role_init(o: &RenderOptions, spec: &Spec) -> Container {
    let own = format!("{}:{REDIS_PORT}", o.own_host(REDIS_SERVICE, "$(POD_NAME)"));
    let first = format!("{}:{REDIS_PORT}", o.redis_host(0));
    let mut cmd = strings(&["redis-ha", "init-role"]);
    cmd.extend(sentinel_flags(o));
    cmd.extend([
        "--master-name".into(),
        spec.master_name.clone(),
        "--announce".into(),
        own,
    ]);
    for i in 0..usize::from(o.redis_replicas) {
        cmd.extend(["--peer".into(), format!("{}:{REDIS_PORT}", o.redis_host(i))]);
    }
    cmd.extend([
        "--first-master".into(),
        first,
        "--data-dir".into(),
        "/data".into(),
        "--output".into(),
        ROLE_FILE.into(),
    ]);
    cmd.extend(o.client_tls_flags());
    let mut env = vec![pod_name_env()];
    env.extend(password_env(o));
    Container {
        command: Some(cmd),
        env: Some(env),
        volume_mounts: Some(with_tls_mount(o, vec![mount("data", "/data")])),
        resources: Some(resources(&o.sentinel_cpu, &o.sentinel_memory)),
        ..container("init-role", &o.image)
    }
}

/// How long the Redis pods get to stop; the preStop switchover must finish
/// well within it, or the kubelet kills the master mid-switch.
const REDIS_GRACE_SECONDS: i64 = 60;

/// Hands the master role over before a planned stop (no-op on replicas),
/// within half the grace period; with TLS, over TLS (the client TLS flags).
fn redis_pre_stop(o: &RenderOptions, spec: &Spec) -> Lifecycle {
    let own = format!("{}:{REDIS_PORT}", o.own_host(REDIS_SERVICE, "$POD_NAME"));
    let script = format!(
        "{TOOLS_DIR}/redis-ha switchover {} --master-name {} --only-if-master \"{own}\" --timeout {}s{} || true",
        sentinel_flags(o).join(" "),
        spec.master_name,
        REDIS_GRACE_SECONDS / 2,
        o.client_tls_words()
    );
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), script]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn redis_container(o: &RenderOptions, spec: &Spec) -> Container {
    let own = o.own_host(REDIS_SERVICE, "$(POD_NAME)");
    let args = [
        "/etc/redis/redis.conf",
        "--requirepass",
        "$(REDIS_HA_PASSWORD)",
        "--masterauth",
        "$(REDIS_HA_PASSWORD)",
        "--replica-announce-ip",
        &own,
    ];
    let mut env = vec![pod_name_env()];
    env.extend(password_env(o));
    env.push(secret_env(o, "REDISCLI_AUTH", PASSWORD_KEY));
    Container {
        command: Some(strings(&[spec.engine.server()])),
        args: Some(strings(&args)),
        env: Some(env),
        ports: Some(vec![container_port("redis", REDIS_PORT)]),
        liveness_probe: Some(tcp_probe(REDIS_PORT, 10, 6)),
        readiness_probe: Some(exec_probe(
            &format!(
                "{}{} --no-auth-warning ping | grep -q PONG",
                spec.engine.cli(),
                o.client_tls_words()
            ),
            5,
            2,
        )),
        lifecycle: Some(redis_pre_stop(o, spec)),
        resources: Some(resources(&o.redis_cpu, &o.redis_memory)),
        volume_mounts: Some(with_tls_mount(
            o,
            vec![
                mount("data", "/data"),
                mount("config", "/etc/redis"),
                mount("tools", TOOLS_DIR),
            ],
        )),
        ..container("redis", &o.server_image())
    }
}

/// The replica guard: a restarted node starts with `replica-priority 0`
/// (init-role's file) so Sentinel cannot promote it before it has synced;
/// this sidecar raises it once the node has synced from a master the
/// sentinels see up, and again after each restart of the container.
fn replica_guard(o: &RenderOptions, spec: &Spec) -> Container {
    let own = format!("{}:{REDIS_PORT}", o.own_host(REDIS_SERVICE, "$(POD_NAME)"));
    let mut cmd = strings(&["redis-ha", "replica-guard", "--node", &own]);
    cmd.extend(sentinel_flags(o));
    cmd.extend(["--master-name".into(), spec.master_name.clone()]);
    // Kept in step with the role Sentinel gives (the ConfigMap's redis.conf
    // is read-only, so CONFIG REWRITE cannot): init-role's ranking after
    // the sentinels lost their state reads which node was master last.
    cmd.extend(["--role-file".into(), ROLE_FILE.into()]);
    cmd.extend(o.client_tls_flags());
    let mut env = vec![pod_name_env()];
    env.extend(password_env(o));
    let cpu = Cpu {
        request: "10m".into(),
        limit: "100m".into(),
    };
    Container {
        command: Some(cmd),
        env: Some(env),
        volume_mounts: Some(with_tls_mount(o, vec![mount("data", "/data")])),
        resources: Some(resources(&cpu, "32Mi")),
        ..container("replica-guard", &o.image)
    }
}

/// The node's container, and its redis_exporter sidecar with `--metrics`.
fn with_exporter(o: &RenderOptions, c: Component, node: Container) -> Vec<Container> {
    std::iter::once(node)
        .chain(super::exporter::sidecar(o, c))
        .collect()
}

fn stateful_set(
    o: &RenderOptions,
    name: &str,
    service: &str,
    c: Component,
    replicas: u16,
    template: PodTemplateSpec,
    claim: PersistentVolumeClaim,
) -> StatefulSet {
    StatefulSet {
        metadata: workload_meta(o, name, c),
        spec: Some(StatefulSetSpec {
            service_name: Some(service.into()),
            replicas: Some(i32::from(replicas)),
            // Pods start together: init-role and the sentinels' peer lookup
            // settle the roles, not the start order.
            pod_management_policy: Some("Parallel".into()),
            selector: selector(c),
            template,
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn redis(o: &RenderOptions, spec: &Spec) -> StatefulSet {
    let pod = PodSpec {
        termination_grace_period_seconds: Some(REDIS_GRACE_SECONDS),
        init_containers: Some(vec![tools_init(o), role_init(o, spec)]),
        containers: [
            with_exporter(o, Component::Redis, redis_container(o, spec)),
            vec![replica_guard(o, spec)],
        ]
        .concat(),
        volumes: Some(with_tls_volume(
            o,
            vec![config_volume("config", REDIS_CONFIGMAP), empty_dir("tools")],
        )),
        ..Default::default()
    };
    let mut set = stateful_set(
        o,
        "redis",
        REDIS_SERVICE,
        Component::Redis,
        o.redis_replicas,
        pod_template(Component::Redis, pod),
        volume_claim(o, &o.storage_size),
    );
    set.metadata = workload_meta_skipping(o, "redis", Component::Redis, &GUARD_SKIPS);
    set
}

/// The replica-guard sidecar serves nothing to probe: it exits on a
/// failure it cannot wait out, and the kubelet restarts it; a readiness
/// probe would take the Redis pod out of its Service while it resyncs.
const GUARD_SKIPS: [(&str, &str); 2] = [
    (
        "CKV_K8S_8",
        "the replica-guard sidecar has no port; the kubelet restarts it if it exits",
    ),
    (
        "CKV_K8S_9",
        "the replica-guard sidecar must not gate the Redis pod's readiness",
    ),
];

fn sentinel_init(o: &RenderOptions) -> Container {
    let mut env = vec![pod_name_env()];
    env.extend(password_env(o));
    Container {
        command: Some(strings(&["sh", "/config/init.sh"])),
        env: Some(env),
        volume_mounts: Some(with_tls_mount(
            o,
            vec![mount("data", "/data"), mount("config", "/config")],
        )),
        resources: Some(resources(&o.sentinel_cpu, &o.sentinel_memory)),
        ..container("copy-config", &o.server_image())
    }
}

fn sentinel_container(o: &RenderOptions, spec: &Spec) -> Container {
    let cli = format!("{}{}", spec.engine.cli(), o.client_tls_words());
    Container {
        command: Some(strings(&[
            spec.engine.server(),
            "/data/sentinel.conf",
            "--sentinel",
        ])),
        env: Some(vec![secret_env(o, "REDISCLI_AUTH", SENTINEL_PASSWORD_KEY)]),
        ports: Some(vec![container_port("sentinel", SENTINEL_PORT)]),
        liveness_probe: Some(tcp_probe(SENTINEL_PORT, 10, 6)),
        readiness_probe: Some(exec_probe(
            &format!("{cli} --no-auth-warning -p {SENTINEL_PORT} ping | grep -q PONG"),
            5,
            2,
        )),
        resources: Some(resources(&o.sentinel_cpu, &o.sentinel_memory)),
        volume_mounts: Some(with_tls_mount(o, vec![mount("data", "/data")])),
        ..container("sentinel", &o.server_image())
    }
}

/// Sentinels run as a StatefulSet, not the original's Deployment: each
/// needs a stable name (peers and the proxy address it by DNS) and a volume
/// of its own, because Sentinel rewrites its config file with what it has
/// learnt (epochs, replicas, peers); a Deployment pod would restart with
/// the ConfigMap's first-boot view and a new identity.
pub fn sentinel(o: &RenderOptions, spec: &Spec) -> StatefulSet {
    let pod = PodSpec {
        init_containers: Some(vec![sentinel_init(o)]),
        containers: with_exporter(o, Component::Sentinel, sentinel_container(o, spec)),
        volumes: Some(with_tls_volume(
            o,
            vec![config_volume("config", SENTINEL_CONFIGMAP)],
        )),
        ..Default::default()
    };
    stateful_set(
        o,
        "sentinel",
        SENTINEL_SERVICE,
        Component::Sentinel,
        o.sentinels,
        pod_template(Component::Sentinel, pod),
        volume_claim(o, "64Mi"),
    )
}

fn proxy_container(o: &RenderOptions) -> Container {
    let mut args = strings(&["proxy"]);
    args.extend(sentinel_flags(o));
    args.extend(strings(&[
        "--master-name",
        "$(MASTER_NAME)",
        "--bind",
        "0.0.0.0",
        "--failover-hold",
        "$(FAILOVER_HOLD)",
        "--max-replica-lag",
        "$(MAX_REPLICA_LAG)",
        "--read-fallback",
        "$(READ_FALLBACK)",
        "--mode",
        "$(MODE)",
        "--drain-grace",
        PROXY_DRAIN_GRACE,
        "--drain-timeout",
        PROXY_DRAIN_TIMEOUT,
    ]));
    args.extend(proxy_tls_args(o));
    Container {
        command: Some(strings(&["redis-ha"])),
        args: Some(args),
        env: Some(password_env(o)),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: PROXY_CONFIGMAP.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        ports: Some(vec![
            container_port("write", WRITE_PORT),
            container_port("read", READ_PORT),
            container_port("admin", ADMIN_PORT),
        ]),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 2, 2)),
        resources: Some(resources(&o.proxy_cpu, &o.proxy_memory)),
        volume_mounts: tls_mount(o).map(|m| vec![m]),
        ..container("proxy", &o.image)
    }
}

/// With TLS, the proxy's usual ports speak TLS only (`--port 0
/// --read-port 0`), checking client certificates when given (the password
/// is still required), and it reaches Redis and Sentinel over TLS with the
/// same certificate as client certificate (as `redis-ha up --tls`).
fn proxy_tls_args(o: &RenderOptions) -> Vec<String> {
    let Some(t) = o.tls_files() else {
        return Vec::new();
    };
    let (w, r) = (WRITE_PORT.to_string(), READ_PORT.to_string());
    let flags = [
        ("--port", "0"),
        ("--read-port", "0"),
        ("--tls-port", &w),
        ("--tls-read-port", &r),
        ("--tls-cert-file", &t.cert_file),
        ("--tls-key-file", &t.key_file),
        ("--tls-ca-cert-file", &t.ca_cert_file),
        ("--tls-auth-clients", "optional"),
        ("--backend-cacert", &t.ca_cert_file),
        ("--backend-cert", &t.cert_file),
        ("--backend-key", &t.key_file),
    ];
    let mut v = vec!["--backend-tls".to_string()];
    v.extend(
        flags
            .into_iter()
            .flat_map(|(f, x)| [f.to_string(), x.to_string()]),
    );
    v
}

/// On SIGTERM the proxy stays in the Service's endpoints while Kubernetes
/// takes it out (it keeps accepting, `/readyz` failing), so no preStop sleep
/// is needed: this is that grace.
pub const PROXY_DRAIN_GRACE: &str = "5s";
/// Then its clients finish what they sent and are closed between requests.
pub const PROXY_DRAIN_TIMEOUT: &str = "20s";
/// Above grace + timeout, so the kubelet never SIGKILLs a draining proxy.
pub const PROXY_TERMINATION_GRACE_SECONDS: i64 = 40;

/// The proxy pods: a rollout starts a new pod before an old one drains
/// (`maxUnavailable: 0`), and the pods spread over nodes (and zones) when
/// the cluster has them, so a node drain takes one proxy at a time (the
/// PDB's `maxUnavailable: 1`).
pub fn proxy(o: &RenderOptions) -> Deployment {
    let pod = PodSpec {
        containers: vec![proxy_container(o)],
        volumes: tls_volume(o).map(|v| vec![v]),
        termination_grace_period_seconds: Some(PROXY_TERMINATION_GRACE_SECONDS),
        topology_spread_constraints: Some(
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
                .into_iter()
                .map(|key| spread(Component::Proxy, key))
                .collect(),
        ),
        ..Default::default()
    };
    Deployment {
        metadata: workload_meta(o, "redis-ha-proxy", Component::Proxy),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::from(o.proxy_replicas)),
            selector: selector(Component::Proxy),
            template: pod_template(Component::Proxy, pod),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Pods of `c` spread evenly over `key` (a node, a zone); scheduled anyway
/// where that cannot be (a one-node cluster, no zones).
fn spread(c: Component, key: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(selector(c)),
        ..Default::default()
    }
}

/// At most one pod of the component down for voluntary disruptions.
pub fn pdb(o: &RenderOptions, name: &str, c: Component) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(o, name, Some(c)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(c)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
