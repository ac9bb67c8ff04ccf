//! The checked-in `deploy/kubernetes/` is the default render, every object
//! is a valid k8s-openapi type, and the offline validators accept it:
//! kubectl kustomize, kubernetes-validate --strict (1.29 and 1.34), checkov.

use redis_ha_k8s::options::RenderOptions;
use redis_ha_k8s::render::{files, manifests, monitoring, to_yaml, Object};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

const REGENERATE: &str = "regenerate with: cargo run -- k8s render --out deploy/kubernetes";

fn deploy_dir() -> PathBuf {
    // Canonical: checkov finds nothing under a path with `..` in it.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/kubernetes")
        .canonicalize()
        .expect("deploy/kubernetes exists")
}

/// Parses `yaml` as `K` and checks nothing was dropped on the way.
fn round_trip<K: DeserializeOwned + Serialize>(yaml: &str, what: &str) {
    let typed: K = serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{what}: {e}"));
    let before: serde_json::Value = serde_norway::from_str(yaml).unwrap();
    let after = serde_json::to_value(&typed).unwrap();
    assert_eq!(before, after, "{what}: fields lost in the typed round trip");
}

#[test]
fn every_object_deserializes_as_its_type() {
    let o = RenderOptions::default();
    assert_eq!(check_types(&o), (18, 0));
    for m in monitoring(&o) {
        let yaml = to_yaml(&m).unwrap();
        let v: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1", "{}", m.file);
    }
}

/// Round-trips every base object through its k8s-openapi type; the typed
/// objects and the cert-manager Certificates checked.
fn check_types(o: &RenderOptions) -> (usize, usize) {
    let (mut checked, mut certificates) = (0, 0);
    for m in manifests(o).unwrap() {
        for (i, obj) in m.objects.iter().enumerate() {
            let yaml = serde_norway::to_string(obj).unwrap();
            let what = format!("{} #{i}", m.file);
            use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
            use k8s_openapi::api::{networking::v1 as net, policy::v1 as policy};
            match obj {
                Object::Namespace(_) => round_trip::<core::Namespace>(&yaml, &what),
                Object::Secret(_) => round_trip::<core::Secret>(&yaml, &what),
                Object::ConfigMap(_) => round_trip::<core::ConfigMap>(&yaml, &what),
                Object::Service(_) => round_trip::<core::Service>(&yaml, &what),
                Object::StatefulSet(_) => round_trip::<apps::StatefulSet>(&yaml, &what),
                Object::Deployment(_) => round_trip::<apps::Deployment>(&yaml, &what),
                Object::Job(_) => round_trip::<batch::Job>(&yaml, &what),
                Object::PodDisruptionBudget(_) => {
                    round_trip::<policy::PodDisruptionBudget>(&yaml, &what)
                }
                Object::NetworkPolicy(_) => round_trip::<net::NetworkPolicy>(&yaml, &what),
                Object::Custom(v) if v["kind"] == "Certificate" => {
                    assert_eq!(v["apiVersion"], "cert-manager.io/v1", "{what}");
                    certificates += 1;
                    continue;
                }
                Object::Custom(v) => panic!("{what}: custom resource in the base: {v}"),
            }
            checked += 1;
        }
    }
    (checked, certificates)
}

fn listed(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            listed(&p, base, out);
        } else {
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn checked_in_files_are_the_default_render() {
    let dir = deploy_dir();
    let rendered = files(&RenderOptions::default()).unwrap();
    for (file, text) in &rendered {
        let on_disk = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("deploy/kubernetes/{file}: {e}; {REGENERATE}"));
        assert!(
            on_disk == *text,
            "deploy/kubernetes/{file} differs from the render; {REGENERATE}"
        );
    }
    let mut present = Vec::new();
    listed(&dir, &dir, &mut present);
    present.sort();
    let mut want: Vec<String> = rendered.into_iter().map(|(f, _)| f).collect();
    want.sort();
    assert_eq!(
        present, want,
        "files in deploy/kubernetes the render does not make; {REGENERATE}"
    );
}

#[test]
fn redis_conf_comes_from_the_topology_render() {
    let o = RenderOptions::default();
    let cm = &manifests(&o).unwrap()[2];
    let Object::ConfigMap(c) = &cm.objects[0] else {
        panic!("01 is not a ConfigMap")
    };
    let conf = &c.data.as_ref().unwrap()["redis.conf"];
    for line in [
        "maxmemory 256mb\n",
        "appendonly yes\nappendfsync everysec\n",
        "min-replicas-to-write 1\n",
    ] {
        assert!(conf.contains(line), "redis.conf lacks {line:?}");
    }
    assert!(conf.ends_with("include /data/role.conf\n"));
    let Object::ConfigMap(s) = &manifests(&o).unwrap()[3].objects[0] else {
        panic!()
    };
    let sconf = &s.data.as_ref().unwrap()["sentinel.conf"];
    assert!(sconf.contains(
        "sentinel monitor mymaster redis-0.redis-headless.redis-sentinel.svc.cluster.local 6379 2\n"
    ));
    assert!(sconf.contains("sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"));
    assert!(sconf.contains("down-after-milliseconds mymaster 5000\n"));
    assert!(sconf.contains("failover-timeout mymaster 180000\n"));
}

#[test]
fn options_change_the_render() {
    let o = RenderOptions {
        namespace: "other".into(),
        redis_replicas: 5,
        sentinels: 5,
        storage_class: Some("fast".into()),
        ..RenderOptions::default()
    };
    let all: String = manifests(&o)
        .unwrap()
        .iter()
        .map(|m| to_yaml(m).unwrap())
        .collect();
    assert!(all.contains("replicas: 5"));
    assert!(all.contains("storageClassName: fast"));
    assert!(all.contains(
        "sentinel monitor mymaster redis-0.redis-headless.other.svc.cluster.local 6379 3"
    ));
    assert!(!all.contains("redis-sentinel"));
    let bad = RenderOptions {
        sentinels: 0,
        ..RenderOptions::default()
    };
    assert!(manifests(&bad).is_err());
}

#[test]
fn the_valkey_engine_renders_valkey_pods() {
    let o = RenderOptions {
        engine: redis_ha_topology::Engine::Valkey,
        ..RenderOptions::default()
    };
    let all: String = manifests(&o)
        .unwrap()
        .iter()
        .map(|m| to_yaml(m).unwrap())
        .collect();
    assert!(all.contains("image: valkey/valkey:8.0"));
    assert!(all.contains("- valkey-server"));
    assert!(all.contains("valkey-cli --no-auth-warning ping"));
    assert!(
        !all.contains("redis-cli --") && !all.contains("- redis-server"),
        "a redis-cli or redis-server command left in the valkey render"
    );
    assert!(!all.contains("image: redis:"));
}

/// The tool's path, or `None` after printing SKIPPED (a failure under CI):
/// the workspace's one lookup of external programs.
fn tool(name: &str) -> Option<PathBuf> {
    redis_ha_testkit::program(name)
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
fn kubectl_kustomize_builds_base_and_monitoring() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let base = run(Command::new(&kubectl).arg("kustomize").arg(deploy_dir()));
    assert!(base.contains("kind: StatefulSet") && !base.contains("kind: Job"));
    assert!(!base.contains("kind: ServiceMonitor"));
    let overlay = tempfile::tempdir().unwrap();
    let rel = pathdiff(&deploy_dir(), overlay.path());
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!("resources:\n- {rel}\ncomponents:\n- {rel}/components/monitoring\n"),
    )
    .unwrap();
    let with = run(Command::new(&kubectl)
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(overlay.path()));
    assert!(with.contains("kind: ServiceMonitor") && with.contains("kind: PrometheusRule"));
}

/// `to` as seen from `from` (both absolute), for kustomize's relative paths.
fn pathdiff(to: &Path, from: &Path) -> String {
    let to = to.canonicalize().unwrap();
    let ups = from.components().count() - 1;
    format!(
        "{}{}",
        "../".repeat(ups),
        to.strip_prefix("/").unwrap().display()
    )
}

/// The base files of `o`'s render under `dir` that Kubernetes' own schemas
/// cover (not the cert-manager Certificate, a CRD).
fn base_files(o: &RenderOptions, dir: &Path) -> Vec<PathBuf> {
    manifests(o)
        .unwrap()
        .iter()
        .filter(|m| !m.objects.iter().any(|x| matches!(x, Object::Custom(_))))
        .map(|m| dir.join(m.file))
        .collect()
}

#[test]
fn kubernetes_validate_strict_accepts_1_29_and_1_34() {
    kubernetes_validate(&base_files(&RenderOptions::default(), &deploy_dir()));
}

fn kubernetes_validate(files: &[PathBuf]) {
    let Some(kv) = tool("kubernetes-validate") else {
        return;
    };
    for version in ["1.29.0", "1.34.0"] {
        let out = run(Command::new(&kv)
            .args(["--strict", "--quiet", "-k", version])
            .args(files));
        assert!(
            !out.contains("ERROR"),
            "kubernetes-validate {version}:\n{out}"
        );
    }
}

#[test]
fn checkov_finds_no_failed_checks() {
    checkov(&deploy_dir());
}

fn checkov(dir: &Path) {
    let Some(checkov) = tool("checkov") else {
        return;
    };
    let out = Command::new(&checkov)
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CKV_GITHUB_CONFIG_FETCH_DATA", "False")
        .args([
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "-d",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("checkov output is not JSON ({e}):\n{text}"));
    let summary = &report["summary"];
    assert_eq!(
        summary["failed"], 0,
        "checkov failed checks (fix, or skip with a reason in the render):\n{text}"
    );
    assert_eq!(
        summary["parsing_errors"], 0,
        "checkov could not parse:\n{text}"
    );
    assert!(
        summary["passed"].as_u64().unwrap_or(0) > 50,
        "checkov checked too little:\n{text}"
    );
}

// --- `--tls-secret`: TLS everywhere, offline checks of the render. ---

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};

const TLS_SECRET: &str = "redis-ha-tls";
const CLI_TLS: &str = "--tls --cert /tls/tls.crt --key /tls/tls.key --cacert /tls/ca.crt";

fn tls() -> RenderOptions {
    RenderOptions {
        tls_secret: Some(TLS_SECRET.into()),
        ..RenderOptions::default()
    }
}

fn with_issuer() -> RenderOptions {
    RenderOptions {
        cert_manager_issuer: Some("redis-ha-ca".into()),
        ..tls()
    }
}

/// Every pod of the render: its owner's file and name, and its spec.
fn pods(o: &RenderOptions) -> Vec<(String, PodSpec)> {
    let mut out = Vec::new();
    for m in manifests(o).unwrap() {
        for obj in &m.objects {
            let spec = match obj {
                Object::StatefulSet(s) => s.spec.as_ref().unwrap().template.spec.clone(),
                Object::Deployment(d) => d.spec.as_ref().unwrap().template.spec.clone(),
                Object::Job(j) => j.spec.as_ref().unwrap().template.spec.clone(),
                _ => continue,
            };
            out.push((m.file.to_string(), spec.unwrap()));
        }
    }
    out
}

fn containers(p: &PodSpec) -> impl Iterator<Item = &Container> {
    p.init_containers
        .iter()
        .flatten()
        .chain(p.containers.iter())
}

fn config(o: &RenderOptions, file: &str, key: &str) -> String {
    let all = manifests(o).unwrap();
    let m = all.iter().find(|m| m.file == file).unwrap();
    let Object::ConfigMap(c) = &m.objects[0] else {
        panic!("{file} is not a ConfigMap")
    };
    c.data.as_ref().unwrap()[key].clone()
}

fn all_yaml(o: &RenderOptions) -> String {
    manifests(o)
        .unwrap()
        .iter()
        .map(|m| to_yaml(m).unwrap())
        .collect()
}

#[test]
fn tls_render_objects_round_trip_through_their_types() {
    assert_eq!(check_types(&tls()), (18, 0));
    assert_eq!(check_types(&with_issuer()), (18, 1));
}

#[test]
fn the_default_render_has_no_tls() {
    let all = all_yaml(&RenderOptions::default());
    for word in ["/tls", "--tls", "tls-port", "redis-ha-tls", "Certificate"] {
        assert!(!all.contains(word), "{word:?} in the default render");
    }
}

#[test]
fn tls_redis_and_sentinel_listen_on_tls_only() {
    let o = tls();
    let redis = config(&o, "01-configmap-redis.yaml", "redis.conf");
    let sentinel = config(&o, "02-configmap-sentinel.yaml", "sentinel.conf");
    for (conf, port) in [(&redis, 6379), (&sentinel, 26379)] {
        assert!(
            conf.contains(&format!("port 0\ntls-port {port}\n")),
            "{conf}"
        );
        assert!(!conf.contains(&format!("\nport {port}")), "{conf}");
        assert!(conf.contains("tls-cert-file /tls/tls.crt\ntls-key-file /tls/tls.key\n"));
        assert!(conf.contains("tls-ca-cert-file /tls/ca.crt\n"));
        assert!(conf.contains("tls-auth-clients yes\ntls-replication yes\n"));
    }
    assert!(redis.ends_with("include /data/role.conf\n"));
    assert!(sentinel.contains("sentinel announce-hostnames yes\n"));
}

#[test]
fn tls_secret_is_mounted_read_only_in_every_container_that_connects() {
    let pods = pods(&tls());
    assert_eq!(pods.len(), 5, "redis, sentinel, two bench Jobs, proxy");
    for (file, p) in &pods {
        let vol = p.volumes.iter().flatten().find(|v| v.name == "tls");
        let secret = vol.and_then(|v| v.secret.as_ref());
        let name = secret.and_then(|s| s.secret_name.as_deref());
        assert_eq!(name, Some(TLS_SECRET), "{file}: no TLS Secret volume");
        for c in containers(p) {
            if c.name == "copy-redis-ha" {
                // Copies the binary for the preStop hook; reaches nothing.
                assert_eq!(c.command.as_ref().unwrap()[0], "cp", "{file}");
                continue;
            }
            let m = c.volume_mounts.iter().flatten().find(|m| m.name == "tls");
            let m = m.unwrap_or_else(|| panic!("{file}: {} lacks the TLS mount", c.name));
            assert_eq!((m.mount_path.as_str(), m.read_only), ("/tls", Some(true)));
        }
    }
}

/// What a probe does, if it could speak plaintext Redis: a cli without the
/// TLS flags. TCP probes only connect (no bytes), HTTP ones hit the admin.
fn plaintext_probe(p: &Probe) -> Option<String> {
    if let Some(e) = &p.exec {
        let cmd = e.command.as_ref().unwrap().join(" ");
        return (!cmd.contains(&format!("-cli {CLI_TLS} "))).then_some(cmd);
    }
    let http = p.http_get.as_ref().map(|h| format!("{:?}", h.port));
    (http.is_some() && http.as_deref() != Some("String(\"admin\")")).then(|| http.unwrap())
}

#[test]
fn tls_no_probe_and_no_cli_call_speaks_plaintext_redis() {
    let o = tls();
    for (file, p) in pods(&o) {
        for c in containers(&p) {
            for probe in [&c.readiness_probe, &c.liveness_probe]
                .into_iter()
                .flatten()
            {
                let bad = plaintext_probe(probe);
                assert!(bad.is_none(), "{file} {}: {bad:?}", c.name);
            }
            let cmd = c.command.iter().flatten().chain(c.args.iter().flatten());
            let cmd: Vec<&str> = cmd.map(String::as_str).collect();
            let bad = plaintext_redis_ha(&cmd.join(" "));
            assert!(bad.is_none(), "{file} {}: {bad:?}", c.name);
            let hook = c
                .lifecycle
                .iter()
                .flat_map(|l| [&l.pre_stop, &l.post_start]);
            for h in hook.flatten() {
                let cmd = h.exec.as_ref().and_then(|e| e.command.as_ref()).unwrap();
                let bad = plaintext_redis_ha(&cmd.join(" "));
                assert!(bad.is_none(), "{file} {} hook: {bad:?}", c.name);
                assert!(
                    !cmd.join(" ").contains("-cli "),
                    "{file} {}: {cmd:?}",
                    c.name
                );
            }
        }
    }
    let script = config(&o, "02-configmap-sentinel.yaml", "init.sh");
    let calls = script.matches("redis-cli ").count();
    assert!(calls >= 1, "{script}");
    let tls_calls = script.matches(&format!("redis-cli {CLI_TLS} ")).count();
    assert_eq!(calls, tls_calls, "a plaintext redis-cli call in:\n{script}");
}

/// A `redis-ha init-role` or `switchover` in `cmd` without the four TLS
/// flags naming the Secret's files (they reach sentinels and nodes).
fn plaintext_redis_ha(cmd: &str) -> Option<String> {
    let calls =
        cmd.matches("redis-ha init-role ").count() + cmd.matches("redis-ha switchover ").count();
    let tls = cmd.matches(CLI_TLS).count();
    (tls < calls).then(|| cmd.to_string())
}

/// The Redis pod of `o`'s render.
fn redis_pod(o: &RenderOptions) -> PodSpec {
    let (_, p) = pods(o)
        .into_iter()
        .find(|(f, _)| f == "04-statefulset-redis.yaml")
        .unwrap();
    p
}

fn init_container(p: &PodSpec, name: &str) -> Container {
    let c = p.init_containers.iter().flatten().find(|c| c.name == name);
    c.unwrap_or_else(|| panic!("no {name} init container"))
        .clone()
}

#[test]
fn tls_init_role_is_the_plain_command_plus_the_tls_flags() {
    let plain = init_container(&redis_pod(&RenderOptions::default()), "init-role");
    let with = init_container(&redis_pod(&tls()), "init-role");
    let mut want = plain.command.clone().unwrap();
    assert_eq!(want[..2], ["redis-ha", "init-role"]);
    want.extend(CLI_TLS.split(' ').map(String::from));
    assert_eq!(with.command.unwrap(), want);
    assert_eq!((with.image, with.env), (plain.image, plain.env));
    let mounts = with.volume_mounts.unwrap();
    let paths: Vec<&str> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
    assert_eq!(paths, ["/data", "/tls"]);
    let all = manifests(&tls()).unwrap();
    let m = all
        .iter()
        .find(|m| m.file == "01-configmap-redis.yaml")
        .unwrap();
    let Object::ConfigMap(c) = &m.objects[0] else {
        panic!("01 is not a ConfigMap")
    };
    let keys: Vec<&String> = c.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["redis.conf"], "no script beside redis.conf");
}

fn args_of(o: &RenderOptions, file: &str) -> String {
    let (_, p) = pods(o).into_iter().find(|(f, _)| f == file).unwrap();
    p.containers[0].args.as_ref().unwrap().join(" ")
}

#[test]
fn tls_proxy_serves_tls_only_on_the_service_ports() {
    let o = tls();
    let args = args_of(&o, "08-deployment-proxy.yaml");
    for want in [
        "--port 0 --read-port 0 --tls-port 6379 --tls-read-port 6380",
        "--tls-cert-file /tls/tls.crt --tls-key-file /tls/tls.key --tls-ca-cert-file /tls/ca.crt",
        "--backend-tls",
        "--backend-cacert /tls/ca.crt --backend-cert /tls/tls.crt --backend-key /tls/tls.key",
    ] {
        assert!(args.contains(want), "{want:?} not in {args}");
    }
    let plain = args_of(&RenderOptions::default(), "08-deployment-proxy.yaml");
    assert!(
        !plain.contains("tls") && !plain.contains("--port"),
        "{plain}"
    );
}

#[test]
fn tls_bench_jobs_connect_with_tls_to_a_name_the_certificate_has() {
    let o = tls();
    for file in [
        "06a-benchmark-write-job.yaml",
        "06b-benchmark-read-job.yaml",
    ] {
        let args = args_of(&o, file);
        assert!(args.starts_with("bench -s redis-ha -p 63"), "{args}");
        assert!(args.ends_with(&format!("--json {CLI_TLS}")), "{args}");
    }
    assert!(o.certificate_dns_names().contains(&"redis-ha".to_string()));
}

#[test]
fn tls_cert_manager_certificate_is_rendered_only_with_an_issuer() {
    let names = |o: &RenderOptions| -> Vec<String> {
        files(o).unwrap().into_iter().map(|(f, _)| f).collect()
    };
    assert!(!names(&tls()).iter().any(|f| f.contains("certificate")));
    let o = RenderOptions {
        cert_manager_issuer_kind: "ClusterIssuer".into(),
        ..with_issuer()
    };
    let all = files(&o).unwrap();
    let (_, text) = all
        .iter()
        .find(|(f, _)| f == "00b-certificate.yaml")
        .unwrap();
    let cert: serde_json::Value = serde_norway::from_str(text).unwrap();
    assert_eq!(cert["spec"]["secretName"], TLS_SECRET);
    let issuer = &cert["spec"]["issuerRef"];
    assert_eq!(
        (&issuer["name"], &issuer["kind"]),
        (&"redis-ha-ca".into(), &"ClusterIssuer".into())
    );
    let dns: Vec<String> = serde_json::from_value(cert["spec"]["dnsNames"].clone()).unwrap();
    assert_eq!(dns, o.certificate_dns_names());
    assert!(dns.contains(&"*.redis-headless.redis-sentinel.svc.cluster.local".to_string()));
    assert!(dns.contains(&"*.sentinel-headless.redis-sentinel.svc.cluster.local".to_string()));
    let usages = cert["spec"]["usages"].to_string();
    assert!(usages.contains("server auth") && usages.contains("client auth"));
    let (_, kust) = all.iter().find(|(f, _)| f == "kustomization.yaml").unwrap();
    assert!(kust.contains("- 00b-certificate.yaml\n"), "{kust}");
}

#[test]
fn tls_render_passes_the_validators() {
    // Not tempfile's hidden `.tmpXXXX`: checkov skips hidden directories.
    let dir = tempfile::Builder::new()
        .prefix("redis-ha-tls-render")
        .tempdir()
        .unwrap();
    let o = with_issuer();
    redis_ha_k8s::render::write(&o, dir.path()).unwrap();
    kubernetes_validate(&base_files(&o, dir.path()));
    checkov(dir.path());
}

/// The Redis container's preStop command.
fn pre_stop(p: &PodSpec) -> Vec<String> {
    let c = &p.containers[0];
    let l = c
        .lifecycle
        .as_ref()
        .expect("the Redis container has a preStop hook");
    let exec = l.pre_stop.as_ref().and_then(|h| h.exec.as_ref());
    exec.and_then(|e| e.command.clone()).unwrap()
}

#[test]
fn tls_pre_stop_switchover_is_the_plain_one_plus_the_tls_flags() {
    let (plain, with) = (redis_pod(&RenderOptions::default()), redis_pod(&tls()));
    let plain_cmd = pre_stop(&plain);
    assert!(plain_cmd[2].starts_with("/opt/redis-ha/redis-ha switchover --sentinel "));
    assert!(plain_cmd[2].contains(" --only-if-master "), "{plain_cmd:?}");
    let mut want = plain_cmd.clone();
    want[2] = want[2].replace(" || true", &format!(" {CLI_TLS} || true"));
    assert_ne!(want, plain_cmd);
    assert_eq!(pre_stop(&with), want);
    // The binary is copied as in the plain render, and the hook's
    // container has it and the Secret's files.
    assert_eq!(
        init_container(&with, "copy-redis-ha"),
        init_container(&plain, "copy-redis-ha")
    );
    let names = |p: &PodSpec| -> Vec<String> { containers(p).map(|c| c.name.clone()).collect() };
    assert_eq!(
        names(&with),
        ["copy-redis-ha", "init-role", "redis", "replica-guard"]
    );
    assert_eq!(names(&with), names(&plain));
    let mounts = with.containers[0].volume_mounts.clone().unwrap();
    let paths: Vec<&str> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
    assert_eq!(paths, ["/data", "/etc/redis", "/opt/redis-ha", "/tls"]);
    let volumes: Vec<String> = with
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(volumes, ["config", "tools", "tls"]);
    for f in ["/tls/ca.crt", "/tls/tls.crt", "/tls/tls.key"] {
        assert!(want[2].contains(f), "{f} not in {want:?}");
    }
}

// --- `--metrics`: a redis_exporter sidecar in the Redis and Sentinel pods. ---

fn metrics(tls_on: bool) -> RenderOptions {
    RenderOptions {
        metrics: true,
        ..if tls_on {
            with_issuer()
        } else {
            RenderOptions::default()
        }
    }
}

#[test]
fn metrics_adds_a_hardened_exporter_to_every_redis_and_sentinel_pod() {
    let o = metrics(false);
    assert_eq!(
        check_types(&o).0,
        19,
        "one more object: the exporter's NetworkPolicy"
    );
    let mut with_sidecar = 0;
    for (owner, pod) in pods(&o) {
        let exporter = pod.containers.iter().find(|c| c.name == "redis-exporter");
        let is_node = owner.contains("statefulset");
        if !is_node {
            assert!(
                exporter.is_none(),
                "{owner}: an exporter outside the Redis/Sentinel pods"
            );
            continue;
        }
        let c = exporter.unwrap_or_else(|| panic!("{owner}: no redis-exporter sidecar"));
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{owner}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{owner}");
        assert!(c.resources.as_ref().unwrap().limits.is_some(), "{owner}");
        assert!(
            c.readiness_probe.is_some() && c.liveness_probe.is_some(),
            "{owner}"
        );
        with_sidecar += 1;
    }
    assert_eq!(with_sidecar, 2, "the Redis and the Sentinel StatefulSets");
    let all: String = files(&o).unwrap().into_iter().map(|(_, t)| t).collect();
    assert!(
        all.contains("name: redis-ha-exporter"),
        "the exporter's NetworkPolicy"
    );
    assert!(
        all.contains("- servicemonitor-nodes.yaml"),
        "the component lists the nodes' ServiceMonitor"
    );
    assert_eq!(
        all.matches("port: 9121").count(),
        3,
        "the two headless Services and the policy"
    );
    // Without --metrics: nothing of it.
    let plain: String = files(&RenderOptions::default())
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(!plain.contains("redis-exporter") && !plain.contains("9121"));
}

#[test]
fn metrics_render_passes_the_validators() {
    for tls_on in [false, true] {
        let dir = tempfile::Builder::new()
            .prefix("redis-ha-metrics-render")
            .tempdir()
            .unwrap();
        let o = metrics(tls_on);
        redis_ha_k8s::render::write(&o, dir.path()).unwrap();
        kubernetes_validate(&base_files(&o, dir.path()));
        checkov(dir.path());
    }
}

/// The proxy rolls without losing capacity and drains before the kubelet
/// would kill it: a new pod first (`maxUnavailable: 0`), a termination
/// grace above the drain's grace + timeout, pods spread over nodes, and
/// its PDB beside it.
#[test]
fn the_proxy_rolls_and_drains_without_failing_clients() {
    let all = manifests(&RenderOptions::default()).unwrap();
    let m = all
        .iter()
        .find(|m| m.file == "08-deployment-proxy.yaml")
        .unwrap();
    let Object::Deployment(d) = &m.objects[0] else {
        panic!("08 is not a Deployment")
    };
    let spec = d.spec.as_ref().unwrap();
    let rolling = spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
    let pod = spec.template.spec.as_ref().unwrap();
    let args = pod.containers[0].args.as_ref().unwrap().join(" ");
    let flag = |f: &str| -> u64 {
        let v = args
            .split(&format!("{f} "))
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        humantime_secs(v)
    };
    let (grace, timeout) = (flag("--drain-grace"), flag("--drain-timeout"));
    let term = pod.termination_grace_period_seconds.unwrap() as u64;
    assert!(term > grace + timeout, "{term} s <= {grace} + {timeout}");
    let spread = pod.topology_spread_constraints.as_ref().unwrap();
    assert!(spread
        .iter()
        .any(|c| c.topology_key == "kubernetes.io/hostname"));
    assert!(spread
        .iter()
        .all(|c| c.label_selector.is_some() && c.max_skew == 1));
    let pdb = all
        .iter()
        .flat_map(|m| &m.objects)
        .any(|o| matches!(o, Object::PodDisruptionBudget(p) if p.metadata.name.as_deref() == Some("redis-ha-proxy")));
    assert!(pdb, "the proxy's PDB");
}

/// `5s` -> 5 (the render's durations are whole seconds).
fn humantime_secs(v: &str) -> u64 {
    v.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{v}"))
}
