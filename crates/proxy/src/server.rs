//! Wiring: binds the listeners (write, read, admin, and the TLS ones if
//! asked for) and starts control, admin and data.

use crate::admin::{self, AdminState};
use crate::config::ProxyConfig;
use crate::control::{self, ControlState};
use crate::data::{self, policy::Policy, Shared};
use crate::metrics::Metrics;
use crate::route::Endpoint;
use crate::route::RouteHandle;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
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

    pub fn shutdown(&mut self) {
        self.control.stop();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Waits until a master is known (for tests and start-up logs).
    pub async fn wait_master(&self, timeout: std::time::Duration) -> anyhow::Result<String> {
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

/// Binds one listener; the error names the flag that sets it and what to do.
async fn bind(what: &str, flag: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
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
    let write = bind_opt("write endpoint", "--port", cfg.write_listen.as_deref()).await?;
    let read = bind_opt("read endpoint", "--read-port", cfg.read_listen.as_deref()).await?;
    let admin_l = bind("admin endpoint", "--admin-port", &cfg.admin_listen).await?;
    let tls_write = bind_opt(
        "TLS write endpoint",
        "--tls-port",
        tls.and_then(|t| t.write_listen.as_deref()),
    )
    .await?;
    let tls_read = bind_opt(
        "TLS read endpoint",
        "--tls-read-port",
        tls.and_then(|t| t.read_listen.as_deref()),
    )
    .await?;
    let slots = data::accept_slots(cfg.maxclients);
    let metrics = Arc::new(Metrics::new());
    let (routes, control) = control::spawn(&cfg, metrics.clone());
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
            h.tasks.push(tokio::spawn(log_err(what, serve)));
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
                h.tasks.push(tokio::spawn(log_err(what, serve)));
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
) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => bind(what, flag, a).await.map(Some),
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
