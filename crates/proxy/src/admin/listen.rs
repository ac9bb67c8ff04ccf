//! The admin page's HTTP connections, with limits: headers must arrive within
//! [`HEADER_TIMEOUT`], a connection lives at most [`MAX_LIFETIME`], and at
//! most [`MAX_CONNECTIONS`] are open; more are closed at once. A client that
//! connects and sends nothing, or headers that never end, cannot hold a
//! connection (or the proxy's descriptors) for long.

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
pub const MAX_CONNECTIONS: usize = 64;

/// Serves `router` on `listener` until it fails.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!("admin connection refused: {MAX_CONNECTIONS} open");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(sock), service);
            let _ = tokio::time::timeout(MAX_LIFETIME, conn).await;
            drop(permit);
        });
    }
}
