//! One benchmark connection: keeps up to `pipeline` requests in flight,
//! optionally on an open-loop schedule, and reconnects with backoff when
//! the connection breaks, counting what was lost.

use crate::stats::{ErrorKind, Second, Shared, TypeStats, KINDS};
use crate::workload::Generator;
use bytes::{Buf, BytesMut};
use redis_ha_resp::parse::frame_len;
use redis_ha_resp::tls::{HandshakeError, Stream, Tls};
use redis_ha_resp::{ConnError, Connection, Frame};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Per-connection settings.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    pub addr: String,
    /// TLS client config, built once per run and shared by its connections.
    pub tls: Option<Arc<Tls>>,
    /// `PASSWORD` or `USER:PASSWORD`.
    pub auth: Option<String>,
    pub pipeline: usize,
    /// Requests per second for this connection (open loop); 0 = as fast as
    /// replies allow.
    pub rate: u64,
    /// Requests to send per connection; 0 = until `stop`.
    pub requests: u64,
    /// Reconnect after this many requests (memtier's meaning); 0 = never.
    pub reconnect_interval: u64,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff_max: Duration,
}

/// What a connection measured.
pub struct Totals {
    pub types: Vec<TypeStats>,
    pub sent: u64,
    pub replies: u64,
    pub errors: [u64; KINDS],
    /// Requests that never got a reply (lost with a broken connection).
    pub unanswered: u64,
    pub reconnects: u64,
}

struct Worker {
    cfg: ConnConfig,
    gen: Generator,
    shared: Arc<Shared>,
    t: Totals,
    /// (intended send time, template) of each request in flight.
    inflight: VecDeque<(Instant, u8)>,
    wbuf: Vec<u8>,
    rbuf: BytesMut,
    next_due: Instant,
    interval: Duration,
    sec: usize,
    second: Second,
    on_conn: u64,
}

enum Broken {
    /// The connection failed; requests in flight are lost.
    Io(ErrorKind, String),
    /// The run is over (or this connection sent all it should).
    Done,
    /// `--reconnect-interval` reached.
    Reconnect,
}

/// `AUTH PASSWORD` or, for `USER:PASSWORD`, `AUTH USER PASSWORD`.
pub fn auth_args(auth: &str) -> Vec<&str> {
    match auth.split_once(':') {
        Some((u, p)) => vec!["AUTH", u, p],
        None => vec!["AUTH", auth],
    }
}

/// Why [`open`] failed.
pub enum OpenError {
    /// TCP connect failed (refused, timed out): a reconnect may fix it.
    Connect(ConnError),
    /// The TLS handshake timed out or the connection broke during it.
    Handshake(ErrorKind, String),
    /// A TLS error a reconnect will not fix (certificate, CA, not a TLS
    /// port): the message says what to change.
    Tls(String),
}

/// Connects to `cfg.addr` and, with TLS, does the handshake; AUTH and the
/// rest are the caller's.
pub async fn open(cfg: &ConnConfig) -> Result<Connection<Stream>, OpenError> {
    let tcp = redis_ha_resp::conn::tcp(&cfg.addr, cfg.connect_timeout)
        .await
        .map_err(OpenError::Connect)?;
    let stream = match &cfg.tls {
        None => Stream::Plain(tcp),
        Some(tls) => match tls.connect(&cfg.addr, tcp, cfg.connect_timeout).await {
            Ok(s) => s,
            Err(HandshakeError::Refused(msg)) => return Err(OpenError::Tls(msg)),
            Err(HandshakeError::Broken(msg)) => {
                return Err(OpenError::Handshake(ErrorKind::Connection, msg))
            }
            Err(HandshakeError::Timeout(msg)) => {
                return Err(OpenError::Handshake(ErrorKind::Timeout, msg))
            }
        },
    };
    Ok(Connection::from_stream(
        stream,
        &cfg.addr,
        cfg.connect_timeout,
    ))
}

/// A TLS error in the first exchange after the handshake (TLS 1.3 reports a
/// refused client certificate only there), explained; `None` otherwise.
pub fn tls_refusal(cfg: &ConnConfig, e: &ConnError) -> Option<String> {
    match (e, &cfg.tls) {
        (ConnError::Io(io), Some(tls)) => tls.explain(&cfg.addr, io),
        _ => None,
    }
}

/// Runs connection `id` until the run stops or its requests are sent.
pub async fn run(
    id: usize,
    cfg: ConnConfig,
    gen: Generator,
    ntypes: usize,
    shared: Arc<Shared>,
) -> Totals {
    let interval = 1_000_000_000u64
        .checked_div(cfg.rate)
        .map(Duration::from_nanos)
        .unwrap_or(Duration::ZERO);
    // Spread the connections' schedules so their requests do not come in
    // synchronised bursts (which is what distorts memtier's percentiles).
    let phase = if cfg.rate > 0 {
        let n = interval.as_nanos() as u64;
        Duration::from_nanos((id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n.max(1))
    } else {
        Duration::ZERO
    };
    let mut w = Worker {
        gen,
        t: Totals {
            types: (0..ntypes).map(|_| TypeStats::new()).collect(),
            sent: 0,
            replies: 0,
            errors: [0; KINDS],
            unanswered: 0,
            reconnects: 0,
        },
        inflight: VecDeque::with_capacity(cfg.pipeline),
        wbuf: Vec::with_capacity(64 * 1024),
        rbuf: BytesMut::with_capacity(64 * 1024),
        next_due: shared.start + phase,
        interval,
        sec: 0,
        second: Second::new(),
        on_conn: 0,
        cfg,
        shared,
    };
    w.main().await;
    let sec = w.sec;
    w.shared.flush_second(sec, &w.second);
    w.t
}

impl Worker {
    fn more(&self) -> bool {
        !self.shared.stopped() && (self.cfg.requests == 0 || self.t.sent < self.cfg.requests)
    }

    async fn main(&mut self) {
        let mut backoff = Duration::from_millis(10);
        while self.more() {
            let stream = match self.connect().await {
                Ok(s) => s,
                Err((kind, msg)) => {
                    // A failed connect costs no request; it is counted as an
                    // error so that the outage shows up.
                    self.error(Instant::now(), kind, 0, msg.as_bytes());
                    self.pause(backoff).await;
                    backoff = (backoff * 2).min(self.cfg.backoff_max);
                    continue;
                }
            };
            self.on_conn = 0;
            match self.session(stream, &mut backoff).await {
                Broken::Done => break,
                Broken::Reconnect => {}
                Broken::Io(kind, msg) => {
                    let lost = self.inflight.len() as u64;
                    self.t.unanswered += lost;
                    let now = Instant::now();
                    for (_, ty) in self.inflight.drain(..) {
                        self.t.types[ty as usize].errors += 1;
                    }
                    self.error(now, kind, lost, msg.as_bytes());
                    self.rbuf.clear();
                    self.pause(backoff).await;
                    backoff = (backoff * 2).min(self.cfg.backoff_max);
                }
            }
            self.t.reconnects += 1;
            self.wbuf.clear();
        }
    }

    /// Sleeps, but wakes when the run stops.
    async fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.shared.stopped() {
            tokio::time::sleep(Duration::from_millis(10).min(end - Instant::now())).await;
        }
    }

    async fn connect(&mut self) -> Result<Stream, (ErrorKind, String)> {
        let kind = |e: &ConnError| match e {
            ConnError::Timeout(_) => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        };
        let mut c = match open(&self.cfg).await {
            Ok(c) => c,
            Err(OpenError::Connect(e)) => return Err((kind(&e), e.to_string())),
            Err(OpenError::Handshake(k, msg)) => return Err((k, msg)),
            Err(OpenError::Tls(msg)) => {
                // Retrying cannot fix a certificate: fail the run, like a
                // refused AUTH.
                self.shared.fail(msg.clone());
                return Err((ErrorKind::Other, msg));
            }
        };
        c.timeout = self.cfg.request_timeout;
        // With TLS, one round trip even without AUTH, so that a refused
        // client certificate shows here rather than as endless resets.
        let hello: Option<Vec<&str>> = match (&self.cfg.auth, &self.cfg.tls) {
            (Some(auth), _) => Some(auth_args(auth)),
            (None, Some(_)) => Some(vec!["PING"]),
            (None, None) => None,
        };
        if let Some(args) = hello {
            match c.request(&args).await {
                Ok(Frame::Error(e)) if args[0] == "AUTH" => {
                    let msg = String::from_utf8_lossy(&e).into_owned();
                    self.shared
                        .fail(format!("{}: AUTH refused: {msg}", self.cfg.addr));
                    return Err((ErrorKind::Other, msg));
                }
                // A -LOADING or such to PING: the requests will meet it too.
                Ok(_) => {}
                Err(e) => {
                    if let Some(msg) = tls_refusal(&self.cfg, &e) {
                        self.shared.fail(msg.clone());
                        return Err((ErrorKind::Other, msg));
                    }
                    return Err((kind(&e), e.to_string()));
                }
            }
        }
        Ok(c.into_stream())
    }

    async fn session(&mut self, mut s: Stream, backoff: &mut Duration) -> Broken {
        let mut answered_here = false;
        loop {
            // Fill the pipeline.
            let now = Instant::now();
            while self.inflight.len() < self.cfg.pipeline && self.more() {
                if self.cfg.reconnect_interval > 0 && self.on_conn >= self.cfg.reconnect_interval {
                    break;
                }
                let intended = if self.interval.is_zero() {
                    now
                } else if self.next_due <= now {
                    // Behind schedule: send now, but measure from when the
                    // request was due (no coordinated omission).
                    let due = self.next_due;
                    self.next_due += self.interval;
                    due
                } else {
                    break;
                };
                let (ty, n) = self.gen.next(&mut self.wbuf);
                self.t.types[ty as usize].bytes += n as u64;
                self.inflight.push_back((intended, ty));
                self.t.sent += 1;
                self.on_conn += 1;
            }
            if !self.wbuf.is_empty() {
                // flush: a no-op on TCP; TLS may hold back part of a record.
                let w = tokio::time::timeout(self.cfg.request_timeout, async {
                    s.write_all(&self.wbuf).await?;
                    s.flush().await
                });
                match w.await {
                    Ok(Ok(())) => self.wbuf.clear(),
                    Ok(Err(e)) => return Broken::Io(ErrorKind::Connection, e.to_string()),
                    Err(_) => return Broken::Io(ErrorKind::Timeout, "write timed out".into()),
                }
            }
            if self.inflight.is_empty() {
                if self.cfg.reconnect_interval > 0
                    && self.on_conn >= self.cfg.reconnect_interval
                    && self.more()
                {
                    return Broken::Reconnect;
                }
                if !self.more() {
                    return Broken::Done;
                }
                // Open loop: wait for the next due time (or the stop).
                let wait = self.next_due.saturating_duration_since(Instant::now());
                tokio::time::sleep(wait.min(Duration::from_millis(50))).await;
                continue;
            }
            // Read replies; with a rate limit, wake in time for the next send.
            let due = self.next_due;
            let rate_limited =
                !self.interval.is_zero() && self.inflight.len() < self.cfg.pipeline && self.more();
            let timeout = self.cfg.request_timeout;
            let rbuf = &mut self.rbuf;
            let read = async {
                tokio::select! {
                    r = s.read_buf(rbuf) => Some(r),
                    _ = tokio::time::sleep_until(due.into()), if rate_limited => None,
                }
            };
            match tokio::time::timeout(timeout, read).await {
                Err(_) => return Broken::Io(ErrorKind::Timeout, "reply timed out".into()),
                Ok(None) => continue,
                Ok(Some(Ok(0))) => {
                    return Broken::Io(ErrorKind::Connection, "connection closed by server".into())
                }
                Ok(Some(Err(e))) => return Broken::Io(ErrorKind::Connection, e.to_string()),
                Ok(Some(Ok(_))) => {}
            }
            let now = Instant::now();
            let mut ok = 0;
            loop {
                let n = match frame_len(&self.rbuf) {
                    Ok(Some(n)) => n,
                    Ok(None) => break,
                    Err(e) => {
                        return Broken::Io(ErrorKind::Other, format!("bad reply from server: {e}"))
                    }
                };
                let Some((intended, ty)) = self.inflight.pop_front() else {
                    return Broken::Io(ErrorKind::Other, "reply without a request".into());
                };
                self.t.replies += 1;
                let reply = &self.rbuf[..n];
                if reply[0] == b'-' || reply[0] == b'!' {
                    let msg = reply[1..]
                        .strip_suffix(b"\r\n")
                        .unwrap_or(&reply[1..])
                        .to_vec();
                    self.t.types[ty as usize].errors += 1;
                    self.error(now, ErrorKind::of_reply(&msg), 1, &msg);
                } else {
                    let us = now.saturating_duration_since(intended).as_micros() as u64;
                    let ts = &mut self.t.types[ty as usize];
                    ts.ops += 1;
                    ts.bytes += n as u64;
                    ts.hist.saturating_record(us.max(1));
                    if self.gen.counts_hits(ty) {
                        if reply == b"$-1\r\n" || reply == b"_\r\n" {
                            ts.misses += 1;
                        } else {
                            ts.hits += 1;
                        }
                    }
                    self.tick(now);
                    self.second.ops += 1;
                    self.second.hist.saturating_record(us.max(1));
                    ok += 1;
                }
                self.rbuf.advance(n);
            }
            if ok > 0 {
                self.shared.ok_at(now, ok);
                if !answered_here {
                    answered_here = true;
                    *backoff = Duration::from_millis(10);
                }
            }
        }
    }

    fn error(&mut self, t: Instant, kind: ErrorKind, n: u64, msg: &[u8]) {
        self.t.errors[kind as usize] += n.max(1);
        self.tick(t);
        self.second.errors[kind as usize] += n.max(1);
        self.shared.error_at(t, kind, n.max(1), Some(msg));
    }

    /// Moves to the second of `t`, flushing the finished one.
    fn tick(&mut self, t: Instant) {
        let sec = t.saturating_duration_since(self.shared.start).as_secs() as usize;
        if sec != self.sec {
            if !self.second.is_empty() {
                self.shared.flush_second(self.sec, &self.second);
                self.second.ops = 0;
                self.second.errors = [0; KINDS];
                self.second.hist.reset();
            }
            self.sec = sec;
        }
    }
}
