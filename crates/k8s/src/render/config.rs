//! The Namespace, the password Secret and the three ConfigMaps. redis.conf
//! and sentinel.conf are rendered by `redis_ha_topology::render`, as for
//! `redis-ha up`, with the Kubernetes-only lines appended.

use super::meta::{meta, Component, PASSWORD_KEY, SENTINEL_PASSWORD_KEY};
use crate::options::{RenderOptions, REDIS_PORT, SENTINEL_PORT, SENTINEL_SERVICE};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use redis_ha_topology::promotion::Promotion;
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
        // init-role's file adds `replica-priority 0` on a restart.
        promotion: Promotion::Now,
    };
    let mut s = redis_conf(spec, &node);
    s.push_str(
        "# Written by the init container (redis-ha init-role): empty, or `replicaof HOST PORT`\n\
         # and, unless on a first boot, `replica-priority 0` until the replica-guard sidecar\n\
         # sees the node synced.\n",
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
        // None: a first boot's sentinels know no replica (what init-role
        // reads as "no history"). The init script adds them when it learns
        // the master from a peer with a history or a running master.
        known_replicas: vec![],
        announce: None,
        logfile: None,
        pidfile: None,
    };
    sentinel_conf(spec, &node)
}

/// The sentinel init step: copy the config on the pod's first start only
/// (afterwards Sentinel's own rewritten file holds its state). A sentinel
/// without state (a new or recreated volume) monitors what the peers with
/// a history name (a config epoch or known replicas; a peer that lost its
/// state too only repeats the first boot's guess); with none, the one
/// Redis pod running as master; with none either, redis-0 as on a first
/// boot, and the Redis pods' `init-role` then chooses by data or waits.
///
/// A master learnt from a peer or from the running pods comes with every
/// other Redis pod as `sentinel known-replica`, as the local supervisor
/// writes them: Sentinel otherwise learns replicas only from the master's
/// INFO, every 10 s, and a failover within that time leaves a replica it
/// never saw following the old master until `+fix-slave-config`, after
/// the failover timeout. The first boot's guess gets none: known replicas
/// count as a history for `init-role` and for the peers of the next
/// sentinel without state, and a guess must not pass for one (with the
/// sentinels' state lost and data on the volumes, the Redis pods must
/// compare their data, not follow redis-0). There `k8s status` says
/// degraded until every sentinel has learnt every replica.
pub fn sentinel_init_script(o: &RenderOptions, spec: &Spec) -> String {
    let m = &spec.master_name;
    let cli = format!("{}{}", spec.engine.cli(), o.client_tls_words());
    let peers: Vec<String> = (0..usize::from(o.sentinels))
        .map(|i| o.pod_host(&Spec::sentinel_name(i), SENTINEL_SERVICE))
        .collect();
    let redis: Vec<String> = (0..usize::from(o.redis_replicas))
        .map(|i| o.redis_host(i))
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
# cat, not cp: cp keeps the ConfigMap file's read-only mode (0444), and then
# neither this script nor Sentinel could write the copy. rm: a retry after a
# failed try starts afresh.
rm -f "$conf.tmp"
cat /config/sentinel.conf > "$conf.tmp"
master=""
for peer in {peers}; do
  set -- $(REDISCLI_AUTH="$REDIS_HA_SENTINEL_PASSWORD" timeout 3 {cli} --no-auth-warning -h "$peer" -p {SENTINEL_PORT} SENTINEL MASTER {m} 2>/dev/null \
    | awk 'NR%2==1{{k=$0}} NR%2==0{{v[k]=$0}} END{{if (v["ip"] != "") print v["ip"], v["port"], v["config-epoch"]+0, v["num-slaves"]+0}}' || true)
  if [ $# -eq 4 ] && {{ [ "$3" -gt 0 ] || [ "$4" -gt 0 ]; }}; then
    echo "peer $peer knows master $1:$2 (config epoch $3, $4 replicas)"
    master="$1 $2"
    break
  fi
done
if [ -z "$master" ]; then
  running=""
  for node in {redis}; do
    role=$(REDISCLI_AUTH="$REDIS_HA_PASSWORD" timeout 3 {cli} --no-auth-warning -h "$node" -p {REDIS_PORT} ROLE 2>/dev/null | head -n 1 || true)
    if [ "$role" = master ]; then running="$running $node"; fi
  done
  set -- $running
  if [ $# -eq 1 ]; then
    echo "no peer has a history; $1 runs as the only Redis master"
    master="$1 {REDIS_PORT}"
  else
    echo "no peer has a history and $# Redis pods run as master: monitoring the first boot's master; the Redis pods' init-role chooses by data"
  fi
fi
if [ -n "$master" ]; then
  sed -i "s/^sentinel monitor {m} .*/sentinel monitor {m} $master {q}/" "$conf.tmp"
  # Every other Redis pod is its replica, said up front (Sentinel would
  # learn them from the master's INFO only, every 10 s): only when the
  # master is one of the pods by name, so that no line names the master.
  set -- $master
  for node in {redis}; do
    if [ "$node" = "$1" ]; then
      for other in {redis}; do
        if [ "$other" != "$1" ]; then
          echo "sentinel known-replica {m} $other {REDIS_PORT}" >> "$conf.tmp"
          echo "known replica $other"
        fi
      done
    fi
  done
fi
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
        redis = redis.join(" "),
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
    config_map(
        o,
        REDIS_CONFIGMAP,
        Component::Redis,
        &[("redis.conf", redis_conf_text(spec))],
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

    #[test]
    fn tls_sentinel_init_asks_with_the_tls_flags_and_plain_one_without() {
        let tls = RenderOptions {
            tls_secret: Some("t".into()),
            ..RenderOptions::default()
        };
        let flags = "redis-cli --tls --cert /tls/tls.crt --key /tls/tls.key --cacert /tls/ca.crt --no-auth-warning -h";
        assert!(sentinel_init_script(&tls, &tls.spec().unwrap()).contains(flags));
        let plain = RenderOptions::default();
        assert!(!sentinel_init_script(&plain, &plain.spec().unwrap()).contains("--tls"));
    }

    /// Runs the init script with its paths moved to a temporary directory
    /// and `redis-cli` answered from `answers` (`(host-port, reply)`; a
    /// host without one does not answer); the file it writes and its output.
    #[cfg(unix)]
    fn run_init(answers: &[(String, &str)]) -> (String, String) {
        use std::os::unix::fs::PermissionsExt;
        let o = RenderOptions::default();
        let spec = o.spec().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["bin", "config", "data", "answers"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let fake = format!(
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do case \"$1\" in -h) h=$2; shift;; -p) p=$2; shift;; esac; shift; done\n\
             f={}/answers/$h-$p\n[ -f \"$f\" ] && cat \"$f\"\n",
            d.display()
        );
        std::fs::write(d.join("bin/redis-cli"), fake).unwrap();
        std::fs::set_permissions(
            d.join("bin/redis-cli"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        for (who, reply) in answers {
            std::fs::write(d.join("answers").join(who), reply).unwrap();
        }
        std::fs::write(
            d.join("config/sentinel.conf"),
            sentinel_conf_text(&o, &spec),
        )
        .unwrap();
        let script = sentinel_init_script(&o, &spec)
            .replace("/data/", &format!("{}/data/", d.display()))
            .replace("/config/", &format!("{}/config/", d.display()));
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env(
                "PATH",
                format!("{}/bin:{}", d.display(), std::env::var("PATH").unwrap()),
            )
            .env("POD_NAME", "sentinel-1")
            .env("REDIS_HA_PASSWORD", "pw")
            .env("REDIS_HA_SENTINEL_PASSWORD", "spw")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{log}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            std::fs::read_to_string(d.join("data/sentinel.conf")).unwrap(),
            log,
        )
    }

    fn known_replicas(conf: &str) -> Vec<&str> {
        conf.lines()
            .filter_map(|l| l.strip_prefix("sentinel known-replica mymaster "))
            .map(|l| l.split('.').next().unwrap())
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn a_master_learnt_from_a_peer_or_the_running_pods_comes_with_its_replicas() {
        let o = RenderOptions::default();
        let host = |i| o.redis_host(i);
        let peer = format!("{}-26379", o.pod_host("sentinel-0", SENTINEL_SERVICE));
        let history = format!(
            "name\nmymaster\nip\n{}\nport\n6379\nconfig-epoch\n3\nnum-slaves\n2\n",
            host(2)
        );
        let (conf, log) = run_init(&[(peer.clone(), history.as_str())]);
        assert!(
            conf.contains(&format!("sentinel monitor mymaster {} 6379 2", host(2))),
            "{conf}"
        );
        assert_eq!(known_replicas(&conf), ["redis-0", "redis-1"], "{log}");
        // The known-replica lines follow the monitor line (Sentinel refuses
        // a replica of a master it does not know yet).
        let monitor = conf.find("sentinel monitor").unwrap();
        assert!(conf.find("sentinel known-replica").unwrap() > monitor);

        // No peer with a history: the one Redis pod running as master.
        let fresh = format!(
            "name\nmymaster\nip\n{}\nport\n6379\nconfig-epoch\n0\nnum-slaves\n0\n",
            host(0)
        );
        let running = [
            (peer.clone(), fresh.as_str()),
            (format!("{}-6379", host(0)), "slave\nredis-1\n"),
            (format!("{}-6379", host(1)), "master\n0\n"),
        ];
        let (conf, _) = run_init(&running);
        assert!(conf.contains(&format!("sentinel monitor mymaster {} 6379 2", host(1))));
        assert_eq!(known_replicas(&conf), ["redis-0", "redis-2"]);
    }

    /// A guess (no peer with a history, no single running master) must not
    /// look like a history to init-role: no known replicas.
    #[cfg(unix)]
    #[test]
    fn the_first_boot_guess_names_no_replica() {
        let (conf, log) = run_init(&[]);
        assert!(
            conf.contains("sentinel monitor mymaster redis-0."),
            "{conf}"
        );
        assert!(known_replicas(&conf).is_empty(), "{conf}");
        assert!(
            log.contains("no peer has a history and 0 Redis pods run as master"),
            "{log}"
        );
        let o = RenderOptions::default();
        let two = [
            (format!("{}-6379", o.redis_host(1)), "master\n0\n"),
            (format!("{}-6379", o.redis_host(2)), "master\n0\n"),
        ];
        let (conf, _) = run_init(&two);
        assert!(known_replicas(&conf).is_empty(), "{conf}");
    }

    #[test]
    fn a_sentinel_without_state_trusts_only_peers_with_a_history_then_the_running_master() {
        let o = RenderOptions::default();
        let s = sentinel_init_script(&o, &o.spec().unwrap());
        assert!(s.contains("SENTINEL MASTER mymaster"), "{s}");
        assert!(s.contains(r#"[ "$3" -gt 0 ] || [ "$4" -gt 0 ]"#), "{s}");
        assert!(s.contains("-p 6379 ROLE"), "{s}");
        assert!(s.contains("redis-2.redis-headless"), "{s}");
    }
}
