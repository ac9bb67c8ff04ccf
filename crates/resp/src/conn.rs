//! A small async RESP connection for the control plane (Sentinel queries,
//! health checks, tests). The proxy's data path does not use it.
//!
//! It runs over plain TCP, or TLS when the [`Credentials`] it is opened
//! with carry a [`crate::tls::Tls`]; any other stream goes in through
//! [`Connection::from_stream`].

use crate::frame::Frame;
use crate::login::Credentials;
use crate::parse::{parse_frame, ProtocolError};
use crate::tls::{HandshakeError, Stream, Tls};
use bytes::BytesMut;
use std::sync::Arc;
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
    #[error("{0}")]
    Tls(HandshakeError),
}

pub struct Connection<S = Stream> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    addr: String,
    /// Applied to connect and to each request/reply round trip.
    pub timeout: Duration,
    /// The TLS it runs over, to explain a refusal that TLS 1.3 reports only
    /// after the handshake (a missing client certificate).
    tls: Option<Arc<Tls>>,
}

/// A TCP connection to `host:port` (hostnames are resolved), with a timeout.
pub async fn tcp(addr: &str, timeout: Duration) -> Result<TcpStream, ConnError> {
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
    Ok(stream)
}

impl Connection<Stream> {
    /// Connects to `host:port` over plain TCP, with a timeout.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection, ConnError> {
        let stream = tcp(addr, timeout).await?;
        Ok(Connection::from_stream(
            Stream::Plain(stream),
            addr,
            timeout,
        ))
    }

    /// Connects (over TLS when `login` carries it), then AUTH when it has a
    /// login: a bare password (the default user), a [`crate::Login`] or an
    /// [`crate::Access`].
    pub async fn connect_auth<L: Credentials + ?Sized>(
        addr: &str,
        login: Option<&L>,
        timeout: Duration,
    ) -> Result<Connection, ConnError> {
        let tcp = tcp(addr, timeout).await?;
        let stream = match login.and_then(|l| l.tls()) {
            Some(tls) => tls
                .connect(addr, tcp, timeout)
                .await
                .map_err(ConnError::Tls)?,
            None => Stream::Plain(tcp),
        };
        let mut c = Connection::from_stream(stream, addr, timeout);
        c.tls = login.and_then(|l| l.tls()).cloned();
        let auth = login.map(|l| l.auth_args()).unwrap_or_default();
        if !auth.is_empty() {
            c.request_ok(&auth).await?;
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
            tls: None,
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
            Ok(Err(ConnError::Io(e))) => Err(self.explained(e)),
            Ok(r) => r,
            Err(_) => Err(ConnError::Timeout(t)),
        }
    }

    /// An I/O error, or the TLS refusal it is, explained.
    fn explained(&self, e: std::io::Error) -> ConnError {
        match self.tls.as_ref().and_then(|t| t.explain(&self.addr, &e)) {
            Some(msg) => ConnError::Tls(HandshakeError::Refused(msg)),
            None => ConnError::Io(e),
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
