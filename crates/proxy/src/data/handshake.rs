//! Opening a backend connection: connect, the TLS handshake with
//! `--backend-tls`, send the setup commands (login, HELLO, SELECT, names),
//! and wait for every reply, all within one deadline. Dedicated and shared
//! connections both open this way.

use bytes::BytesMut;
use redis_ha_resp::parse::frame_len;
use redis_ha_resp::tls::{Stream, Tls};
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects to `addr` (over TLS with `tls`) and runs the `n` commands
/// encoded in `setup`. Returns the stream and whatever was read past the
/// setup replies.
pub async fn open(
    addr: &str,
    tls: Option<&Tls>,
    setup: &[u8],
    n: usize,
    timeout: Duration,
) -> io::Result<(Stream, BytesMut)> {
    let deadline = Instant::now() + timeout;
    let timed_out =
        |what: &str| io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"));
    let tcp = tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connect"))??;
    tcp.set_nodelay(true)?;
    let mut sock = match tls {
        None => Stream::Plain(tcp),
        Some(t) => t
            .connect(
                addr,
                tcp,
                deadline.saturating_duration_since(Instant::now()),
            )
            .await
            .map_err(|e| io::Error::other(e.to_string()))?,
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    if n == 0 {
        return Ok((sock, buf));
    }
    sock.write_all(setup).await?;
    sock.flush().await?; // TLS: the records out now
    let mut got = 0;
    loop {
        while got < n {
            let Some(len) = frame_len(&buf).map_err(io::Error::other)? else {
                break;
            };
            let reply = buf.split_to(len);
            if reply.first() == Some(&b'-') {
                return Err(io::Error::other(format!(
                    "setting up the connection to {addr} failed: {}",
                    String::from_utf8_lossy(&reply).trim_end()
                )));
            }
            got += 1;
        }
        if got == n {
            return Ok((sock, buf));
        }
        let read = tokio::time::timeout_at(deadline.into(), sock.read_buf(&mut buf))
            .await
            .map_err(|_| timed_out("connection setup"))?
            .map_err(|e| explained(tls, addr, e))?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the connection setup",
            ));
        }
    }
}

/// A read error, or the TLS refusal it is (TLS 1.3 reports a refused
/// client certificate only after the handshake), explained.
fn explained(tls: Option<&Tls>, addr: &str, e: io::Error) -> io::Error {
    match tls.and_then(|t| t.explain(addr, &e)) {
        Some(msg) => io::Error::other(msg),
        None => e,
    }
}
