//! The data path: accepts clients on an endpoint and runs one [`Session`]
//! per connection, over a dedicated or a shared ([`mux`]) backend
//! connection. It reads the routing table and reports trouble back through
//! [`RouteHandle::refresh`]; it never talks to Sentinel.

mod accept;
pub mod ack;
mod backend_io;
mod big;
pub mod budget;
mod bufpool;
mod commands;
pub mod deny;
pub mod drain;
pub mod error;
mod handshake;
pub mod mux;
pub mod policy;
#[rustfmt::skip]
pub mod table;
mod session;
pub mod tls;

pub use accept::{client_slots as accept_slots, serve, ClientSlots};
pub use commands::{classify, lookup, Class, Effect, Kind};
pub use error::{ClientError, ErrorKind};
pub use session::{Session, REJOIN};

use crate::config::ProxyConfig;
use crate::metrics::Metrics;
use crate::route::{Endpoint, RouteHandle};
use bytes::BytesMut;
use redis_ha_resp::Limits;
use std::io;
use std::sync::Arc;

/// What every session of a proxy shares.
pub struct Shared {
    pub routes: RouteHandle,
    pub metrics: Arc<Metrics>,
    pub cfg: Arc<ProxyConfig>,
    pub limits: Limits,
    /// Where each endpoint's requests go.
    pub write: policy::Policy,
    pub read: policy::Policy,
    /// Shared backend connections (used in multiplex mode only).
    pub pool: Arc<mux::Pool>,
    /// Commands refused at the proxy (`--deny-commands`).
    pub deny: deny::DenyList,
    /// Shutting down: sessions finish what they forwarded and close.
    pub drain: Arc<drain::Drain>,
    /// Reply bytes held for clients over all sessions (`--client-output-total`).
    pub held: budget::Total,
}

impl Shared {
    pub fn policy(&self, ep: Endpoint) -> &policy::Policy {
        match ep {
            Endpoint::write => &self.write,
            Endpoint::read => &self.read,
        }
    }
}

/// Reads what is there into `buf`'s spare room. A read that leaves room
/// drained the socket: its readiness is then cleared at once (as tokio's
/// `poll_read` does), rather than found stale by the next read, a recv that
/// only says EAGAIN. `try_io` takes the readiness before the read, so data
/// arriving after it is not missed.
pub(crate) fn read_draining<S: backend_io::TryIo>(
    sock: &S,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    let mut drained = None;
    let r = sock.try_read_io(|| {
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
