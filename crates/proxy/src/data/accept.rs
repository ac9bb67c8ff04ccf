//! Accepting clients (TLS ones through their handshake first): the
//! `--maxclients` limit shared by every endpoint, and
//! the file-descriptor budget behind it (raised at start, with descriptors
//! kept back for the control plane and backends, as Redis does).

use super::session::client_io;
use super::tls::Terminator;
use super::{Session, Shared};
use crate::metrics::Metrics;
use crate::route::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What a client beyond the limit is told, in Redis's words.
pub const MAX_CLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";

/// Descriptors kept for everything but clients: sentinels, probes, the
/// shared backend connections, the admin page, logs (Redis keeps 32).
pub const RESERVED_FDS: u64 = 64;

/// Connected clients over both endpoints, at most `max`.
#[derive(Debug)]
pub struct ClientSlots {
    max: usize,
    used: AtomicUsize,
}

/// One client's place; freed on drop.
#[derive(Debug)]
pub struct Slot(Arc<ClientSlots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClientSlots {
    pub fn new(max: usize) -> Arc<ClientSlots> {
        Arc::new(ClientSlots {
            max,
            used: AtomicUsize::new(0),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// A place for one more client, or `None` at the limit.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

/// The maxclients the descriptor limit can carry: each client may hold a
/// client socket and a backend socket, plus [`RESERVED_FDS`].
pub fn effective_maxclients(requested: usize, fd_limit: u64) -> usize {
    let room = fd_limit.saturating_sub(RESERVED_FDS) / 2;
    requested.min(room.max(1) as usize)
}

/// Raises the soft open-file limit to the hard one; returns the limit now in
/// force (`None` when it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The client limit for this process: raises the descriptor limit and lowers
/// `requested` (with a warning that says what to do) if it cannot carry it.
pub fn client_slots(requested: usize) -> Arc<ClientSlots> {
    let Some(limit) = raise_fd_limit() else {
        return ClientSlots::new(requested);
    };
    let max = effective_maxclients(requested, limit);
    if max < requested {
        tracing::warn!(
            requested,
            max,
            fd_limit = limit,
            "--maxclients lowered to {max}: the open-file limit is {limit} and each client may need two descriptors plus {RESERVED_FDS} reserved; raise it (ulimit -n, LimitNOFILE=) to allow more"
        );
    }
    ClientSlots::new(max)
}

/// Accepts clients until the listener fails; with `tls`, each one does its
/// handshake in its own task (a slow one holds up nobody).
pub async fn serve(
    listener: TcpListener,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    slots: Arc<ClientSlots>,
    tls: Option<Arc<Terminator>>,
) -> std::io::Result<()> {
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: log, back off, go on
                // (the reserve keeps the control plane's own sockets possible).
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = slots.take() else {
            refuse(sock, &shared.metrics);
            continue;
        };
        let _ = sock.set_nodelay(true);
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            let io = match tls {
                None => client_io::plain(sock),
                Some(t) => match t.accept(sock).await {
                    Ok(s) => client_io::tls(s),
                    Err(e) => {
                        shared.metrics.tls_handshake_failures_total.inc();
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            Session::new(io, endpoint, shared).run().await;
            drop(slot);
        });
    }
}

/// Tells a client over the limit why, and closes it (without waiting on it).
fn refuse(mut sock: TcpStream, metrics: &Metrics) {
    metrics.rejected_connections_total.inc();
    tokio::spawn(async move {
        let write = sock.write_all(MAX_CLIENTS_REPLY);
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
        let _ = sock.shutdown().await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_shared_and_freed_on_drop() {
        let s = ClientSlots::new(2);
        let a = s.take().expect("first");
        let b = s.take().expect("second");
        assert!(s.take().is_none(), "third refused");
        drop(a);
        assert_eq!(s.used(), 1);
        let _c = s.take().expect("a freed place is reused");
        drop(b);
        assert_eq!(s.used(), 1);
    }

    #[test]
    fn maxclients_follows_the_descriptor_limit() {
        assert_eq!(effective_maxclients(10_000, 1_048_576), 10_000);
        assert_eq!(
            effective_maxclients(10_000, 1024),
            (1024 - RESERVED_FDS as usize) / 2
        );
        assert_eq!(effective_maxclients(5, 1024), 5);
        assert_eq!(effective_maxclients(100, 10), 1, "never zero");
    }
}
