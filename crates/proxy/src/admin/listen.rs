//! The admin page's HTTP connections, with limits: headers must arrive within
//! [`HEADER_TIMEOUT`], a connection lives at most [`MAX_LIFETIME`]. Up to
//! [`MAX_CONNECTIONS`] get everything; past that a connection is served the
//! probes only (`/healthz`, `/readyz`; anything else a 503 saying why), one
//! request, so a crowd of scrapers or idle connections never starves a
//! liveness probe; past [`MAX_OVERFLOW`] more it is closed at once. A
//! client that connects and sends nothing, or headers that never end,
//! cannot hold a connection (or the proxy's descriptors) for long.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough for a dashboard's keep-alive polling, which reconnects.
pub const MAX_LIFETIME: Duration = Duration::from_secs(120);
pub const MAX_CONNECTIONS: usize = 2048;
/// Probe-only connections beyond [`MAX_CONNECTIONS`].
pub const MAX_OVERFLOW: usize = 8192;

/// Serves `router` on `listener` until it fails; `probes` past the limit.
pub async fn serve(listener: TcpListener, router: Router, probes: Router) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let overflow = Arc::new(Semaphore::new(MAX_OVERFLOW));
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (permit, app, keep_alive) = match open.clone().try_acquire_owned() {
            Ok(p) => (p, router.clone(), true),
            Err(_) => match overflow.clone().try_acquire_owned() {
                Ok(p) => (p, probes.clone(), false),
                Err(_) => {
                    tracing::debug!(
                        "admin connection refused: {MAX_CONNECTIONS} + {MAX_OVERFLOW} open"
                    );
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app);
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(keep_alive)
                .serve_connection(TokioIo::new(sock), service);
            let _ = tokio::time::timeout(MAX_LIFETIME, conn).await;
            drop(permit);
        });
    }
}
