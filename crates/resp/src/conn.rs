//! A small async RESP connection for the control plane (Sentinel queries,
//! health checks, tests). The proxy's data path does not use it.
//!
//! It runs over plain TCP by default; any other stream (e.g. TLS, set up by
//! the caller over the socket from [`Connection::connect`]) goes in through
//! [`Connection::from_stream`].

use crate::frame::Frame;
use crate::login::Credentials;
use crate::parse::{parse_frame, ProtocolError};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection closed by peer")]
    Closed,
    #[error("{0}")]
    Server(String),
}

pub struct Connection<S = TcpStream> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    addr: String,
    /// Applied to connect and to each request/reply round trip.
    pub timeout: Duration,
}

impl Connection<TcpStream> {
    /// Connects to `host:port` (hostnames are resolved), with a timeout.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection, ConnError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ConnError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => return Err(ConnError::Timeout(timeout)),
        };
        stream.set_nodelay(true)?;
        Ok(Connection::from_stream(stream, addr, timeout))
    }

    /// [`Connection::connect`], then AUTH with `login` when one is given:
    /// a bare password (the default user) or a [`crate::Login`].
    pub async fn connect_auth<L: Credentials + ?Sized>(
        addr: &str,
        login: Option<&L>,
        timeout: Duration,
    ) -> Result<Connection, ConnError> {
        let mut c = Connection::connect(addr, timeout).await?;
        if let Some(l) = login {
            c.request_ok(&l.auth_args()).await?;
        }
        Ok(c)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream that is already connected to `addr` (used in errors).
    pub fn from_stream(stream: S, addr: &str, timeout: Duration) -> Connection<S> {
        Connection {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::new(),
            addr: addr.to_string(),
            timeout,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The stream, for a caller that did its handshake (AUTH, HELLO) here and
    /// drives the protocol itself from now on. Replies not yet read are lost,
    /// so call it only after every request has had its reply.
    pub fn into_stream(self) -> S {
        debug_assert!(self.rbuf.is_empty(), "unread replies");
        self.stream
    }

    /// Sends a command without waiting for a reply (pipelining, SUBSCRIBE).
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), ConnError> {
        self.wbuf.clear();
        crate::encode::command(args, &mut self.wbuf);
        self.stream.write_all(&self.wbuf).await?;
        // A no-op on TCP; TLS may hold back part of a record until flushed.
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads the next frame, waiting as long as it takes (pub/sub).
    pub async fn read_frame(&mut self) -> Result<Frame, ConnError> {
        loop {
            if let Some(f) = parse_frame(&mut self.rbuf)? {
                return Ok(f);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(ConnError::Closed);
            }
        }
    }

    /// Sends a command and returns its reply; a server error is returned as
    /// `Ok(Frame::Error)` so the caller can decide.
    pub async fn request<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, ConnError> {
        let t = self.timeout;
        match tokio::time::timeout(t, async {
            self.send(args).await?;
            self.read_frame().await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ConnError::Timeout(t)),
        }
    }

    /// Like [`request`](Self::request) but turns a server error into `Err`.
    pub async fn request_ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, ConnError> {
        match self.request(args).await? {
            Frame::Error(e) => Err(ConnError::Server(String::from_utf8_lossy(&e).into_owned())),
            f => Ok(f),
        }
    }
}

/// One-shot helper: connect, run one command, return the reply.
pub async fn query<A: AsRef<[u8]>>(
    addr: &str,
    args: &[A],
    timeout: Duration,
) -> Result<Frame, ConnError> {
    query_auth::<_, str>(addr, None, args, timeout).await
}

/// [`query`] on a node that requires a login (see [`Connection::connect_auth`]).
pub async fn query_auth<A: AsRef<[u8]>, L: Credentials + ?Sized>(
    addr: &str,
    login: Option<&L>,
    args: &[A],
    timeout: Duration,
) -> Result<Frame, ConnError> {
    let mut c = Connection::connect_auth(addr, login, timeout).await?;
    c.request_ok(args).await
}
