//! The client's socket, plain TCP or TLS, behind the three operations the
//! session needs: read what is there, write what the client takes now
//! without waiting, and wait until writing can make progress.
//!
//! Plain TCP keeps the zero-wait path (`try_write`, a draining `recv`). TLS
//! polls the rustls stream's write with a no-op waker for the same "now or
//! WouldBlock" answer, and remembers when records are left unflushed so the
//! session keeps waiting on writability until they are out.

use super::room;
use crate::data::bufpool;
use bytes::BytesMut;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

type Tls = TlsStream<TcpStream>;

/// The read half.
pub enum ClientReader {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<Tls>),
}

/// The write half; `unflushed`: TLS records written to rustls, not yet to the socket.
pub enum ClientWriter {
    Plain(OwnedWriteHalf),
    Tls { w: WriteHalf<Tls>, unflushed: bool },
}

/// Both halves of a plain client connection.
pub fn plain(sock: TcpStream) -> (ClientReader, ClientWriter) {
    let (r, w) = sock.into_split();
    (ClientReader::Plain(r), ClientWriter::Plain(w))
}

/// Both halves of a client connection after its TLS handshake.
pub fn tls(stream: Tls) -> (ClientReader, ClientWriter) {
    let (r, w) = tokio::io::split(stream);
    (
        ClientReader::Tls(r),
        ClientWriter::Tls {
            w,
            unflushed: false,
        },
    )
}

impl ClientReader {
    /// Reads what the client sent; a buffer only once there is something.
    pub async fn read(&mut self, cbuf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ClientReader::Plain(r) => read_plain(r, cbuf).await,
            ClientReader::Tls(r) => {
                room(bufpool::held(cbuf));
                r.read_buf(cbuf).await
            }
        }
    }
}

async fn read_plain(cr: &mut OwnedReadHalf, cbuf: &mut BytesMut) -> io::Result<usize> {
    loop {
        cr.readable().await?;
        room(bufpool::held(cbuf));
        match crate::data::read_draining(cr.as_ref(), cbuf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Looked readable, had nothing (a fresh socket does).
                if cbuf.is_empty() {
                    bufpool::give(cbuf);
                }
            }
            r => return r,
        }
    }
}

impl ClientWriter {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientWriter::Plain(w) => w.try_write(buf),
            ClientWriter::Tls { w, unflushed } => {
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(&mut *w).poll_write(&mut cx, buf) {
                    Poll::Ready(Ok(n)) => {
                        *unflushed =
                            !matches!(Pin::new(w).poll_flush(&mut cx), Poll::Ready(Ok(())));
                        Ok(n)
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => {
                        *unflushed = true;
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                }
            }
        }
    }

    /// Whether there is output below the session's own buffer (TLS records).
    pub fn has_unflushed(&self) -> bool {
        matches!(
            self,
            ClientWriter::Tls {
                unflushed: true,
                ..
            }
        )
    }

    /// Waits until writing can make progress (TLS: flushes pending records).
    pub async fn ready(&mut self) -> io::Result<()> {
        match self {
            ClientWriter::Plain(w) => w.writable().await,
            ClientWriter::Tls { w, unflushed } => {
                w.flush().await?;
                *unflushed = false;
                Ok(())
            }
        }
    }

    /// Writes `buf` whole (the last replies before closing).
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            ClientWriter::Plain(w) => w.write_all(buf).await,
            ClientWriter::Tls { w, .. } => {
                w.write_all(buf).await?;
                w.flush().await
            }
        }
    }

    /// Closes the write side (TLS: close_notify first).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ClientWriter::Plain(w) => w.shutdown().await,
            ClientWriter::Tls { w, .. } => w.shutdown().await,
        }
    }
}
