//! The Namespace, the password Secret and the three ConfigMaps. redis.conf
//! and sentinel.conf are rendered by `redis_ha_topology::render`, as for
//! `redis-ha up`, with the Kubernetes-only lines appended.

use super::meta::{meta, Component, PASSWORD_KEY, SENTINEL_PASSWORD_KEY};
use crate::options::{RenderOptions, REDIS_PORT, REDIS_SERVICE, SENTINEL_PORT, SENTINEL_SERVICE};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use redis_ha_topology::render::{redis_conf, sentinel_conf, RedisNode, SentinelNode};
use redis_ha_topology::spec::Spec;
use std::collections::BTreeMap;

/// The value the checked-in Secret carries; `redis-ha k8s apply` replaces
/// it with a random password when it creates the Secret.
pub const PLACEHOLDER_PASSWORD: &str = "CHANGE-ME";
/// Where the init container writes the boot role Redis includes.
pub const ROLE_FILE: &str = "/data/role.conf";
pub const REDIS_CONFIGMAP: &str = "redis-config";
pub const SENTINEL_CONFIGMAP: &str = "sentinel-config";
pub const PROXY_CONFIGMAP: &str = "redis-ha-proxy";

pub fn namespace(o: &RenderOptions) -> Namespace {
    let mut m = meta(o, &o.namespace, None);
    m.namespace = None;
    let labels = m.labels.get_or_insert_with(BTreeMap::new);
    // Pod Security Admission: every pod here passes "restricted".
    labels.insert(
        "pod-security.kubernetes.io/enforce".into(),
        "restricted".into(),
    );
    Namespace {
        metadata: m,
        ..Default::default()
    }
}

pub fn secret(o: &RenderOptions) -> Secret {
    let mut m = meta(o, &o.password_secret, None);
    m.annotations = Some(BTreeMap::from([(
        "redis-ha.io/note".into(),
        "placeholder passwords: redis-ha k8s apply creates this Secret with random ones; \
         with kubectl, replace them first"
            .into(),
    )]));
    Secret {
        metadata: m,
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            (PASSWORD_KEY.into(), PLACEHOLDER_PASSWORD.into()),
            (SENTINEL_PASSWORD_KEY.into(), PLACEHOLDER_PASSWORD.into()),
        ])),
        ..Default::default()
    }
}

/// redis.conf: the topology's, with the boot role included last. Passwords
/// and the announced hostname come as arguments (they differ per pod or
/// live in the Secret).
pub fn redis_conf_text(spec: &Spec) -> String {
    let node = RedisNode {
        bind: "* -::*".into(),
        port: REDIS_PORT,
        dir: "/data".into(),
        replica_of: None,
        announce: None,
        logfile: None,
        pidfile: None,
    };
    let mut s = redis_conf(spec, &node);
    s.push_str(
        "# Written by the init container (redis-ha init-role): empty or `replicaof HOST PORT`.\n",
    );
    s.push_str(&format!("include {ROLE_FILE}\n"));
    s
}

/// sentinel.conf: the topology's, monitoring the first Redis pod by name.
pub fn sentinel_conf_text(o: &RenderOptions, spec: &Spec) -> String {
    let node = SentinelNode {
        bind: "* -::*".into(),
        port: SENTINEL_PORT,
        dir: "/data".into(),
        master: (o.redis_host(0), REDIS_PORT),
        announce: None,
        logfile: None,
        pidfile: None,
    };
    sentinel_conf(spec, &node)
}

/// The sentinel init step: copy the config on the pod's first start only
/// (afterwards Sentinel's own rewritten file holds its state), asking the
/// peers for the current master in case it is no longer the first pod.
pub fn sentinel_init_script(o: &RenderOptions, spec: &Spec) -> String {
    let m = &spec.master_name;
    let cli = format!("{}{}", spec.engine.cli(), o.client_tls_words());
    let peers: Vec<String> = (0..usize::from(o.sentinels))
        .map(|i| o.pod_host(&Spec::sentinel_name(i), SENTINEL_SERVICE))
        .collect();
    let own = o.own_host(SENTINEL_SERVICE, "$POD_NAME");
    format!(
        r#"#!/bin/sh
# Sentinel init: runs before every start of a sentinel pod.
set -eu
conf=/data/sentinel.conf
if [ -f "$conf" ]; then
  echo "keeping $conf (Sentinel's own state)"
  exit 0
fi
cp /config/sentinel.conf "$conf.tmp"
for peer in {peers}; do
  addr=$(REDISCLI_AUTH="$REDIS_HA_SENTINEL_PASSWORD" timeout 3 {cli} --no-auth-warning -h "$peer" -p {SENTINEL_PORT} SENTINEL get-master-addr-by-name {m} 2>/dev/null | tr '\n' ' ' || true)
  set -- $addr
  if [ $# -eq 2 ]; then
    echo "peer $peer knows master $1:$2"
    sed -i "s/^sentinel monitor {m} .*/sentinel monitor {m} $1 $2 {q}/" "$conf.tmp"
    break
  fi
done
{{
  echo "sentinel announce-ip {own}"
  echo "sentinel announce-port {SENTINEL_PORT}"
  echo "sentinel auth-pass {m} $REDIS_HA_PASSWORD"
  echo "requirepass $REDIS_HA_SENTINEL_PASSWORD"
}} >> "$conf.tmp"
mv "$conf.tmp" "$conf"
echo "wrote $conf"
"#,
        peers = peers.join(" "),
        q = spec.quorum,
    )
}

fn config_map(o: &RenderOptions, name: &str, c: Component, data: &[(&str, String)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(o, name, Some(c)),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

pub fn redis_config(o: &RenderOptions, spec: &Spec) -> ConfigMap {
    let mut data = vec![("redis.conf", redis_conf_text(spec))];
    if o.tls_secret.is_some() {
        data.push((INIT_ROLE_SCRIPT, init_role_script(o, spec)));
    }
    config_map(o, REDIS_CONFIGMAP, Component::Redis, &data)
}

/// The redis-config key of [`init_role_script`] (TLS renders only).
pub const INIT_ROLE_SCRIPT: &str = "init-role.sh";

/// The boot-role decision of `redis-ha init-role`, in sh with the engine's
/// cli, for TLS renders: init-role has no TLS flags, and its plaintext
/// AUTH must not reach a TLS port. Same rules: follow the master a majority
/// of the answering sentinels name; when none knows one (first boot) pod 0
/// leads; without a majority exit 1, and the kubelet retries.
pub fn init_role_script(o: &RenderOptions, spec: &Spec) -> String {
    let cli = format!("{}{}", spec.engine.cli(), o.client_tls_words());
    let peers: Vec<String> = (0..usize::from(o.sentinels))
        .map(|i| o.pod_host(&Spec::sentinel_name(i), SENTINEL_SERVICE))
        .collect();
    format!(
        r#"#!/bin/sh
# Redis init over TLS: the rules of `redis-ha init-role`, with the cli over TLS.
set -u
me="{me}:{REDIS_PORT}"
answered=0
votes=""
for peer in {peers}; do
  if out=$(REDISCLI_AUTH="$REDIS_HA_SENTINEL_PASSWORD" timeout 5 {cli} --no-auth-warning -h "$peer" -p {SENTINEL_PORT} SENTINEL get-master-addr-by-name {m} 2>/dev/null); then
    set -- $out
    case $# in
      0) answered=$((answered + 1)) ;;
      2) answered=$((answered + 1)); votes="$votes$1:$2
" ;;
    esac
  fi
done
if [ -z "$votes" ]; then
  master="{first}:{REDIS_PORT}"
  why="no sentinel knows a master: first boot"
else
  set -- $(printf '%s' "$votes" | sort | uniq -c | sort -rn | head -n 1)
  if [ "$1" -lt $((answered / 2 + 1)) ]; then
    echo "the sentinels do not agree on a master ($(printf '%s' "$votes" | tr '\n' ' ')); retrying" >&2
    exit 1
  fi
  master=$2
  why="a majority of the reachable sentinels name $master"
fi
if [ "$master" = "$me" ]; then
  : > {ROLE_FILE}
  echo "$me: master ($why)"
else
  echo "replicaof ${{master%:*}} ${{master##*:}}" > {ROLE_FILE}
  echo "$me: replica of $master ($why)"
fi
"#,
        me = o.own_host(REDIS_SERVICE, "$POD_NAME"),
        first = o.redis_host(0),
        peers = peers.join(" "),
        m = spec.master_name,
    )
}

pub fn sentinel_config(o: &RenderOptions, spec: &Spec) -> ConfigMap {
    config_map(
        o,
        SENTINEL_CONFIGMAP,
        Component::Sentinel,
        &[
            ("sentinel.conf", sentinel_conf_text(o, spec)),
            ("init.sh", sentinel_init_script(o, spec)),
        ],
    )
}

/// The proxy's tunables, passed to `redis-ha proxy` as `$(VAR)` arguments.
pub fn proxy_config(o: &RenderOptions, spec: &Spec) -> ConfigMap {
    config_map(
        o,
        PROXY_CONFIGMAP,
        Component::Proxy,
        &[
            ("MASTER_NAME", spec.master_name.clone()),
            ("FAILOVER_HOLD", "10s".into()),
            ("MAX_REPLICA_LAG", "10s".into()),
            ("READ_FALLBACK", "master".into()),
            ("MODE", "multiplex".into()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// A fake engine cli: answers `-h HOST` with the file `$FAKE/HOST`
    /// (`HOST\nPORT`, or empty for "no master known"), or fails (down).
    const FAKE_CLI: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = -h ] && host=$2; shift; done
[ -f "$FAKE/$host" ] || exit 1
cat "$FAKE/$host"
"#;

    /// Runs the TLS init-role script as pod `pod`, the sentinels answering
    /// `answers` (`None`: unreachable); the exit status and role file.
    fn run_role(pod: &str, answers: [Option<&str>; 3]) -> (bool, String) {
        let o = RenderOptions {
            tls_secret: Some("t".into()),
            ..RenderOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("redis-cli"), FAKE_CLI).unwrap();
        for (i, a) in answers.iter().enumerate() {
            if let Some(a) = a {
                let host = o.pod_host(&Spec::sentinel_name(i), SENTINEL_SERVICE);
                std::fs::write(d.join(host), a.replace(':', "\n")).unwrap();
            }
        }
        let role = d.join("role.conf");
        let script =
            init_role_script(&o, &o.spec().unwrap()).replace(ROLE_FILE, role.to_str().unwrap());
        let path = format!("{}:{}", d.display(), std::env::var("PATH").unwrap());
        let ok = Command::new("sh")
            .args([
                "-c",
                &format!("chmod +x {0}/redis-cli && {script}", d.display()),
            ])
            .env("PATH", path)
            .env("FAKE", d)
            .env("POD_NAME", pod)
            .env("REDIS_HA_SENTINEL_PASSWORD", "pw")
            .status()
            .unwrap()
            .success();
        (ok, read(&role))
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|_| "<none>".into())
    }

    const R1: &str = "redis-1.redis-headless.redis-sentinel.svc.cluster.local:6379";

    #[test]
    fn tls_init_role_follows_the_majority_of_the_answering_sentinels() {
        let replica = "replicaof redis-1.redis-headless.redis-sentinel.svc.cluster.local 6379\n";
        assert_eq!(
            run_role("redis-0", [Some(R1), Some(R1), None]),
            (true, replica.into())
        );
        assert_eq!(
            run_role("redis-1", [Some(R1), None, None]),
            (true, String::new())
        );
    }

    #[test]
    fn tls_init_role_lets_pod_0_lead_only_on_a_first_boot() {
        let first = "replicaof redis-0.redis-headless.redis-sentinel.svc.cluster.local 6379\n";
        assert_eq!(
            run_role("redis-0", [Some(""), None, None]),
            (true, String::new())
        );
        assert_eq!(
            run_role("redis-2", [None, None, None]),
            (true, first.into())
        );
    }

    #[test]
    fn tls_init_role_refuses_without_a_majority() {
        let r2 = "redis-2.redis-headless.redis-sentinel.svc.cluster.local:6379";
        let (ok, role) = run_role("redis-0", [Some(R1), Some(r2), Some("")]);
        assert!(!ok && role == "<none>", "{ok} {role}");
    }

    #[test]
    fn tls_scripts_ask_with_the_tls_flags_and_plain_ones_without() {
        let tls = RenderOptions {
            tls_secret: Some("t".into()),
            ..RenderOptions::default()
        };
        let flags = "redis-cli --tls --cert /tls/tls.crt --key /tls/tls.key --cacert /tls/ca.crt --no-auth-warning -h";
        let spec = tls.spec().unwrap();
        assert!(init_role_script(&tls, &spec).contains(flags));
        assert!(sentinel_init_script(&tls, &spec).contains(flags));
        let plain = RenderOptions::default();
        assert!(!sentinel_init_script(&plain, &plain.spec().unwrap()).contains("--tls"));
        let cm = redis_config(&plain, &plain.spec().unwrap());
        assert!(!cm.data.unwrap().contains_key(INIT_ROLE_SCRIPT));
    }
}
