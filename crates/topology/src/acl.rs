//! ACL users per role (`up --acl`), as hardened Helm charts set them up:
//! `sentinel` for Sentinel's connections to Redis, `replica` for
//! replication, `proxy` for the proxy's own connections. `default` stays
//! the application's user, password-only (`requirepass`, which `--acl`
//! requires). Only the rendering decision lives here.

use serde::{Deserialize, Serialize};

/// Each role's password (random, from files in the state dir).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AclPasswords {
    pub sentinel: String,
    pub replica: String,
    pub proxy: String,
}

/// A role's user name in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Sentinel,
    Replica,
    Proxy,
}

impl User {
    pub const ALL: [User; 3] = [User::Sentinel, User::Replica, User::Proxy];

    pub fn name(self) -> &'static str {
        match self {
            User::Sentinel => "sentinel",
            User::Replica => "replica",
            User::Proxy => "proxy",
        }
    }

    /// Its rights, after `on >PASSWORD`. Why each:
    /// - sentinel: exactly the set Redis documents for a Sentinel user
    ///   (discovery, hello messages, and the failover's MULTI / SLAVEOF /
    ///   CONFIG REWRITE / CLIENT KILL / EXEC), on its hello channel only,
    ///   plus FAILOVER: Valkey 8's Sentinel makes a planned failover a
    ///   coordinated FAILOVER on the servers (see the README's ACL note).
    /// - replica: the replication handshake and stream, nothing else.
    /// - proxy: the proxy's own checks (ROLE, INFO for health and lag, WAIT
    ///   for --write-ack, CLIENT SETNAME) plus what applications run: in
    ///   multiplex mode, clients that do not log in themselves run as this
    ///   user, so it gets every key, channel and command except
    ///   `@dangerous` ones (FLUSHALL, CONFIG, SHUTDOWN, DEBUG, KEYS ...).
    pub fn rules(self) -> &'static str {
        match self {
            User::Sentinel => {
                "resetchannels &__sentinel__:hello -@all +multi +exec +slaveof +replicaof \
                 +ping +subscribe +publish +info +role +config|rewrite \
                 +client|setname +client|kill +script|kill +failover"
            }
            User::Replica => "resetchannels -@all +psync +replconf +ping",
            User::Proxy => "~* &* +@all -@dangerous +info +role",
        }
    }

    pub fn password(self, p: &AclPasswords) -> &str {
        match self {
            User::Sentinel => &p.sentinel,
            User::Replica => &p.replica,
            User::Proxy => &p.proxy,
        }
    }
}

/// The redis.conf lines: one `user` line per role, and replication logging
/// in as `replica`.
pub fn redis_lines(p: &AclPasswords) -> String {
    let mut s: String = User::ALL
        .iter()
        .map(|u| format!("user {} on >{} {}\n", u.name(), u.password(p), u.rules()))
        .collect();
    s += &format!(
        "masteruser {}\nmasterauth {}\n",
        User::Replica.name(),
        p.replica
    );
    s
}

/// The sentinel.conf lines: Sentinel logs in to Redis as `sentinel`.
pub fn sentinel_lines(master: &str, p: &AclPasswords) -> String {
    format!(
        "sentinel auth-user {master} {}\nsentinel auth-pass {master} {}\n",
        User::Sentinel.name(),
        p.sentinel
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw() -> AclPasswords {
        AclPasswords {
            sentinel: "S".into(),
            replica: "R".into(),
            proxy: "P".into(),
        }
    }

    #[test]
    fn redis_users() {
        let t = redis_lines(&pw());
        assert!(t.contains("user sentinel on >S resetchannels &__sentinel__:hello -@all +multi"));
        assert!(t.contains("+config|rewrite +client|setname +client|kill +script|kill +failover\n"));
        assert!(t.contains("user replica on >R resetchannels -@all +psync +replconf +ping\n"));
        assert!(t.contains("user proxy on >P ~* &* +@all -@dangerous +info +role\n"));
        assert!(t.ends_with("masteruser replica\nmasterauth R\n"), "{t}");
        assert!(!t.contains("user default"), "default keeps requirepass");
    }

    #[test]
    fn sentinel_logs_in_as_sentinel() {
        assert_eq!(
            sentinel_lines("mymaster", &pw()),
            "sentinel auth-user mymaster sentinel\nsentinel auth-pass mymaster S\n"
        );
    }
}
