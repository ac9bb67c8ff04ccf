//! Commands the proxy refuses: replication streams (SYNC, PSYNC, REPLCONF),
//! which cannot pass a request/reply proxy, and `--deny-commands`, by
//! default what no application needs through a router and what would let
//! one client take down or reconfigure the cluster behind it.

use super::commands::Class;
use super::error::ClientError;
use super::table::{self, Spec};
use redis_ha_resp::Command;

/// `--deny-commands`' default. CLIENT KILL and CLIENT PAUSE would let a
/// client kill or freeze the proxy's shared connections.
pub const DEFAULT: &str =
    "SHUTDOWN,DEBUG,REPLICAOF,SLAVEOF,FAILOVER,CLIENT|KILL,CLIENT|PAUSE,CLIENT|UNPAUSE";

const STREAMS: [&str; 3] = ["SYNC", "PSYNC", "REPLCONF"];

/// Names refused, upper case, subcommands as `CONTAINER|SUB`, and the
/// verdict for each command of the table, decided once: the check runs per
/// request, and comparing names there cost ~1.5 % of the proxy's
/// user-space instructions at SET P1.
#[derive(Clone, Debug, Default)]
pub struct DenyList {
    names: Vec<String>,
    /// By position in [`table::COMMANDS`]: refused or a stream.
    by_spec: Vec<bool>,
}

impl DenyList {
    /// From `--deny-commands`: names separated by commas; a subcommand as
    /// `CLIENT|KILL` or `CLIENT KILL`; a container alone (`CONFIG`) denies
    /// all its subcommands; empty denies nothing.
    pub fn parse(s: &str) -> DenyList {
        let mut d = DenyList {
            names: s
                .split(',')
                .map(|n| n.trim().replace(' ', "|").to_ascii_uppercase())
                .filter(|n| !n.is_empty())
                .collect(),
            by_spec: Vec::new(),
        };
        d.by_spec = table::COMMANDS
            .iter()
            .map(|c| STREAMS.contains(&c.name) || d.hit(c.name))
            .collect();
        d
    }

    fn hit(&self, name: &str) -> bool {
        self.names.iter().any(|d| {
            name == d
                || (name.len() > d.len()
                    && name.starts_with(d.as_str())
                    && name.as_bytes()[d.len()] == b'|')
        })
    }

    /// The table's verdict on `spec`, without comparing names.
    fn spec_is_refused(&self, spec: &Spec) -> bool {
        // Its position in the table (a static array of these).
        let at = (spec as *const Spec as usize - table::COMMANDS.as_ptr() as usize)
            / std::mem::size_of::<Spec>();
        self.by_spec.get(at).copied().unwrap_or(true)
    }

    /// The error for a refused command, if it is one.
    pub fn check(&self, cmd: &Command, class: &Class) -> Option<ClientError> {
        if class.spec.is_some_and(|s| !self.spec_is_refused(s)) {
            return None;
        }
        let upper;
        let name = match class.spec {
            Some(s) => s.name,
            None => {
                upper = cmd.name_upper();
                upper.as_str()
            }
        };
        let shown = || name.replace('|', " ");
        if STREAMS.contains(&name) {
            return Some(ClientError::NotProxied { command: shown() });
        }
        self.hit(name)
            .then(|| ClientError::Denied { command: shown() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::commands::classify;

    fn check(list: &DenyList, args: &[&str]) -> Option<ClientError> {
        let c = Command::from_args(args);
        list.check(&c, &classify(&c))
    }

    #[test]
    fn the_default_list() {
        let d = DenyList::parse(DEFAULT);
        for no in [
            &["shutdown"][..],
            &["SHUTDOWN", "NOSAVE"],
            &["debug", "sleep", "1"],
            &["replicaof", "no", "one"],
            &["client", "kill", "id", "3"],
            &["client", "pause", "100"],
            &["failover"],
        ] {
            assert!(
                matches!(check(&d, no), Some(ClientError::Denied { .. })),
                "{no:?}"
            );
        }
        for ok in [
            &["get", "k"][..],
            &["client", "id"],
            &["config", "get", "maxmemory"],
            &["script", "kill"],
        ] {
            assert_eq!(check(&d, ok), None, "{ok:?}");
        }
        assert!(matches!(
            check(&d, &["psync", "?", "-1"]),
            Some(ClientError::NotProxied { .. })
        ));
        assert!(matches!(
            check(&DenyList::parse(""), &["sync"]),
            Some(ClientError::NotProxied { .. })
        ));
    }

    #[test]
    fn user_lists() {
        let d = DenyList::parse(" config , client kill,FLUSHALL");
        assert!(check(&d, &["CONFIG", "SET", "a", "b"]).is_some());
        assert!(check(&d, &["client", "kill", "x"]).is_some());
        assert!(check(&d, &["flushall"]).is_some());
        assert!(check(&d, &["shutdown"]).is_none());
        assert!(check(&DenyList::parse(""), &["shutdown"]).is_none());
        let e = check(&d, &["config", "set", "a", "b"]).unwrap();
        assert!(
            e.text().contains("CONFIG SET is not allowed"),
            "{}",
            e.text()
        );
    }
}
