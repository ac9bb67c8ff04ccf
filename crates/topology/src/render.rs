//! Renders `redis.conf` and `sentinel.conf` from a [`Spec`]. The local
//! supervisor writes these files; the Kubernetes ConfigMaps embed the same
//! text, so both deployments run identical settings.

use crate::promotion::Promotion;
use crate::spec::Spec;
use std::fmt::Write;

/// Where and how one Redis node runs.
#[derive(Clone, Debug)]
pub struct RedisNode {
    pub bind: String,
    pub port: u16,
    /// Data directory (AOF, RDB).
    pub dir: String,
    /// `None` to run as master.
    pub replica_of: Option<(String, u16)>,
    /// Address announced to the master/sentinels (hostname on Kubernetes).
    pub announce: Option<(String, u16)>,
    pub logfile: Option<String>,
    pub pidfile: Option<String>,
    /// Whether Sentinel may promote it before it has synced.
    pub promotion: Promotion,
}

pub fn redis_conf(spec: &Spec, node: &RedisNode) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# Rendered by redis-ha from its topology spec; edits are overwritten."
    );
    let _ = writeln!(w, "bind {}", node.bind);
    listen(w, spec, node.port);
    let _ = writeln!(w, "protected-mode no");
    let _ = writeln!(w, "daemonize no");
    let _ = writeln!(w, "dir {}", node.dir);
    if let Some(l) = &node.logfile {
        let _ = writeln!(w, "logfile {l}");
    }
    if let Some(p) = &node.pidfile {
        let _ = writeln!(w, "pidfile {p}");
    }
    let _ = writeln!(w, "maxmemory {}", spec.maxmemory);
    let _ = writeln!(w, "maxmemory-policy {}", spec.maxmemory_policy);
    let _ = writeln!(
        w,
        "appendonly {}",
        if spec.appendonly { "yes" } else { "no" }
    );
    let _ = writeln!(w, "appendfsync {}", spec.appendfsync);
    let _ = writeln!(w, "replica-read-only yes");
    // Replicas serve reads during a resync only when explicitly allowed; the
    // proxy routes around them instead, so stale data is never served silently.
    let _ = writeln!(w, "replica-serve-stale-data yes");
    let _ = writeln!(w, "repl-diskless-sync yes");
    // Start a full resync at once instead of waiting 5 s for more replicas:
    // with min-replicas-to-write, a new master takes writes only once a
    // replica is in sync, so the delay would be a write pause per failover.
    let _ = writeln!(w, "repl-diskless-sync-delay 0");
    if spec.redis_nodes > 1 && spec.min_replicas_to_write > 0 {
        // A master cut off from its replicas for 10 s refuses writes,
        // bounding what a partition can lose (--write-ack closes the rest).
        let _ = writeln!(w, "min-replicas-to-write {}", spec.min_replicas_to_write);
        let _ = writeln!(w, "min-replicas-max-lag 10");
    }
    match (&spec.password, &spec.acl) {
        (Some(pw), Some(acl)) => {
            let _ = writeln!(w, "requirepass {pw}");
            w.push_str(&crate::acl::redis_lines(acl));
        }
        (Some(pw), None) => {
            let _ = writeln!(w, "requirepass {pw}");
            let _ = writeln!(w, "masterauth {pw}");
        }
        (None, _) => {}
    }
    if let Some((h, p)) = &node.announce {
        let _ = writeln!(w, "replica-announce-ip {h}");
        let _ = writeln!(w, "replica-announce-port {p}");
    }
    if let Some((h, p)) = &node.replica_of {
        let _ = writeln!(w, "replicaof {h} {p}");
    }
    w.push_str(promotion_conf(node.promotion));
    s
}

/// The lines that keep a restarted node out of Sentinel's choice until it
/// has synced (see [`crate::promotion`]); none for a first boot.
pub const fn promotion_conf(p: Promotion) -> &'static str {
    match p {
        Promotion::Now => "",
        Promotion::AfterSync => {
            "# Not promotable until synced: redis-ha replica-guard raises it.\nreplica-priority 0\n"
        }
    }
}

/// The listening lines, the same for Redis and Sentinel: plain `port`, or
/// with TLS `port 0` and `tls-port` on the node's one port, so nothing
/// listens in plaintext. `tls-replication` makes replicas and Sentinel
/// (toward Redis and its peers) connect over TLS too; a mixed topology is
/// the classic way charts break Sentinel.
fn listen(w: &mut String, spec: &Spec, port: u16) {
    w.push_str(&listen_conf(spec.tls.as_ref(), port));
}

/// The lines a Redis or Sentinel config listens with: `port`, or with
/// `tls` TLS only (for configs written elsewhere, as the partition drill's).
pub fn listen_conf(tls: Option<&crate::TlsFiles>, port: u16) -> String {
    let mut w = String::new();
    let w = &mut w;
    let Some(t) = tls else {
        let _ = writeln!(w, "port {port}");
        return w.clone();
    };
    let _ = writeln!(w, "port 0");
    let _ = writeln!(w, "tls-port {port}");
    let _ = writeln!(w, "tls-cert-file {}", t.cert_file);
    let _ = writeln!(w, "tls-key-file {}", t.key_file);
    let _ = writeln!(w, "tls-ca-cert-file {}", t.ca_cert_file);
    let _ = writeln!(w, "tls-auth-clients yes");
    let _ = writeln!(w, "tls-replication yes");
    w.clone()
}

/// Where and how one Sentinel runs.
#[derive(Clone, Debug)]
pub struct SentinelNode {
    pub bind: String,
    pub port: u16,
    pub dir: String,
    /// The master to monitor at first start (Sentinel rewrites its own file
    /// afterwards with what it learns).
    pub master: (String, u16),
    /// Replicas of that master it knows from the start (`sentinel
    /// known-replica`), so that it does not wait for the master's next
    /// INFO (every 10 s) to learn them.
    pub known_replicas: Vec<(String, u16)>,
    pub announce: Option<(String, u16)>,
    pub logfile: Option<String>,
    pub pidfile: Option<String>,
}

pub fn sentinel_conf(spec: &Spec, node: &SentinelNode) -> String {
    let m = &spec.master_name;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# Rendered by redis-ha; Sentinel rewrites this file with its own state."
    );
    let _ = writeln!(w, "bind {}", node.bind);
    listen(w, spec, node.port);
    let _ = writeln!(w, "protected-mode no");
    let _ = writeln!(w, "daemonize no");
    let _ = writeln!(w, "dir {}", node.dir);
    if let Some(l) = &node.logfile {
        let _ = writeln!(w, "logfile {l}");
    }
    if let Some(p) = &node.pidfile {
        let _ = writeln!(w, "pidfile {p}");
    }
    if spec.announce_hostnames {
        let _ = writeln!(w, "sentinel resolve-hostnames yes");
        let _ = writeln!(w, "sentinel announce-hostnames yes");
    }
    if let Some((h, p)) = &node.announce {
        let _ = writeln!(w, "sentinel announce-ip {h}");
        let _ = writeln!(w, "sentinel announce-port {p}");
    }
    let (mh, mp) = &node.master;
    let _ = writeln!(w, "sentinel monitor {m} {mh} {mp} {}", spec.quorum);
    for (h, p) in &node.known_replicas {
        let _ = writeln!(w, "sentinel known-replica {m} {h} {p}");
    }
    let _ = writeln!(
        w,
        "sentinel down-after-milliseconds {m} {}",
        spec.down_after_ms
    );
    let _ = writeln!(
        w,
        "sentinel failover-timeout {m} {}",
        spec.failover_timeout_ms
    );
    let _ = writeln!(w, "sentinel parallel-syncs {m} {}", spec.parallel_syncs);
    match (&spec.password, &spec.acl) {
        (_, Some(acl)) => w.push_str(&crate::acl::sentinel_lines(m, acl)),
        (Some(pw), None) => {
            let _ = writeln!(w, "sentinel auth-pass {m} {pw}");
        }
        (None, None) => {}
    }
    if let Some(pw) = &spec.sentinel_password {
        // Sentinel logs in to its peers with its own requirepass.
        let _ = writeln!(w, "requirepass {pw}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_settings_are_the_defaults() {
        let spec = Spec::default();
        let s = sentinel_conf(
            &spec,
            &SentinelNode {
                bind: "127.0.0.1".into(),
                port: 26379,
                dir: "/tmp".into(),
                master: ("127.0.0.1".into(), 7000),
                known_replicas: vec![],
                announce: None,
                logfile: None,
                pidfile: None,
            },
        );
        assert!(s.contains("sentinel monitor mymaster 127.0.0.1 7000 2\n"));
        assert!(s.contains("down-after-milliseconds mymaster 5000\n"));
        assert!(s.contains("failover-timeout mymaster 180000\n"));
        assert!(s.contains("parallel-syncs mymaster 1\n"));
        let r = redis_conf(
            &spec,
            &RedisNode {
                bind: "127.0.0.1".into(),
                port: 7001,
                dir: "/tmp".into(),
                replica_of: Some(("127.0.0.1".into(), 7000)),
                announce: None,
                logfile: None,
                pidfile: None,
                promotion: Promotion::AfterSync,
            },
        );
        assert!(r.contains("maxmemory 256mb\n"));
        assert!(r.contains("appendonly yes\nappendfsync everysec\n"));
        assert!(r.contains("replicaof 127.0.0.1 7000\n"));
        assert!(
            r.ends_with("replica-priority 0\n"),
            "a restart waits for its sync"
        );
        assert!(!s.contains("hostnames"));
    }

    #[test]
    fn min_replicas_to_write_is_one_by_default_settable_and_off_at_zero() {
        let node = RedisNode {
            bind: "127.0.0.1".into(),
            port: 7001,
            dir: "/tmp".into(),
            replica_of: None,
            announce: None,
            logfile: None,
            pidfile: None,
            promotion: Promotion::Now,
        };
        let conf = |n: u32, nodes: usize| {
            let spec = Spec {
                min_replicas_to_write: n,
                redis_nodes: nodes,
                ..Spec::default()
            };
            redis_conf(&spec, &node)
        };
        assert!(redis_conf(&Spec::default(), &node)
            .contains("min-replicas-to-write 1\nmin-replicas-max-lag 10\n"));
        assert!(conf(2, 3).contains("min-replicas-to-write 2\n"));
        assert!(!conf(0, 3).contains("min-replicas"));
        assert!(
            !conf(1, 1).contains("min-replicas"),
            "a lone master has no replica to wait for"
        );
        let spec = |n, nodes| Spec {
            min_replicas_to_write: n,
            redis_nodes: nodes,
            ..Spec::default()
        };
        assert!(spec(2, 3).validate().is_ok() && spec(1, 1).validate().is_ok());
        let e = spec(3, 3).validate().unwrap_err().to_string();
        assert!(e.contains("needs at least 4 Redis nodes"), "{e}");
    }

    #[test]
    fn hostnames_are_resolved_and_announced_when_the_spec_says_so() {
        let spec = Spec {
            announce_hostnames: true,
            ..Spec::default()
        };
        let s = sentinel_conf(
            &spec,
            &SentinelNode {
                bind: "127.0.0.1".into(),
                port: 26379,
                dir: "/tmp".into(),
                master: ("localhost".into(), 7000),
                known_replicas: vec![],
                announce: Some(("localhost".into(), 26379)),
                logfile: None,
                pidfile: None,
            },
        );
        assert!(s.contains("sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"));
        assert!(s.contains("sentinel announce-ip localhost\n"));
        assert!(s.contains("sentinel monitor mymaster localhost 7000 2\n"));
    }

    #[test]
    fn tls_leaves_no_plaintext_port_and_covers_replication() {
        let spec = Spec {
            tls: Some(crate::spec::TlsFiles {
                cert_file: "/tls/tls.crt".into(),
                key_file: "/tls/tls.key".into(),
                ca_cert_file: "/tls/ca.crt".into(),
            }),
            ..Spec::default()
        };
        let r = redis_conf(
            &spec,
            &RedisNode {
                bind: "127.0.0.1".into(),
                port: 7001,
                dir: "/tmp".into(),
                replica_of: Some(("127.0.0.1".into(), 7000)),
                announce: None,
                logfile: None,
                pidfile: None,
                promotion: Promotion::Now,
            },
        );
        let s = sentinel_conf(
            &spec,
            &SentinelNode {
                bind: "127.0.0.1".into(),
                port: 26379,
                dir: "/tmp".into(),
                master: ("127.0.0.1".into(), 7000),
                known_replicas: vec![],
                announce: None,
                logfile: None,
                pidfile: None,
            },
        );
        for (conf, port) in [(&r, 7001), (&s, 26379)] {
            assert!(
                conf.contains(&format!("port 0\ntls-port {port}\n")),
                "{conf}"
            );
            assert!(!conf.contains(&format!("\nport {port}")), "{conf}");
            assert!(conf.contains("tls-cert-file /tls/tls.crt\ntls-key-file /tls/tls.key\n"));
            assert!(conf.contains("tls-ca-cert-file /tls/ca.crt\n"));
            assert!(conf.contains("tls-auth-clients yes\ntls-replication yes\n"));
        }
    }
}
