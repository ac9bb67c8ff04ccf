//! A backend connection's socket, plain TCP or TLS (`--backend-tls`), in
//! the two shapes the data path drives it.
//!
//! Dedicated connections read and write through async halves: plain TCP
//! split, TLS through `tokio::io::split`. Shared connections keep their
//! zero-wait socket code (`try_write`, readiness, a draining `recv`) on one
//! path for both: over TLS they get one end of a Unix socket pair whose
//! other end a relay task copies to and from the TLS stream. That costs a
//! hop in the kernel per batch (measured in benchmarks/TLS.md) and keeps
//! what "written to the socket" means for the replay rule conservative:
//! bytes the relay holds count as written, so they are never re-sent.

use bytes::BytesMut;
use redis_ha_resp::tls::Stream;
use std::io;
use std::os::fd::AsFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::AbortHandle;

type Tls = Box<tokio_rustls::client::TlsStream<TcpStream>>;

/// A socket whose readiness can be taken with `try_io` (TCP and Unix).
pub trait TryIo: AsFd {
    fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

impl TryIo for TcpStream {
    fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::READABLE, f)
    }
}

impl TryIo for UnixStream {
    fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::READABLE, f)
    }
}

/// The read half of a dedicated connection.
pub enum DedicatedReader {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<Tls>),
}

/// The write half of a dedicated connection.
pub enum DedicatedWriter {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<Tls>),
}

/// Both halves of a dedicated connection.
pub fn dedicated(stream: Stream) -> (DedicatedReader, DedicatedWriter) {
    match stream {
        Stream::Plain(s) => {
            let (r, w) = s.into_split();
            (DedicatedReader::Plain(r), DedicatedWriter::Plain(w))
        }
        Stream::Tls(s) => {
            let (r, w) = tokio::io::split(s);
            (DedicatedReader::Tls(r), DedicatedWriter::Tls(w))
        }
    }
}

impl DedicatedReader {
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            DedicatedReader::Plain(r) => r.read_buf(buf).await,
            DedicatedReader::Tls(r) => r.read_buf(buf).await,
        }
    }
}

impl DedicatedWriter {
    /// Closes the write side (TLS: close_notify first).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            DedicatedWriter::Plain(w) => w.shutdown().await,
            DedicatedWriter::Tls(w) => w.shutdown().await,
        }
    }

    /// Writes `buf` whole (TLS: and flushes its records to the socket).
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            DedicatedWriter::Plain(w) => w.write_all(buf).await,
            DedicatedWriter::Tls(w) => {
                w.write_all(buf).await?;
                w.flush().await
            }
        }
    }
}

/// A shared connection's socket: the TCP one, or the proxy's end of the
/// relay to a TLS stream.
pub enum MuxSock {
    Tcp(TcpStream),
    Relay {
        sock: UnixStream,
        relay: AbortHandle,
    },
}

impl MuxSock {
    /// The socket for `stream`; a TLS stream gets its relay task.
    pub fn new(stream: Stream) -> io::Result<MuxSock> {
        match stream {
            Stream::Plain(s) => Ok(MuxSock::Tcp(s)),
            Stream::Tls(mut tls) => {
                let (ours, mut theirs) = UnixStream::pair()?;
                let task = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut theirs, &mut tls).await;
                });
                Ok(MuxSock::Relay {
                    sock: ours,
                    relay: task.abort_handle(),
                })
            }
        }
    }

    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MuxSock::Tcp(s) => s.try_write(buf),
            MuxSock::Relay { sock, .. } => sock.try_write(buf),
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            MuxSock::Tcp(s) => s.writable().await,
            MuxSock::Relay { sock, .. } => sock.writable().await,
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            MuxSock::Tcp(s) => s.readable().await,
            MuxSock::Relay { sock, .. } => sock.readable().await,
        }
    }

    /// [`super::read_draining`] on whichever socket it is.
    pub fn read_draining(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            MuxSock::Tcp(s) => super::read_draining(s, buf),
            MuxSock::Relay { sock, .. } => super::read_draining(sock, buf),
        }
    }

    /// Closes it both ways at once; the relay is stopped too, so nothing it
    /// still holds reaches the node.
    pub fn close(&self) {
        let _ = match self {
            MuxSock::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
            MuxSock::Relay { sock, relay } => {
                relay.abort();
                socket2::SockRef::from(sock).shutdown(std::net::Shutdown::Both)
            }
        };
    }
}

impl Drop for MuxSock {
    fn drop(&mut self) {
        if let MuxSock::Relay { relay, .. } = self {
            relay.abort();
        }
    }
}
