//! A session's way to its backend node: a dedicated connection of its own,
//! or one of the shared, multiplexed ones ([`crate::data::mux`]), with the
//! phase that says whether it may still carry new requests.

use super::state::ConnState;
use crate::data::backend_io::{self, DedicatedReader, DedicatedWriter};
use crate::data::handshake;
use crate::data::mux::{Inbox, MuxConn, Sender};
use bytes::BytesMut;
use redis_ha_resp::Access;
use redis_ha_topology::Addr;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Dedicated {
    pub r: DedicatedReader,
    w: DedicatedWriter,
    /// Replies read, not yet handled.
    pub buf: BytesMut,
}

pub enum Link {
    Dedicated(Dedicated),
    Shared(Arc<MuxConn>),
}

/// Whether the link takes new requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// Its node no longer serves this endpoint (a switch): nothing new is
    /// sent; replies to what was written are awaited until the deadline.
    Draining {
        until: Instant,
    },
    /// Replace it once every written request is answered (a RESET logged
    /// the connection out).
    ReplaceWhenIdle,
    /// The proxy drains with a blocked command on it: its write side is to
    /// be closed, which ends the call on Redis.
    Closing,
    /// Its write side is closed: its end closes the session, cleanly.
    HalfClosed,
}

pub struct Backend {
    pub addr: Addr,
    /// The routing epoch it was chosen in.
    pub epoch: u64,
    pub link: Link,
    pub phase: Phase,
}

/// Why requests could not be written.
pub enum SendError {
    /// The shared connection takes no more; nothing was written.
    Closed,
    /// The write failed; some of it may have reached the node.
    Failed(io::Error),
}

impl Backend {
    /// Opens a dedicated connection that carries the client's state.
    pub async fn dedicated(
        addr: &str,
        epoch: u64,
        state: &ConnState,
        access: &Access,
        timeout: Duration,
    ) -> io::Result<Backend> {
        let mut setup = BytesMut::new();
        let n = state.replay(access.login.as_ref(), &mut setup);
        let tls = access.tls.as_deref();
        let (stream, buf) = handshake::open(addr, tls, &setup, n, timeout).await?;
        let (r, w) = backend_io::dedicated(stream);
        Ok(Backend {
            addr: addr.to_string(),
            epoch,
            link: Link::Dedicated(Dedicated { r, w, buf }),
            phase: Phase::Open,
        })
    }

    pub fn shared(conn: Arc<MuxConn>, epoch: u64) -> Backend {
        Backend {
            addr: conn.addr.clone(),
            epoch,
            link: Link::Shared(conn),
            phase: Phase::Open,
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self.link, Link::Shared(_))
    }

    /// Queues requests straight into the shared connection's buffer (no
    /// copy in between); `None` if it takes no more. Their replies arrive
    /// in `inbox`, tagged `gen`.
    pub fn sender<'a>(&'a self, inbox: &'a Arc<Inbox>, gen: u64) -> Option<Sender<'a>> {
        match &self.link {
            Link::Shared(conn) => conn.sender(inbox, gen),
            Link::Dedicated(_) => None,
        }
    }

    /// Closes the dedicated connection's write side (TLS: close_notify).
    pub async fn shutdown_write(&mut self) {
        if let Link::Dedicated(d) = &mut self.link {
            let _ = d.w.shutdown().await;
        }
    }

    /// Writes a batch to the dedicated connection.
    pub async fn write(&mut self, batch: &[u8]) -> Result<(), SendError> {
        match &mut self.link {
            Link::Dedicated(d) => d.w.write_all(batch).await.map_err(SendError::Failed),
            Link::Shared(_) => Err(SendError::Closed),
        }
    }
}
