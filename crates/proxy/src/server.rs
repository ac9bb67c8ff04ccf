//! Wiring: binds the listeners (write, read, admin, and the TLS ones if
//! asked for) and starts control, admin and data.

use crate::admin::{self, AdminState};
use crate::config::ProxyConfig;
use crate::control::{self, ControlState};
use crate::data::drain::{Drain, DrainState, Drained};
use crate::data::{self, policy::Policy, ClientSlots, Shared};
use crate::metrics::Metrics;
use crate::route::Endpoint;
use crate::route::RouteHandle;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running proxy. Dropping it stops every task.
pub struct ProxyHandle {
    /// The plain endpoints' addresses; `None` when turned off (`--port 0`,
    /// `--read-port 0`: TLS only).
    pub plain_write_addr: Option<SocketAddr>,
    pub plain_read_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    /// The TLS endpoints' addresses, when `--tls-port`/`--tls-read-port` are set.
    pub tls_write_addr: Option<SocketAddr>,
    pub tls_read_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub routes: RouteHandle,
    pub control: Arc<ControlState>,
    /// The drain state (`/readyz`, the sessions).
    pub drain_state: Arc<Drain>,
    /// Clients connected over every endpoint.
    pub slots: Arc<ClientSlots>,
    /// The accept loops: ended first in a drain (closing the listeners).
    listeners: Vec<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ProxyHandle {
    /// The plain write endpoint, for a caller that configured one (tests,
    /// the drill's own proxy).
    pub fn write_addr(&self) -> SocketAddr {
        self.plain_write_addr
            .expect("the plain write endpoint is off (--port 0)")
    }

    /// The plain read endpoint, as [`ProxyHandle::write_addr`].
    pub fn read_addr(&self) -> SocketAddr {
        self.plain_read_addr
            .expect("the plain read endpoint is off (--read-port 0)")
    }

    /// Stops every task at once: open client connections are cut. See
    /// [`ProxyHandle::drain`] for a shutdown that costs clients nothing.
    pub fn shutdown(&mut self) {
        self.control.stop();
        for t in self.listeners.drain(..).chain(self.tasks.drain(..)) {
            t.abort();
        }
    }

    /// Shuts down without failing clients: not ready at once, accepting
    /// for `grace`, then the listeners close and every session finishes
    /// what it forwarded and closes at a request boundary, within
    /// `timeout`; then [`ProxyHandle::shutdown`].
    pub async fn drain(&mut self, grace: Duration, timeout: Duration) -> Drained {
        self.drain_state.set(DrainState::Grace);
        tracing::info!(
            ?grace,
            ?timeout,
            "draining: not ready; accepting for the grace period"
        );
        tokio::time::sleep(grace).await;
        for t in self.listeners.drain(..) {
            t.abort();
            let _ = t.await; // the listener is closed once its task is gone
        }
        let until = Instant::now() + timeout;
        self.drain_state.set(DrainState::Draining { until });
        tracing::info!(
            clients = self.slots.used(),
            "draining: listeners closed, sessions finishing"
        );
        // Sessions close themselves by `until`; a little more for their
        // last writes, then what is left is cut.
        let cut = until + Duration::from_secs(1);
        while self.slots.used() > 0 && Instant::now() < cut {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let late = Drained::from_left(self.slots.used());
        match late {
            Drained::Finished => tracing::info!("drained: every client session closed"),
            Drained::TimedOut { sessions } => {
                tracing::warn!(sessions, "drain timed out: {sessions} client sessions cut")
            }
        }
        self.shutdown();
        late
    }

    /// Waits until a master is known (for tests and start-up logs).
    pub async fn wait_master(&self, timeout: Duration) -> anyhow::Result<String> {
        let mut rx = self.routes.routes.clone();
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(m) = rx.borrow_and_update().master.clone() {
                    return Ok(m);
                }
                rx.changed().await.context("control plane stopped")?;
            }
        })
        .await
        .map_err(|_| {
            let why = self.routes.current().closed.clone();
            anyhow::anyhow!(
                "no master known: {}",
                why.as_deref().unwrap_or("are the sentinels reachable?")
            )
        })?
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds one listener (beside older proxies with `reuse_port`); the error
/// names the flag that sets it and what to do.
async fn bind(what: &str, flag: &str, addr: &str, reuse_port: bool) -> anyhow::Result<TcpListener> {
    let bound = async {
        let mut last = None;
        for a in tokio::net::lookup_host(addr).await? {
            match crate::listen::bind(a, reuse_port) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into()))
    };
    bound.await.map_err(|e: std::io::Error| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("another process is using it: stop it or choose another {flag}")
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("ports below 1024 need root or CAP_NET_BIND_SERVICE: choose another {flag}")
            }
            _ => "check --bind: it must be an address of this machine (e.g. 127.0.0.1 or 0.0.0.0)"
                .to_string(),
        };
        anyhow::anyhow!("cannot listen on {addr} for the {what} ({e}): {hint}")
    })
}

/// The listen addresses that collide (same port, port 0 excepted), named by
/// their flags.
pub fn duplicate_ports(listens: &[(&str, &str)]) -> Option<String> {
    let port = |a: &str| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
    for (i, (f1, a1)) in listens.iter().enumerate() {
        for (f2, a2) in &listens[i + 1..] {
            if port(a1).is_some_and(|p| p != 0) && port(a1) == port(a2) {
                return Some(format!(
                    "{f1} and {f2} are both port {}: each endpoint needs its own port",
                    port(a1).unwrap_or(0)
                ));
            }
        }
    }
    None
}

pub async fn start(cfg: ProxyConfig) -> anyhow::Result<ProxyHandle> {
    anyhow::ensure!(
        !cfg.sentinels.is_empty(),
        "at least one --sentinel HOST:PORT is required"
    );
    let tls = cfg.tls.as_ref();
    anyhow::ensure!(
        cfg.write_listen.is_some() || tls.is_some_and(|t| t.write_listen.is_some()),
        "no write endpoint: --port 0 turns off the plain one, so give --tls-port PORT (with --tls-cert-file and --tls-key-file)"
    );
    let mut listens = vec![("--admin-port", cfg.admin_listen.as_str())];
    if let Some(a) = cfg.write_listen.as_deref() {
        listens.push(("--port", a));
    }
    if let Some(a) = cfg.read_listen.as_deref() {
        listens.push(("--read-port", a));
    }
    if let Some(a) = tls.and_then(|t| t.write_listen.as_deref()) {
        listens.push(("--tls-port", a));
    }
    if let Some(a) = tls.and_then(|t| t.read_listen.as_deref()) {
        listens.push(("--tls-read-port", a));
    }
    if let Some(e) = duplicate_ports(&listens) {
        anyhow::bail!(e);
    }
    let terminator = match tls {
        Some(t) => Some(data::tls::Terminator::new(t.files.clone())?),
        None => None,
    };
    let reuse = cfg.reuse_port;
    let write = bind_opt(
        "write endpoint",
        "--port",
        cfg.write_listen.as_deref(),
        reuse,
    )
    .await?;
    let read = bind_opt(
        "read endpoint",
        "--read-port",
        cfg.read_listen.as_deref(),
        reuse,
    )
    .await?;
    let admin_l = bind("admin endpoint", "--admin-port", &cfg.admin_listen, reuse).await?;
    let tls_write = bind_opt(
        "TLS write endpoint",
        "--tls-port",
        tls.and_then(|t| t.write_listen.as_deref()),
        reuse,
    )
    .await?;
    let tls_read = bind_opt(
        "TLS read endpoint",
        "--tls-read-port",
        tls.and_then(|t| t.read_listen.as_deref()),
        reuse,
    )
    .await?;
    let slots = data::accept_slots(cfg.maxclients);
    let metrics = Arc::new(Metrics::new());
    let (routes, control) = control::spawn(&cfg, metrics.clone());
    let drain = Arc::new(Drain::default());
    let pool = Arc::new(data::mux::Pool::new(
        cfg.mux_connections,
        cfg.redis_access(),
        cfg.connect_timeout,
        metrics.shared_backend_connections.clone(),
        cfg.write_ack,
    ));
    let shared = Arc::new(Shared {
        routes: routes.clone(),
        metrics: metrics.clone(),
        write: Policy::new(Endpoint::write, &cfg),
        read: Policy::new(Endpoint::read, &cfg),
        pool: pool.clone(),
        deny: data::deny::DenyList::parse(&cfg.deny_commands),
        cfg: Arc::new(cfg.clone()),
        limits: Default::default(),
        drain: drain.clone(),
        held: Default::default(),
    });
    let fence = tokio::spawn(pool.watch(routes.routes.clone()));
    let local = |l: &Option<TcpListener>| l.as_ref().map(|l| l.local_addr()).transpose();
    let mut h = ProxyHandle {
        plain_write_addr: local(&write)?,
        plain_read_addr: local(&read)?,
        admin_addr: admin_l.local_addr()?,
        tls_write_addr: local(&tls_write)?,
        tls_read_addr: local(&tls_read)?,
        metrics: metrics.clone(),
        routes,
        control: control.clone(),
        drain_state: drain.clone(),
        slots: slots.clone(),
        listeners: Vec::new(),
        tasks: vec![
            fence,
            tokio::spawn(log_err(
                "admin endpoint",
                admin::serve(
                    admin_l,
                    AdminState {
                        control,
                        metrics,
                        config: cfg,
                        drain,
                    },
                ),
            )),
        ],
    };
    for (l, ep, what) in [
        (write, Endpoint::write, "write endpoint"),
        (read, Endpoint::read, "read endpoint"),
    ] {
        if let Some(l) = l {
            let serve = data::serve(l, ep, shared.clone(), slots.clone(), None);
            h.listeners.push(tokio::spawn(log_err(what, serve)));
        }
    }
    if let Some(t) = terminator {
        let tls_eps = [
            (tls_write, Endpoint::write, "TLS write endpoint"),
            (tls_read, Endpoint::read, "TLS read endpoint"),
        ];
        for (l, ep, what) in tls_eps {
            if let Some(l) = l {
                let serve = data::serve(l, ep, shared.clone(), slots.clone(), Some(t.clone()));
                h.listeners.push(tokio::spawn(log_err(what, serve)));
            }
        }
        h.tasks.push(tokio::spawn(t.reload_on_sighup()));
    }
    Ok(h)
}

/// [`bind`] for an endpoint that may not be asked for.
async fn bind_opt(
    what: &str,
    flag: &str,
    addr: Option<&str>,
    reuse_port: bool,
) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => bind(what, flag, a, reuse_port).await.map(Some),
        None => Ok(None),
    }
}

async fn log_err(what: &'static str, f: impl std::future::Future<Output = std::io::Result<()>>) {
    if let Err(e) = f.await {
        tracing::error!(error = %e, "{what} stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_ports_are_named_by_flag() {
        let ok = [
            ("--port", "127.0.0.1:6379"),
            ("--read-port", "127.0.0.1:6380"),
        ];
        assert_eq!(duplicate_ports(&ok), None);
        let free = [("--port", "127.0.0.1:0"), ("--read-port", "127.0.0.1:0")];
        assert_eq!(duplicate_ports(&free), None, "port 0 picks distinct ports");
        let dup = [
            ("--port", "127.0.0.1:6379"),
            ("--read-port", "127.0.0.1:6380"),
            ("--admin-port", "127.0.0.1:6379"),
        ];
        let e = duplicate_ports(&dup).expect("a collision");
        assert!(
            e.contains("--port") && e.contains("--admin-port") && e.contains("6379"),
            "{e}"
        );
    }
}
