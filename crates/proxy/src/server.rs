//! Wiring: binds the three listeners and starts control, admin and data.

use crate::admin::{self, AdminState};
use crate::config::ProxyConfig;
use crate::control::{self, ControlState};
use crate::data::{self, Balancer, Shared};
use crate::metrics::{Endpoint, Metrics};
use crate::route::RouteHandle;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running proxy. Dropping it stops every task.
pub struct ProxyHandle {
    pub write_addr: SocketAddr,
    pub read_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub routes: RouteHandle,
    pub control: Arc<ControlState>,
    tasks: Vec<JoinHandle<()>>,
}

impl ProxyHandle {
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
        .context("no master known: are the sentinels reachable?")?
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what}: is another process using it? choose another port (see `redis-ha proxy --help`)")
    })
}

pub async fn start(cfg: ProxyConfig) -> anyhow::Result<ProxyHandle> {
    anyhow::ensure!(
        !cfg.sentinels.is_empty(),
        "at least one --sentinel HOST:PORT is required"
    );
    let write = bind("write endpoint", &cfg.write_listen).await?;
    let read = bind("read endpoint", &cfg.read_listen).await?;
    let admin_l = bind("admin endpoint", &cfg.admin_listen).await?;
    let metrics = Arc::new(Metrics::new());
    let (routes, control) = control::spawn(&cfg, metrics.clone());
    let pool = Arc::new(data::mux::Pool::new(
        cfg.mux_connections,
        cfg.password.clone(),
        cfg.connect_timeout,
        metrics.shared_backend_connections.clone(),
    ));
    let shared = Arc::new(Shared {
        routes: routes.clone(),
        metrics: metrics.clone(),
        balancer: Balancer::new(cfg.read_balance),
        pool: pool.clone(),
        deny: data::deny::DenyList::parse(&cfg.deny_commands),
        cfg: Arc::new(cfg.clone()),
        limits: Default::default(),
    });
    let fence = tokio::spawn(pool.watch(routes.routes.clone()));
    let h = ProxyHandle {
        write_addr: write.local_addr()?,
        read_addr: read.local_addr()?,
        admin_addr: admin_l.local_addr()?,
        metrics: metrics.clone(),
        routes,
        control: control.clone(),
        tasks: vec![
            fence,
            tokio::spawn(log_err(
                "write endpoint",
                data::serve(write, Endpoint::write, shared.clone()),
            )),
            tokio::spawn(log_err(
                "read endpoint",
                data::serve(read, Endpoint::read, shared),
            )),
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
    Ok(h)
}

async fn log_err(what: &'static str, f: impl std::future::Future<Output = std::io::Result<()>>) {
    if let Err(e) = f.await {
        tracing::error!(error = %e, "{what} stopped");
    }
}
