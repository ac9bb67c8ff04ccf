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
    let mut checked = 0;
    for m in manifests(&o).unwrap() {
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
                Object::Custom(v) => panic!("{what}: custom resource in the base: {v}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
    for m in monitoring(&o) {
        let yaml = to_yaml(&m).unwrap();
        let v: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1", "{}", m.file);
    }
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

/// The tool's path, or `None` after printing SKIPPED (a failure under CI).
fn tool(name: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let why = format!("{name} is not installed ({install})");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    found
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
    let Some(kubectl) = tool("kubectl", "scripts/install-deps.sh --test") else {
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

fn base_files() -> Vec<PathBuf> {
    manifests(&RenderOptions::default())
        .unwrap()
        .iter()
        .map(|m| deploy_dir().join(m.file))
        .collect()
}

#[test]
fn kubernetes_validate_strict_accepts_1_29_and_1_34() {
    let Some(kv) = tool("kubernetes-validate", "pip install kubernetes-validate") else {
        return;
    };
    for version in ["1.29.0", "1.34.0"] {
        let out = run(Command::new(&kv)
            .args(["--strict", "--quiet", "-k", version])
            .args(base_files()));
        assert!(
            !out.contains("ERROR"),
            "kubernetes-validate {version}:\n{out}"
        );
    }
}

#[test]
fn checkov_finds_no_failed_checks() {
    let Some(checkov) = tool("checkov", "pip install checkov") else {
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
        .arg(deploy_dir())
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
