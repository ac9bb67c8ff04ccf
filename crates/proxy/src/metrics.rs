//! Prometheus metrics (`redis_ha_*`). Each endpoint's series are resolved
//! once, at start ([`EndpointMetrics`]), so the data path pays an atomic add
//! per update, never a label lookup or a lock. It depends on neither the
//! control plane nor the data path: they report to it in its own terms
//! ([`ErrorKind`], [`SentinelSample`], [`ReplicaSample`]).

mod latency;

pub use latency::{Latency, LatencySnapshot};

use crate::route::Endpoint;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `kind` label of `redis_ha_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    HoldTimeout,
    Protocol,
    SessionBroken,
    NoReplica,
    Auth,
    UnknownOutcome,
    Poison,
    Denied,
    OutputLimit,
    NotReplicated,
    Draining,
    /// A big value cut short: its connection was lost while it passed.
    Cut,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::HoldTimeout,
        ErrorKind::Protocol,
        ErrorKind::SessionBroken,
        ErrorKind::NoReplica,
        ErrorKind::Auth,
        ErrorKind::UnknownOutcome,
        ErrorKind::Poison,
        ErrorKind::Denied,
        ErrorKind::OutputLimit,
        ErrorKind::NotReplicated,
        ErrorKind::Draining,
        ErrorKind::Cut,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::HoldTimeout => "hold_timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::SessionBroken => "session_broken",
            ErrorKind::NoReplica => "no_replica",
            ErrorKind::Auth => "auth",
            ErrorKind::UnknownOutcome => "unknown_outcome",
            ErrorKind::Poison => "poison",
            ErrorKind::Denied => "denied",
            ErrorKind::OutputLimit => "output_limit",
            ErrorKind::NotReplicated => "not_replicated",
            ErrorKind::Draining => "draining",
            ErrorKind::Cut => "cut",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: Endpoint,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub endpoint: Endpoint,
    /// An [`ErrorKind`] label.
    pub kind: String,
}

/// A node's address as a label (Prometheus convention for info gauges).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub addr: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub client_connections: Family<EndpointLabels, Gauge>,
    pub client_connections_total: Family<EndpointLabels, Counter>,
    pub commands_total: Family<EndpointLabels, Counter>,
    /// Errors the proxy itself returned to clients (not Redis's own replies).
    pub errors_total: Family<ErrorLabels, Counter>,
    /// Commands re-sent to a new master after `-READONLY` or a dropped backend.
    pub commands_retried_total: Family<EndpointLabels, Counter>,
    /// Commands that waited for a master during a failover.
    pub commands_held_total: Family<EndpointLabels, Counter>,
    pub hold_seconds: Histogram,
    pub backend_connections: Family<EndpointLabels, Gauge>,
    /// Multiplexed backend connections, shared by both endpoints.
    pub shared_backend_connections: Gauge,
    /// Master switches the proxy adopted.
    pub failovers_total: Counter,
    /// Sentinels currently reachable.
    pub sentinels_reachable: Gauge,
    /// 1 while a verified master is known.
    pub master_known: Gauge,
    pub healthy_replicas: Gauge,
    /// Clients turned away at `--maxclients` (both endpoints).
    pub rejected_connections_total: Counter,
    /// Clients whose TLS handshake failed (wrong CA, no certificate, timeout...).
    pub tls_handshake_failures_total: Counter,
    /// 1 for the master writes go to (one series, labelled by address).
    pub master_info: Family<NodeLabels, Gauge>,
    /// Per replica the sentinels know: 1 while in the read rotation.
    pub replica_in_rotation: Family<NodeLabels, Gauge>,
    /// Seconds since the replica's last ACK, as the master reports it.
    pub replica_lag_seconds: Family<NodeLabels, Gauge>,
    /// The master's replication offset minus the replica's.
    pub replica_lag_bytes: Family<NodeLabels, Gauge>,
    /// Per sentinel: 1 while it answers.
    pub sentinel_up: Family<NodeLabels, Gauge>,
    /// From the fault first seen to the first write the new master served.
    pub failover_seconds: Histogram,
    /// From a request read to its reply written, per endpoint.
    pub request_duration_seconds: Family<EndpointLabels, Latency>,
    pub received_bytes_total: Family<EndpointLabels, Counter>,
    pub sent_bytes_total: Family<EndpointLabels, Counter>,
    write: EndpointMetrics,
    read: EndpointMetrics,
}

/// One endpoint's series, taken from the families once. Clones share the
/// values with the registered families.
#[derive(Clone, Default)]
pub struct EndpointMetrics {
    pub client_connections: Gauge,
    pub client_connections_total: Counter,
    pub commands: Counter,
    pub retried: Counter,
    pub held: Counter,
    pub backend_connections: Gauge,
    pub latency: Latency,
    /// Bytes read from clients / written to them.
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    errors: [Counter; ErrorKind::ALL.len()],
}

impl EndpointMetrics {
    /// The counter of one kind of error.
    pub fn error(&self, kind: ErrorKind) -> &Counter {
        &self.errors[kind as usize]
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().map(Counter::get).sum()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("redis_ha");
        let m = Metrics {
            client_connections: Family::default(),
            client_connections_total: Family::default(),
            commands_total: Family::default(),
            errors_total: Family::default(),
            commands_retried_total: Family::default(),
            commands_held_total: Family::default(),
            hold_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            backend_connections: Family::default(),
            shared_backend_connections: Gauge::default(),
            failovers_total: Counter::default(),
            sentinels_reachable: Gauge::default(),
            master_known: Gauge::default(),
            healthy_replicas: Gauge::default(),
            rejected_connections_total: Counter::default(),
            tls_handshake_failures_total: Counter::default(),
            master_info: Family::default(),
            replica_in_rotation: Family::default(),
            replica_lag_seconds: Family::default(),
            replica_lag_bytes: Family::default(),
            sentinel_up: Family::default(),
            failover_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            request_duration_seconds: Family::default(),
            received_bytes_total: Family::default(),
            sent_bytes_total: Family::default(),
            registry: Registry::default(),
            // Resolved below, once the families exist.
            write: EndpointMetrics::default(),
            read: EndpointMetrics::default(),
        };
        registry.register(
            "client_connections",
            "Open client connections",
            m.client_connections.clone(),
        );
        registry.register(
            "client_connections",
            "Client connections accepted",
            m.client_connections_total.clone(),
        );
        registry.register(
            "commands",
            "Commands received from clients",
            m.commands_total.clone(),
        );
        registry.register(
            "errors",
            "Errors the proxy returned to clients",
            m.errors_total.clone(),
        );
        registry.register(
            "commands_retried",
            "Commands re-sent to a new master after READONLY or a dropped backend",
            m.commands_retried_total.clone(),
        );
        registry.register(
            "commands_held",
            "Commands that waited for a master during a failover",
            m.commands_held_total.clone(),
        );
        registry.register(
            "hold_seconds",
            "Time commands waited for a master",
            m.hold_seconds.clone(),
        );
        registry.register(
            "backend_connections",
            "Open dedicated backend connections (one per client session)",
            m.backend_connections.clone(),
        );
        registry.register(
            "shared_backend_connections",
            "Open multiplexed backend connections (--mode multiplex)",
            m.shared_backend_connections.clone(),
        );
        registry.register(
            "failovers",
            "Master switches adopted",
            m.failovers_total.clone(),
        );
        registry.register(
            "rejected_connections",
            "Clients refused because --maxclients were connected",
            m.rejected_connections_total.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Client TLS handshakes that failed (see the proxy's debug log for why)",
            m.tls_handshake_failures_total.clone(),
        );
        registry.register(
            "sentinels_reachable",
            "Sentinels currently reachable",
            m.sentinels_reachable.clone(),
        );
        registry.register(
            "master_known",
            "1 while a verified master is known",
            m.master_known.clone(),
        );
        registry.register(
            "healthy_replicas",
            "Replicas in the read rotation",
            m.healthy_replicas.clone(),
        );
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("build_info", "redis-ha's version (always 1)", build);
        registry.register(
            "master_info",
            "1 for the master writes go to, by address",
            m.master_info.clone(),
        );
        registry.register(
            "replica_in_rotation",
            "1 while a replica serves the read endpoint, 0 while it is out",
            m.replica_in_rotation.clone(),
        );
        registry.register(
            "replica_lag_seconds",
            "Seconds since the replica's last acknowledgement, as the master reports it",
            m.replica_lag_seconds.clone(),
        );
        registry.register(
            "replica_lag_bytes",
            "Replication bytes the replica is behind the master",
            m.replica_lag_bytes.clone(),
        );
        registry.register(
            "sentinel_up",
            "1 while a sentinel answers, 0 while it does not",
            m.sentinel_up.clone(),
        );
        registry.register(
            "failover_seconds",
            "Failovers: from the fault first seen to the first write served by the new master",
            m.failover_seconds.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "From a client's request read to its reply written",
            m.request_duration_seconds.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes read from clients",
            m.received_bytes_total.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes written to clients",
            m.sent_bytes_total.clone(),
        );
        // Every series exists from the start (0 before the first event).
        let resolve = |ep| {
            let l = EndpointLabels { endpoint: ep };
            EndpointMetrics {
                client_connections: m.client_connections.get_or_create(&l).clone(),
                client_connections_total: m.client_connections_total.get_or_create(&l).clone(),
                commands: m.commands_total.get_or_create(&l).clone(),
                retried: m.commands_retried_total.get_or_create(&l).clone(),
                held: m.commands_held_total.get_or_create(&l).clone(),
                backend_connections: m.backend_connections.get_or_create(&l).clone(),
                latency: m.request_duration_seconds.get_or_create(&l).clone(),
                bytes_in: m.received_bytes_total.get_or_create(&l).clone(),
                bytes_out: m.sent_bytes_total.get_or_create(&l).clone(),
                errors: ErrorKind::ALL.map(|kind| {
                    m.errors_total
                        .get_or_create(&ErrorLabels {
                            endpoint: ep,
                            kind: kind.label().to_string(),
                        })
                        .clone()
                }),
            }
        };
        let (write, read) = (resolve(Endpoint::write), resolve(Endpoint::read));
        Metrics {
            registry,
            write,
            read,
            ..m
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// The current master as the one `master_info` series (none while held).
    pub fn set_master(&self, master: Option<&str>) {
        self.master_info.clear();
        if let Some(m) = master {
            self.master_info
                .get_or_create(&NodeLabels { addr: m.into() })
                .set(1);
        }
    }

    /// Per-node gauges from the control plane's last look; nodes no longer
    /// known disappear.
    pub fn set_nodes<'a>(
        &self,
        sentinels: impl IntoIterator<Item = SentinelSample<'a>>,
        replicas: impl IntoIterator<Item = ReplicaSample<'a>>,
    ) {
        self.sentinel_up.clear();
        for v in sentinels {
            let l = NodeLabels {
                addr: v.addr.into(),
            };
            self.sentinel_up.get_or_create(&l).set(v.up as i64);
        }
        for f in [
            &self.replica_in_rotation,
            &self.replica_lag_seconds,
            &self.replica_lag_bytes,
        ] {
            f.clear();
        }
        for r in replicas {
            let l = NodeLabels {
                addr: r.addr.into(),
            };
            self.replica_in_rotation
                .get_or_create(&l)
                .set(r.in_rotation as i64);
            if let Some(s) = r.lag_seconds {
                self.replica_lag_seconds.get_or_create(&l).set(s);
            }
            if let Some(b) = r.lag_bytes {
                self.replica_lag_bytes.get_or_create(&l).set(b);
            }
        }
    }

    /// An endpoint's series.
    pub fn ep(&self, e: Endpoint) -> &EndpointMetrics {
        match e {
            Endpoint::write => &self.write,
            Endpoint::read => &self.read,
        }
    }
}

/// A sentinel as the gauges see it (the control plane maps its views).
pub struct SentinelSample<'a> {
    pub addr: &'a str,
    pub up: bool,
}

/// A replica as the gauges see it.
pub struct ReplicaSample<'a> {
    pub addr: &'a str,
    pub in_rotation: bool,
    pub lag_seconds: Option<i64>,
    pub lag_bytes: Option<i64>,
}
