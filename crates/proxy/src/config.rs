//! Proxy settings (built from the command line by [`crate::cli`]).

use redis_ha_resp::tls::Tls;
use redis_ha_resp::{Access, Login};
use redis_ha_topology::Addr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFallback {
    /// With no healthy replica, reads go to the master.
    Master,
    /// With no healthy replica, reads fail with a clear error.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadBalance {
    RoundRobin,
    LeastOutstanding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnMode {
    /// One backend connection per client connection.
    Dedicated,
    /// Stateless commands of many clients share pipelined backend connections.
    Multiplex,
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub sentinels: Vec<Addr>,
    pub master_name: String,
    /// What the proxy's own connections to Redis log in as (`--user`,
    /// `--password`): AUTH on every backend connection, if any.
    pub login: Option<Login>,
    /// With a login: clients must log in (AUTH / HELLO AUTH) before
    /// anything else, as with Redis itself. Off, the proxy logs in for them.
    pub client_auth: bool,
    /// What its connections to the sentinels log in as (`--sentinel-user`,
    /// `--sentinel-password`).
    pub sentinel_login: Option<Login>,
    /// `--backend-tls`: TLS toward Redis and the sentinels (one CA and
    /// client certificate for both, as one `tls-*` set serves a topology).
    pub backend_tls: Option<Arc<Tls>>,
    /// `host:port` of the plain endpoints; port 0 picks a free port
    /// (tests); `None`: off (`--port 0` / `--read-port 0`, as Redis's
    /// `port 0`, for TLS only).
    pub write_listen: Option<String>,
    pub read_listen: Option<String>,
    pub admin_listen: String,
    pub failover_hold: Duration,
    pub max_replica_lag: Duration,
    pub read_fallback: ReadFallback,
    pub read_balance: ReadBalance,
    pub quorum_timeout: Duration,
    /// Fallback polling interval (events are the primary signal).
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
    pub mode: ConnMode,
    /// Shared connections per node in multiplex mode.
    pub mux_connections: usize,
    /// `--deny-commands`, as given (see [`crate::data::deny`]).
    pub deny_commands: String,
    /// Replies held for a client, in bytes, past which it is closed (on a
    /// shared connection, or a subscriber; a dedicated one pauses instead).
    pub client_output_limit: usize,
    /// Replies held for all clients, in bytes, past which sessions holding
    /// more than a little pause, and shared ones past their budget are closed.
    pub client_output_total: usize,
    /// Idle clients are closed after this; zero never.
    pub idle_timeout: Duration,
    /// Clients connected at once over both endpoints (`--maxclients`); lowered
    /// at start if the descriptor limit cannot carry it.
    pub maxclients: usize,
    /// `--write-ack`: writes are acknowledged once this many replicas have them.
    pub write_ack: Option<crate::data::ack::WriteAck>,
    /// Names shown beside addresses on the dashboard (`--node-name
    /// ADDR=NAME`: `redis-0`, `sentinel-1`...), as given.
    pub node_names: Vec<(Addr, String)>,
    /// Bearer token for the admin endpoint (`--admin-token-file`); `None`
    /// leaves it open (see [`crate::admin`]).
    pub admin_token: Option<String>,
    /// TLS endpoints beside the plain ones, if any.
    pub tls: Option<TlsEndpoints>,
    /// `--reuse-port`: listen beside an older proxy on the same ports (a
    /// restart's hand-over; see [`crate::listen`]).
    pub reuse_port: bool,
}

/// `--tls-port` / `--tls-read-port` and the files they serve with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsEndpoints {
    pub files: crate::data::tls::TlsFiles,
    /// `host:port` of the TLS write endpoint (`--tls-port`).
    pub write_listen: Option<String>,
    /// `host:port` of the TLS read endpoint (`--tls-read-port`).
    pub read_listen: Option<String>,
}

impl ProxyConfig {
    /// Clients must log in before anything else (there is a login and
    /// `client_auth` is on).
    pub fn clients_log_in(&self) -> bool {
        self.client_auth && self.login.is_some()
    }

    /// How the control plane reaches a Redis node: the proxy's login, TLS.
    pub fn redis_access(&self) -> Access {
        Access {
            login: self.login.clone(),
            tls: self.backend_tls.clone(),
        }
    }

    /// How it reaches a sentinel.
    pub fn sentinel_access(&self) -> Access {
        Access {
            login: self.sentinel_login.clone(),
            tls: self.backend_tls.clone(),
        }
    }

    /// Settings for tests: free ports on loopback, defaults otherwise.
    pub fn for_test(sentinels: Vec<Addr>, master_name: &str) -> ProxyConfig {
        ProxyConfig {
            sentinels,
            master_name: master_name.to_string(),
            login: None,
            client_auth: true,
            sentinel_login: None,
            backend_tls: None,
            write_listen: Some("127.0.0.1:0".into()),
            read_listen: Some("127.0.0.1:0".into()),
            admin_listen: "127.0.0.1:0".into(),
            failover_hold: Duration::from_secs(10),
            max_replica_lag: Duration::from_secs(10),
            read_fallback: ReadFallback::Master,
            read_balance: ReadBalance::RoundRobin,
            quorum_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            mode: ConnMode::Dedicated,
            mux_connections: 2,
            deny_commands: crate::data::deny::DEFAULT.into(),
            client_output_limit: 32 << 20,
            client_output_total: 128 << 20,
            idle_timeout: Duration::ZERO,
            maxclients: 10_000,
            write_ack: None,
            node_names: Vec::new(),
            admin_token: None,
            tls: None,
            reuse_port: false,
        }
    }
}
