//! The errors the proxy itself answers clients with. Each knows its reply
//! text, its metrics label and whether the request may have run (the retry
//! decision a client needs, pingora-style), so no caller spells them out.

use bytes::{Bytes, BytesMut};
use redis_ha_resp::encode;

/// The metrics label of each error (kept beside the metrics it labels).
pub use crate::metrics::ErrorKind;

/// Whether the request behind an error ran on Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Certainly not: the client may send it again.
    No,
    /// Perhaps: it was written to a connection that was lost before the
    /// reply came. Sending it again may apply it twice.
    Unknown,
}

/// An error the proxy answers a request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// No master within `--failover-hold`; `why` says what the proxy saw.
    HoldTimeout {
        why: String,
    },
    NoReplica,
    Protocol(String),
    /// Server-side state (MULTI, WATCH, pub/sub, a blocking command) was on
    /// a backend that is gone.
    SessionBroken {
        during: &'static str,
    },
    /// Redis's own login errors (NOAUTH, WRONGPASS...), verbatim.
    Auth(&'static str),
    /// A write was sent and its connection lost before the reply.
    UnknownOutcome {
        node: String,
        why: String,
    },
    /// The request lost its backend connection twice: it is not sent again.
    Poison {
        node: String,
    },
    /// Refused by `--deny-commands`.
    Denied {
        command: String,
    },
    /// `--write-ack`: the write ran on the master, but the replicas did not
    /// confirm it (`detail` says how).
    NotReplicated {
        detail: String,
    },
    /// The proxy is shutting down (drain) and did not forward it.
    ShuttingDown,
    /// A request streamed in pieces (a big value) lost its connection, or
    /// the client's side ended, before all of it was written: Redis never
    /// had the whole command, so it did not run.
    Unsent {
        node: String,
        why: String,
    },
    /// Replication streams cannot pass a request/reply proxy.
    NotProxied {
        command: String,
    },
}

impl ClientError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::HoldTimeout { .. } => ErrorKind::HoldTimeout,
            ClientError::NoReplica => ErrorKind::NoReplica,
            ClientError::Protocol(_) => ErrorKind::Protocol,
            ClientError::SessionBroken { .. } => ErrorKind::SessionBroken,
            ClientError::Auth(_) => ErrorKind::Auth,
            ClientError::UnknownOutcome { .. } => ErrorKind::UnknownOutcome,
            ClientError::Poison { .. } => ErrorKind::Poison,
            ClientError::Denied { .. } | ClientError::NotProxied { .. } => ErrorKind::Denied,
            ClientError::NotReplicated { .. } => ErrorKind::NotReplicated,
            ClientError::ShuttingDown => ErrorKind::Draining,
            ClientError::Unsent { .. } => ErrorKind::Cut,
        }
    }

    pub fn ran(&self) -> Ran {
        match self {
            ClientError::UnknownOutcome { .. }
            | ClientError::Poison { .. }
            | ClientError::SessionBroken { .. }
            | ClientError::NotReplicated { .. } => Ran::Unknown,
            _ => Ran::No,
        }
    }

    /// The error line, without the leading `-`.
    pub fn text(&self) -> String {
        match self {
            ClientError::HoldTimeout { why } => format!("TRYAGAIN redis-ha: {why}; retry later"),
            ClientError::NoReplica => "NOREPLICAS redis-ha: no healthy replica for the read endpoint (--read-fallback error); retry, or read from the write endpoint".into(),
            ClientError::Protocol(e) => format!("ERR Protocol error: {e}"),
            ClientError::SessionBroken { during } => format!("ERR redis-ha: the backend changed (failover) while this connection was in {during}; reconnect and retry"),
            ClientError::Auth(e) => (*e).into(),
            ClientError::UnknownOutcome { node, why } => format!("ERR redis-ha: unknown outcome: the connection to {node} was lost ({why}) after this command was sent; it may or may not have been applied, check before retrying"),
            ClientError::Poison { node } => format!("ERR redis-ha: this command lost its connection to {node} twice; not sending it again"),
            ClientError::Denied { command } => format!("ERR redis-ha: {command} is not allowed through the proxy (--deny-commands); run it against the node directly"),
            ClientError::NotReplicated { detail } => format!("NOREPLICAS redis-ha: the write ran on the master, but {detail} (--write-ack); a failover now could lose it, check before retrying"),
            ClientError::ShuttingDown => "TRYAGAIN redis-ha: this proxy is shutting down and did not run the command; reconnect and send it again".into(),
            ClientError::Unsent { node, why } => format!("ERR redis-ha: the connection to {node} was lost ({why}) before this command was sent in full; it did not run, safe to retry"),
            ClientError::NotProxied { command } => format!("ERR redis-ha: {command} (a replication stream) cannot pass through the proxy; connect to the node directly (redis-ha status shows its address)"),
        }
    }

    /// The RESP error reply.
    pub fn reply(&self) -> Bytes {
        let mut out = BytesMut::new();
        encode::error(&self.text(), &mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_label() {
        let mut labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn unknown_outcomes_say_so_and_name_the_node() {
        let e = ClientError::UnknownOutcome {
            node: "10.0.0.1:6379".into(),
            why: "closed the connection".into(),
        };
        assert_eq!(e.ran(), Ran::Unknown);
        assert!(e.text().contains("unknown outcome") && e.text().contains("10.0.0.1:6379"));
        assert!(e.reply().starts_with(b"-ERR redis-ha: unknown outcome"));
        let d = ClientError::Denied {
            command: "SHUTDOWN".into(),
        };
        assert_eq!((d.ran(), d.kind()), (Ran::No, ErrorKind::Denied));
        let s = ClientError::ShuttingDown;
        assert_eq!(s.ran(), Ran::No);
        assert!(s.text().contains("did not run"), "{}", s.text());
    }
}
