//! The data path: accepts clients on an endpoint and runs one [`Session`]
//! per connection, over a dedicated or a shared ([`mux`]) backend
//! connection. It reads the routing table and reports trouble back through
//! [`RouteHandle::refresh`]; it never talks to Sentinel.

mod accept;
mod bufpool;
mod commands;
pub mod deny;
pub mod error;
mod handshake;
pub mod mux;
#[rustfmt::skip]
pub mod table;
mod session;

pub use accept::{client_slots as accept_slots, serve, ClientSlots};
pub use commands::{classify, lookup, Class, Effect, Kind};
pub use error::{ClientError, ErrorKind};
pub use session::{Session, REJOIN};

use crate::config::{ProxyConfig, ReadBalance};
use crate::metrics::Metrics;
use crate::route::RouteHandle;
use bytes::BytesMut;
use redis_ha_resp::Limits;
use redis_ha_topology::Addr;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;

/// What every session of a proxy shares.
pub struct Shared {
    pub routes: RouteHandle,
    pub metrics: Arc<Metrics>,
    pub cfg: Arc<ProxyConfig>,
    pub limits: Limits,
    pub balancer: Balancer,
    /// Shared backend connections (used in multiplex mode only).
    pub pool: Arc<mux::Pool>,
    /// Commands refused at the proxy (`--deny-commands`).
    pub deny: deny::DenyList,
}

/// Spreads read sessions over the healthy replicas.
pub struct Balancer {
    mode: ReadBalance,
    next: AtomicUsize,
    bound: Mutex<HashMap<Addr, usize>>,
}

impl Balancer {
    pub fn new(mode: ReadBalance) -> Balancer {
        Balancer {
            mode,
            next: AtomicUsize::new(0),
            bound: Mutex::new(HashMap::new()),
        }
    }

    pub fn pick(&self, replicas: &[Addr]) -> Option<Addr> {
        if replicas.is_empty() {
            return None;
        }
        match self.mode {
            ReadBalance::RoundRobin => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % replicas.len();
                Some(replicas[i].clone())
            }
            ReadBalance::LeastOutstanding => {
                let bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
                replicas
                    .iter()
                    .min_by_key(|r| bound.get(*r).copied().unwrap_or(0))
                    .cloned()
            }
        }
    }

    pub fn bind(&self, addr: &str) {
        *self
            .bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr.to_string())
            .or_default() += 1;
    }

    pub fn release(&self, addr: &str) {
        if let Some(n) = self
            .bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(addr)
        {
            *n = n.saturating_sub(1);
        }
    }
}

/// Reads what is there into `buf`'s spare room. A read that leaves room
/// drained the socket: its readiness is then cleared at once (as tokio's
/// `poll_read` does), rather than found stale by the next read, a recv that
/// only says EAGAIN. `try_io` takes the readiness before the read, so data
/// arriving after it is not missed.
pub(crate) fn read_draining(sock: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let mut drained = None;
    let r = sock.try_io(tokio::io::Interest::READABLE, || {
        let room = buf.spare_capacity_mut();
        let len = room.len();
        let n = socket2::SockRef::from(sock).recv(room)?;
        // SAFETY: recv initialised the first n bytes of the spare room.
        unsafe { buf.set_len(buf.len() + n) };
        if 0 < n && n < len {
            drained = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match drained {
        Some(n) => Ok(n),
        None => r,
    }
}
