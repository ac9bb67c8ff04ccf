//! The single source of truth for a topology's settings. Defaults are the
//! original system's (quorum 2, down-after 5 s, failover-timeout 3 min,
//! maxmemory 256mb, AOF everysec); a TOML file or flags override them.

use serde::{Deserialize, Serialize};

/// The shortest Sentinel `down-after-milliseconds` accepted. After a
/// failover Sentinel resets the master's link (`sentinelResetMaster` sets
/// the last PING and PONG times to now) but reconnects at most once per
/// second (its `SENTINEL_PING_PERIOD`), so the new master's first PONG can
/// come up to ~1 s after the switch; with down-after at 1000 ms that races
/// the subjective-down check, and a lost race is a second, needless
/// failover (seen in the tests: `+sdown` of the healthy new master 1.003 s
/// after `+switch-master`). 2 s leaves a full second for that PONG.
pub const MIN_DOWN_AFTER_MS: u64 = 2000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Spec {
    /// Sentinel's name for the monitored master.
    pub master_name: String,
    /// Number of Redis nodes (`redis-0` is the first-boot master).
    pub redis_nodes: usize,
    /// Number of Sentinel processes.
    pub sentinels: usize,
    pub quorum: usize,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
    pub maxmemory: String,
    pub maxmemory_policy: String,
    pub appendonly: bool,
    pub appendfsync: String,
    /// Optional password (`requirepass`/`masterauth`/`sentinel auth-pass`).
    pub password: Option<String>,
    /// Optional password of the sentinels themselves (their `requirepass`,
    /// which they also log in to each other with).
    pub sentinel_password: Option<String>,
    /// ACL users per role (`sentinel`, `replica`, `proxy`; see
    /// [`crate::acl`]); needs `password` (the `default` user's).
    pub acl: Option<crate::acl::AclPasswords>,
    /// Nodes are known by hostname, not IP: sentinels resolve and announce
    /// hostnames (`resolve-hostnames`, `announce-hostnames`), as the
    /// Kubernetes pods do with their DNS names.
    pub announce_hostnames: bool,
    /// `redis` or `valkey`: which servers run (same settings either way).
    pub engine: crate::Engine,
    /// TLS on every node (`tls-port` only, `port 0`, `tls-replication`,
    /// client certificates required); `None` is plain TCP.
    pub tls: Option<TlsFiles>,
    /// `min-replicas-to-write` (with `min-replicas-max-lag 10`): a master
    /// that has heard from fewer replicas than this for 10 s refuses
    /// writes, bounding what a partition can lose. 0 turns it off (Redis's
    /// default); above the replica count it would refuse every write.
    pub min_replicas_to_write: u32,
}

/// Where each node finds its certificate, key and CA (PEM). The names are
/// cert-manager's (`tls.crt`, `tls.key`, `ca.crt`) on Kubernetes and the
/// generated ones in the state dir locally. One certificate serves a node
/// both as server and as client (replication, Sentinel to Redis), so it
/// needs both extended key usages.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TlsFiles {
    pub cert_file: String,
    pub key_file: String,
    pub ca_cert_file: String,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            master_name: "mymaster".into(),
            redis_nodes: 3,
            sentinels: 3,
            quorum: 2,
            down_after_ms: 5000,
            failover_timeout_ms: 180_000,
            parallel_syncs: 1,
            maxmemory: "256mb".into(),
            maxmemory_policy: "noeviction".into(),
            appendonly: true,
            appendfsync: "everysec".into(),
            password: None,
            sentinel_password: None,
            acl: None,
            announce_hostnames: false,
            engine: crate::Engine::Redis,
            tls: None,
            min_replicas_to_write: 1,
        }
    }
}

impl Spec {
    /// Checks the values make a working topology; errors say what to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.redis_nodes >= 1, "redis_nodes must be at least 1");
        anyhow::ensure!(self.sentinels >= 1, "sentinels must be at least 1");
        anyhow::ensure!(
            self.quorum >= 1 && self.quorum <= self.sentinels,
            "quorum {} must be between 1 and the number of sentinels ({})",
            self.quorum,
            self.sentinels
        );
        anyhow::ensure!(
            self.redis_nodes == 1 || (self.min_replicas_to_write as usize) < self.redis_nodes,
            "min_replicas_to_write {} needs at least {} Redis nodes (it counts replicas; 0 turns it off)",
            self.min_replicas_to_write,
            self.min_replicas_to_write + 1
        );
        anyhow::ensure!(
            self.down_after_ms >= MIN_DOWN_AFTER_MS,
            "down_after_ms {} is too short: use at least {MIN_DOWN_AFTER_MS}. Sentinel reconnects to a newly promoted master up to 1 s after a failover and flags it down once down-after passes without a PONG, so a shorter down-after makes it fail over the healthy new master again",
            self.down_after_ms
        );
        anyhow::ensure!(
            !self.master_name.is_empty()
                && self
                    .master_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "master_name {:?} must be non-empty and use only letters, digits, '-', '_' or '.'",
            self.master_name
        );
        anyhow::ensure!(
            ["always", "everysec", "no"].contains(&self.appendfsync.as_str()),
            "appendfsync must be always, everysec or no (got {:?})",
            self.appendfsync
        );
        anyhow::ensure!(
            self.acl.is_none() || self.password.is_some(),
            "acl users need a password for the default user too (set password)"
        );
        Ok(())
    }

    pub fn redis_name(i: usize) -> String {
        format!("redis-{i}")
    }

    pub fn sentinel_name(i: usize) -> String {
        format!("sentinel-{i}")
    }
}
