//! One client connection: reads its requests, sends them to the backend the
//! routing table names, and writes the replies back in request order.
//!
//! The decisions live beside this driver, without sockets: [`pipeline`]
//! (each request's slot and outcome), [`replay`] (what may be sent again),
//! [`state`] (what follows the client to a new connection), [`login`],
//! [`hold`] (waiting for a master) and [`link`] (the backend connection).
//! The driver is a `select!` loop over the client, the backend, routing
//! changes and one timer, with one short step per event.
//!
//! In multiplex mode stateless commands go over shared connections; a
//! stateful one (MULTI, SELECT, SUBSCRIBE, a blocking command...) first
//! waits for every earlier reply, then moves the client to a dedicated
//! connection, until its state is a fresh connection's again and it has
//! sent nothing stateful for [`REJOIN`].
//!
//! Failover: with no master, requests wait (the hold). When the master
//! changes, nothing new goes to the old one; replies to what was written
//! to it are still taken for a moment (a demoted master answers, or refuses
//! with READONLY, which means not run). What was never written, was refused
//! that way, or only reads, goes to the new master; a write whose
//! connection was lost is answered with an unknown-outcome error, never
//! sent twice.
//!
//! Backpressure: the client's replies not yet written are bounded; past
//! [`SOFT_OUTPUT`] (or [`MAX_PENDING`] unanswered requests) nothing more is
//! read from it, and past `--client-output-limit` it is closed, as Redis
//! does.

mod hold;
mod link;
mod login;
mod pipeline;
mod replay;
mod state;

use self::hold::{Hold, Next};
use self::link::{Backend, Link, Phase, SendError};
use self::login::{Gate, Login};
use self::pipeline::{After, Pipeline, Slot};
use self::replay::{Loss, Verdict};
use self::state::{ConnState, Replies};
use super::bufpool;
use super::commands::{Class, Effect, Kind, LastClass};
use super::error::{ClientError, ErrorKind};
use super::mux::{Inbox, Reply};
use super::Shared;
use crate::config::{ConnMode, ReadFallback};
use crate::metrics::Endpoint;
use crate::route::{Refresh, Routes};
use bytes::{Buf, Bytes, BytesMut};
use redis_ha_resp::parse::{frame_len, parse_command};
use redis_ha_resp::Command;
use redis_ha_topology::Addr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long a session on a dedicated connection (multiplex mode) must go
/// without a stateful command before it returns to the shared ones.
pub const REJOIN: Duration = Duration::from_secs(1);

/// Replies waiting for a slow client past which nothing more is read from it.
pub const SOFT_OUTPUT: usize = 256 * 1024;

/// Unanswered requests past which nothing more is read from a client.
pub const MAX_PENDING: usize = 1024;

/// The output limit for a subscriber (Redis's pubsub class hard limit).
const STREAM_OUTPUT: usize = 32 << 20;

/// How long a draining backend link may take to answer what it was sent.
const DRAIN: Duration = super::mux::DRAIN;

/// A node not to send to for now.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Avoid {
    /// It answered READONLY: not until the routing table moves on.
    ReadOnly { addr: Addr, epoch: u64 },
    /// The link to it was just lost: not before `until`. A node killed -9
    /// still completes connections for a moment (the kernel's accept
    /// queue) and then resets them: a request sent there would be lost with
    /// an unknown outcome although it never ran.
    Lost { addr: Addr, until: Instant },
}

/// How long a session waits before reconnecting to a node whose link it lost.
const COOLDOWN: Duration = Duration::from_millis(100);

impl Avoid {
    /// Whether `addr` is to be avoided now, at routing `epoch`.
    fn blocks(&self, addr: &Addr, epoch: u64, now: Instant) -> bool {
        match self {
            Avoid::ReadOnly { addr: a, epoch: e } => a == addr && *e == epoch,
            Avoid::Lost { addr: a, until } => a == addr && now < *until,
        }
    }
}

/// Whether, and how, the client's side is still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Open,
    /// QUIT (or a protocol error) read: nothing more is read.
    Quit,
    /// The client shut its write side: answer what came, then close.
    Eof,
    /// Close once what is in the output buffer is written.
    Closing,
}

/// Which kind of backend connection the session uses (multiplex mode can
/// move between them; dedicated mode stays dedicated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    Shared,
    /// `since`: the last stateful command sent (for [`REJOIN`]).
    Dedicated {
        since: Option<Instant>,
    },
}

enum Wake {
    Client(std::io::Result<usize>),
    Writable(std::io::Result<()>),
    Backend(std::io::Result<usize>),
    Mux,
    Routes,
    Timer,
    Shutdown,
}

pub struct Session {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    cr: OwnedReadHalf,
    cw: OwnedWriteHalf,
    /// Bytes read from the client, not yet parsed.
    cbuf: BytesMut,
    /// Replies for the client, not yet written.
    out: BytesMut,
    input: Input,
    login: Login,
    lane: Lane,
    pipeline: Pipeline,
    state: ConnState,
    backend: Option<Backend>,
    inbox: Arc<Inbox>,
    /// Bumped when a shared link is dropped, so late replies on it are ignored.
    gen: u64,
    replies: VecDeque<(u64, Reply)>,
    routes_rx: watch::Receiver<Arc<Routes>>,
    routes: Arc<Routes>,
    last_class: LastClass,
    batch: BytesMut,
    hold: Hold,
    avoid: Option<Avoid>,
    retry_at: Option<Instant>,
    last_input: Instant,
}

/// Makes room to read into, growing the buffer only when it runs low. A
/// small (pooled) buffer first grows back to 4 KiB.
fn room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(if buf.capacity() < 4096 {
            4096
        } else {
            16 * 1024
        });
    }
}

/// Redis closes a connection whose first words look like HTTP (a
/// cross-protocol attack); so does the proxy, before any backend sees it.
fn looks_like_http(cmd: &Command) -> bool {
    cmd.is("POST") || cmd.is("HOST:")
}

impl Session {
    pub fn new(sock: TcpStream, endpoint: Endpoint, shared: Arc<Shared>) -> Session {
        let (cr, cw) = sock.into_split();
        let lane = match shared.cfg.mode {
            ConnMode::Multiplex => Lane::Shared,
            ConnMode::Dedicated => Lane::Dedicated { since: None },
        };
        let mut routes_rx = shared.routes.routes.clone();
        let routes = routes_rx.borrow_and_update().clone();
        let login = if shared.cfg.clients_log_in() {
            Login::Required
        } else {
            Login::Done
        };
        Session {
            endpoint,
            shared,
            cr,
            cw,
            // Allocated on first use: an idle connection costs little.
            cbuf: BytesMut::new(),
            out: BytesMut::new(),
            input: Input::Open,
            login,
            lane,
            pipeline: Pipeline::default(),
            state: ConnState::default(),
            backend: None,
            inbox: Arc::default(),
            gen: 0,
            replies: VecDeque::new(),
            routes_rx,
            routes,
            last_class: LastClass::default(),
            batch: BytesMut::new(),
            hold: Hold::Off,
            avoid: None,
            retry_at: None,
            last_input: Instant::now(),
        }
    }

    pub async fn run(mut self) {
        let m = self.shared.metrics.ep(self.endpoint).clone();
        m.client_connections.inc();
        m.client_connections_total.inc();
        if let Err(e) = self.serve().await {
            tracing::debug!(error = %e, "client session ended");
        }
        self.drop_backend();
        m.client_connections.dec();
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        loop {
            self.step().await;
            self.write_out()?;
            if self.finished() {
                return self.close().await;
            }
            if self.out.len() > self.output_limit() {
                return self.over_output_limit();
            }
            self.release_idle_buffers();
            let wake = self.wait().await;
            self.on_wake(wake)?;
        }
    }

    /// Everything that can move without waiting: a login answered lets
    /// reading resume, queued requests go out, ready replies are collected.
    async fn step(&mut self) {
        if self.login == Login::Waiting && !self.pipeline.login_pending() {
            self.login = if self.state.auth.is_some() || self.state.hello.is_some() {
                Login::Done
            } else {
                Login::Required
            };
            self.on_client_data();
        }
        self.dispatch().await;
        if self.pipeline.flush(bufpool::held(&mut self.out)) == After::Close {
            self.input = Input::Closing;
        }
    }

    /// Writes what the client will take now, without waiting.
    fn write_out(&mut self) -> std::io::Result<()> {
        while !self.out.is_empty() {
            match self.cw.try_write(&self.out) {
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        match self.input {
            Input::Closing => true,
            Input::Eof => self.pipeline.is_empty() || self.state.replies == Replies::Streamed,
            Input::Open | Input::Quit => false,
        }
    }

    /// Writes the last replies (briefly: a client that does not read them
    /// is not waited for) and closes.
    async fn close(&mut self) -> std::io::Result<()> {
        let last = tokio::time::timeout(Duration::from_secs(1), self.cw.write_all(&self.out));
        let _ = last.await;
        let _ = self.cw.shutdown().await;
        Ok(())
    }

    fn output_limit(&self) -> usize {
        let hard = self.shared.cfg.client_output_limit;
        match self.state.replies {
            Replies::Streamed => hard.min(STREAM_OUTPUT),
            Replies::Paired => hard,
        }
    }

    fn over_output_limit(&mut self) -> std::io::Result<()> {
        tracing::warn!(
            pending = self.out.len(),
            limit = self.output_limit(),
            "closing a client that does not read its replies (--client-output-limit)"
        );
        self.error_kind(ErrorKind::OutputLimit);
        Ok(())
    }

    /// Idle: hold no buffers until the client sends again.
    fn release_idle_buffers(&mut self) {
        if self.pipeline.is_empty() && self.out.is_empty() {
            bufpool::give(&mut self.out);
            if self.cbuf.is_empty() {
                bufpool::give(&mut self.cbuf);
            }
        }
    }

    /// Reads the client while it may send more: logged in or not waiting
    /// for a login's answer, and not too far behind on its replies.
    fn wants_input(&self) -> bool {
        self.input == Input::Open
            && self.login != Login::Waiting
            && self.out.len() < SOFT_OUTPUT
            && self.pipeline.len() < MAX_PENDING
    }

    async fn wait(&mut self) -> Wake {
        let timer = self.next_timer();
        // On shared connections a switch shows as a retired connection; the
        // routing table only matters while requests wait for a backend.
        let watch_routes = !matches!(self.lane, Lane::Shared) || self.pipeline.queued() > 0;
        let reading = self.wants_input();
        let writing = !self.out.is_empty();
        let (cr, cbuf, cw) = (&mut self.cr, &mut self.cbuf, &self.cw);
        let (backend, inbox, routes) = (&mut self.backend, &self.inbox, &mut self.routes_rx);
        tokio::select! {
            biased;
            _ = std::future::poll_fn(|cx| inbox.poll_ready(cx)) => Wake::Mux,
            r = async {
                match backend.as_mut().map(|b| &mut b.link) {
                    Some(Link::Dedicated(d)) => { room(&mut d.buf); d.r.read_buf(&mut d.buf).await }
                    _ => std::future::pending().await,
                }
            } => Wake::Backend(r),
            r = cw.writable(), if writing => Wake::Writable(r),
            r = read_client(cr, cbuf), if reading => Wake::Client(r),
            r = routes.changed(), if watch_routes => match r {
                Ok(()) => Wake::Routes,
                Err(_) => Wake::Shutdown,
            },
            _ = sleep_until(timer) => Wake::Timer,
        }
    }

    fn on_wake(&mut self, wake: Wake) -> std::io::Result<()> {
        match wake {
            Wake::Client(Ok(0)) => self.on_client_eof(),
            Wake::Client(Ok(_)) => {
                self.last_input = Instant::now();
                self.on_client_data();
            }
            Wake::Client(Err(e)) | Wake::Writable(Err(e)) => return Err(e),
            Wake::Writable(Ok(())) => {}
            Wake::Backend(Ok(0)) => self.backend_lost("closed the connection"),
            Wake::Backend(Err(e)) => self.backend_lost(&e.to_string()),
            Wake::Backend(Ok(_)) => self.on_backend_data(),
            Wake::Mux => self.on_mux_replies(),
            Wake::Routes => {
                self.routes = self.routes_rx.borrow_and_update().clone();
                self.on_routes();
            }
            Wake::Timer => self.on_timer(),
            Wake::Shutdown => self.input = Input::Closing,
        }
        Ok(())
    }

    fn next_timer(&self) -> Option<Instant> {
        let drain = match self.backend.as_ref().map(|b| b.phase) {
            Some(Phase::Draining { until }) => Some(until),
            _ => None,
        };
        let idle = self.idle_deadline();
        [self.retry_at, drain, idle].into_iter().flatten().min()
    }

    /// `--timeout`: when an idle client is closed (never a subscriber).
    fn idle_deadline(&self) -> Option<Instant> {
        let t = self.shared.cfg.idle_timeout;
        let idle = self.pipeline.is_empty() && self.state.replies == Replies::Paired;
        (!t.is_zero() && idle).then(|| self.last_input + t)
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.idle_deadline().is_some_and(|t| t <= now) {
            tracing::debug!("closing an idle client (--timeout)");
            self.input = Input::Closing;
        }
        if let Some(Phase::Draining { until }) = self.backend.as_ref().map(|b| b.phase) {
            if until <= now {
                self.backend_lost("no reply from the old node after the switch");
            }
        }
        // dispatch() in the next step retries or fails held requests.
    }

    fn on_client_eof(&mut self) {
        self.input = match self.input {
            // A subscriber that leaves: its subscriptions go with the link.
            _ if self.state.replies == Replies::Streamed => Input::Closing,
            Input::Closing => Input::Closing,
            _ => Input::Eof,
        };
    }

    fn on_client_data(&mut self) {
        let shared = self.shared.clone();
        let mut n = 0u64;
        while self.input == Input::Open && self.login != Login::Waiting {
            match parse_command(&mut self.cbuf, &shared.limits) {
                Ok(Some(cmd)) => {
                    n += 1;
                    self.accept(cmd);
                }
                Ok(None) => break,
                Err(e) => {
                    self.answer_local(ClientError::Protocol(e.to_string()), After::Close);
                    self.input = Input::Quit;
                }
            }
        }
        if n > 0 {
            self.shared.metrics.ep(self.endpoint).commands.inc_by(n);
        }
    }

    fn accept(&mut self, cmd: Command) {
        let class = self.last_class.classify(&cmd);
        if looks_like_http(&cmd) {
            tracing::warn!("closing a client that sent HTTP to a Redis port");
            self.error_kind(ErrorKind::Protocol);
            self.input = Input::Closing;
            return;
        }
        if class.kind == Kind::Quit {
            return self.accept_quit(cmd, class);
        }
        if self.login == Login::Required {
            match login::gate(self.shared.cfg.password.as_deref(), &cmd, class.kind) {
                Gate::Forward => self.login = Login::Waiting,
                Gate::Local(reply) => {
                    return self.pipeline.push_local(cmd, class, reply, After::Continue)
                }
                Gate::Refuse(e) => return self.answer_local(ClientError::Auth(e), After::Continue),
            }
        }
        if let Some(e) = self.shared.deny.check(&cmd, &class) {
            return self.answer_local(e, After::Continue);
        }
        self.pipeline.push(Slot::remote(cmd, class));
    }

    /// QUIT is answered in order; a subscriber's goes to Redis, which
    /// answers it after everything it still streams, then closes.
    fn accept_quit(&mut self, cmd: Command, class: Class) {
        self.input = Input::Quit;
        let streaming = (self.state.replies == Replies::Streamed && self.backend.is_some())
            || self.pipeline.has_unsent(Kind::PassThrough);
        if streaming {
            return self.pipeline.push(Slot::remote(cmd, class));
        }
        let ok = Bytes::from_static(b"+OK\r\n");
        self.pipeline.push_local(cmd, class, ok, After::Close);
    }

    /// Answers with the proxy's own error, in order.
    fn answer_local(&mut self, e: ClientError, after: After) {
        self.error_kind(e.kind());
        let quit = Command::from_args(&["QUIT"]);
        let class = super::commands::classify(&quit);
        self.pipeline.push_local(quit, class, e.reply(), after);
    }

    fn error_kind(&self, kind: ErrorKind) {
        self.shared.metrics.ep(self.endpoint).error(kind).inc();
    }

    /// Sends queued requests if a backend is usable; otherwise holds them.
    async fn dispatch(&mut self) {
        self.retry_at = None;
        if self.pipeline.queued() == 0 {
            self.hold = Hold::Off;
            return;
        }
        if !self.link_ready() {
            return;
        }
        self.sync_routes();
        let target = match self.target() {
            Ok(Some(t)) => t,
            Ok(None) => return self.wait_for_backend(),
            Err(e) => {
                self.error_kind(e.kind());
                self.pipeline.fail_queued(&e);
                return;
            }
        };
        if self.connect(&target).await {
            if let Some(waited) = self.hold.end(Instant::now()) {
                self.shared
                    .metrics
                    .hold_seconds
                    .observe(waited.as_secs_f64());
            }
            self.send().await;
        }
    }

    /// Settles which link the next requests take: leaves the shared lane
    /// for a stateful command (once every earlier reply is in), returns to
    /// it when nothing would be missed, and lets a draining link finish.
    /// False while written requests must be answered first.
    fn link_ready(&mut self) -> bool {
        let written = self.pipeline.written() > 0;
        if let Some(b) = &self.backend {
            if b.phase != Phase::Open {
                if written {
                    return false;
                }
                self.drop_backend();
            }
        }
        let next_shared = self.pipeline.next_queued().is_some_and(|s| s.class.shared);
        match self.lane {
            Lane::Shared if !next_shared => {
                if written {
                    return false;
                }
                tracing::debug!("session leaves the shared connection for a dedicated one");
                self.drop_backend();
                self.lane = Lane::Dedicated { since: None };
            }
            Lane::Dedicated { since } if self.may_share_again(since, next_shared) => {
                tracing::debug!("session returns from its dedicated connection to the shared ones");
                self.drop_backend();
                self.lane = Lane::Shared;
            }
            _ => {}
        }
        true
    }

    fn may_share_again(&self, since: Option<Instant>, next_shared: bool) -> bool {
        self.shared.cfg.mode == ConnMode::Multiplex
            && next_shared
            && self.pipeline.written() == 0
            && self.state.shareable(self.shared.cfg.password.as_deref())
            && since.is_none_or(|t| t.elapsed() >= REJOIN)
    }

    /// Where requests should go now: `None` to wait (no master, or the
    /// master refused with READONLY and the table has not caught up).
    fn target(&self) -> Result<Option<Addr>, ClientError> {
        let routes = &self.routes;
        match self.endpoint {
            Endpoint::write => Ok(routes.master.clone().filter(|m| {
                let now = Instant::now();
                !self
                    .avoid
                    .as_ref()
                    .is_some_and(|a| a.blocks(m, routes.epoch, now))
            })),
            Endpoint::read => {
                if let Some(b) = &self.backend {
                    if serves_reads(routes, &b.addr) {
                        return Ok(Some(b.addr.clone()));
                    }
                }
                if let Some(r) = self.shared.balancer.pick(&routes.replicas) {
                    return Ok(Some(r));
                }
                match self.shared.cfg.read_fallback {
                    ReadFallback::Master => Ok(routes.master.clone()),
                    ReadFallback::Error => Err(ClientError::NoReplica),
                }
            }
        }
    }

    /// No backend now: hold, or give up after `--failover-hold`. Admin
    /// commands are never held: they act on the node that is there now.
    fn wait_for_backend(&mut self) {
        let not_held = ClientError::HoldTimeout {
            why: "no master right now, and admin commands are not held for a failover".into(),
        };
        let n = self
            .pipeline
            .fail_queued_where(&not_held, |s| s.class.effect == Effect::Admin);
        if n > 0 {
            self.error_kind(ErrorKind::HoldTimeout);
        }
        let limit = self.shared.cfg.failover_hold;
        match self.hold.wait(Instant::now(), limit) {
            (Next::RetryAt(t), started) => {
                if started {
                    let held = self.pipeline.queued() as u64;
                    self.shared.metrics.ep(self.endpoint).held.inc_by(held);
                }
                self.retry_at = Some(t);
            }
            (Next::GiveUp, _) => {
                let why = self.routes.closed.clone().unwrap_or_else(|| {
                    format!("no master available after waiting {limit:?} (failover in progress?)")
                });
                let e = ClientError::HoldTimeout { why };
                self.error_kind(e.kind());
                self.pipeline.fail_queued(&e);
            }
        }
    }

    /// Makes sure the link goes to `target`; false while it cannot (written
    /// requests on another node still due, or the connect failed: held).
    async fn connect(&mut self, target: &Addr) -> bool {
        if let Some(b) = &self.backend {
            if &b.addr == target {
                return true;
            }
            if self.pipeline.written() > 0 {
                return false;
            }
            self.drop_backend();
        }
        let epoch = self.routes.epoch;
        let cfg = &self.shared.cfg;
        let opened = match self.lane {
            Lane::Shared => self
                .shared
                .pool
                .get(target, self.state.proto())
                .await
                .map(|c| Backend::shared(c, epoch)),
            Lane::Dedicated { .. } => {
                let pw = cfg.password.as_deref();
                Backend::dedicated(target, epoch, &self.state, pw, cfg.connect_timeout).await
            }
        };
        match opened {
            Ok(b) => {
                self.adopt(b);
                true
            }
            Err(e) => {
                tracing::debug!(backend = %target, error = %e, "backend connect failed");
                self.shared
                    .routes
                    .refresh(Refresh::BackendDown(target.clone()));
                self.wait_for_backend();
                false
            }
        }
    }

    fn adopt(&mut self, b: Backend) {
        if self.endpoint == Endpoint::read {
            self.shared.balancer.bind(&b.addr);
        }
        if !b.is_shared() {
            let m = self.shared.metrics.ep(self.endpoint);
            m.backend_connections.inc();
        }
        self.backend = Some(b);
    }

    /// Writes the queued requests the link can carry, in one batch.
    async fn send(&mut self) {
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        let on_shared = b.is_shared();
        let cfg = &self.shared.cfg;
        // A RESET logs a dedicated connection out on Redis; with
        // --client-auth none the client expects to stay logged in.
        let reset_logs_out = cfg.password.is_some() && !cfg.client_auth && !on_shared;
        let mut batch = std::mem::take(&mut self.batch);
        let (state, lane) = (&mut self.state, &mut self.lane);
        let mut stop = false;
        let n = self.pipeline.write_queued(&mut batch, |s| {
            if stop || (on_shared && !s.class.shared) {
                return false;
            }
            state.on_sent(s.class.kind);
            if !s.class.shared {
                if let Lane::Dedicated { since } = lane {
                    *since = Some(Instant::now());
                }
            }
            stop = s.class.kind == Kind::Reset && reset_logs_out;
            true
        });
        if stop {
            b.phase = Phase::ReplaceWhenIdle;
        }
        let sent = b.send(&batch, n, &self.inbox, self.gen).await;
        batch.clear();
        self.batch = batch;
        match sent {
            Ok(()) => {
                if self.state.replies == Replies::Streamed {
                    // Replies now stream: nothing to pair them with.
                    self.pipeline.forget_written();
                }
            }
            Err(SendError::Closed) => self.unsent_on_retired(n),
            Err(SendError::Failed(e)) => self.backend_lost(&e.to_string()),
        }
    }

    /// The shared connection was retired (a switch) before this batch went
    /// out: the batch goes back to the queue; the link drains.
    fn unsent_on_retired(&mut self, n: usize) {
        for _ in 0..n {
            self.pipeline.requeue_last_written();
        }
        if let Some(b) = self.backend.as_mut() {
            b.phase = Phase::Draining {
                until: Instant::now() + DRAIN + Duration::from_millis(500),
            };
        }
        self.retry_at = Some(Instant::now());
    }

    fn drop_backend(&mut self) {
        let Some(b) = self.backend.take() else {
            return;
        };
        // Replies still owed on a shared link are ignored from now on.
        self.gen += 1;
        if self.endpoint == Endpoint::read {
            self.shared.balancer.release(&b.addr);
        }
        if !b.is_shared() {
            let m = self.shared.metrics.ep(self.endpoint);
            m.backend_connections.dec();
        }
    }

    fn on_backend_data(&mut self) {
        loop {
            let Some(Link::Dedicated(d)) = self.backend.as_mut().map(|b| &mut b.link) else {
                return;
            };
            let len = match frame_len(&d.buf) {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(e) => return self.backend_lost(&format!("protocol error from backend: {e}")),
            };
            let frame = d.buf.split_to(len);
            self.on_frame(&frame);
        }
    }

    /// Replies that arrived over the shared connection.
    fn on_mux_replies(&mut self) {
        let mut replies = std::mem::take(&mut self.replies);
        self.inbox.take(&mut replies);
        let mut lost = false;
        for (gen, r) in replies.drain(..) {
            if gen != self.gen {
                continue; // a link dropped since
            }
            match r {
                Reply::Frame(f) => self.on_frame(&f),
                Reply::Unsent => self.pipeline.requeue_first_written(),
                Reply::Lost => {
                    lost = true;
                    let loss = self.loss("shared connection failed");
                    if let Some(Err(e)) = self.pipeline.lose_first_written(&loss) {
                        self.error_kind(e.kind());
                    }
                }
            }
        }
        if replies.capacity() > 4096 {
            replies.shrink_to(64); // do not keep a huge pipeline's worth around
        }
        self.replies = replies;
        if lost
            || self
                .backend
                .as_ref()
                .is_some_and(|b| b.phase != Phase::Open)
        {
            self.after_shared_loss(lost);
        }
    }

    /// The shared link failed or was retired: once nothing written is due
    /// on it, take another (the next dispatch does).
    fn after_shared_loss(&mut self, lost: bool) {
        if self.pipeline.written() > 0 {
            return;
        }
        if lost {
            if let Some(b) = &self.backend {
                self.shared.pool.suspect(&b.addr);
                self.shared
                    .routes
                    .refresh(Refresh::BackendDown(b.addr.clone()));
            }
            return self.cool_down();
        }
        self.drop_backend();
        self.retry_at = Some(Instant::now());
    }

    fn loss(&self, why: &str) -> Loss {
        Loss {
            node: self
                .backend
                .as_ref()
                .map(|b| b.addr.clone())
                .unwrap_or_default(),
            why: why.to_string(),
        }
    }

    /// One reply from the backend.
    fn on_frame(&mut self, frame: &[u8]) {
        let out = bufpool::held(&mut self.out);
        if self.state.replies == Replies::Streamed || frame.first() == Some(&b'>') {
            out.extend_from_slice(frame);
            return;
        }
        let in_tx = matches!(self.state.tx, state::Tx::Multi { .. });
        if self.endpoint == Endpoint::write && !in_tx && replay::judge(frame) == Verdict::NotRun {
            return self.not_run(frame);
        }
        match self.pipeline.answer(frame, out) {
            Some((cmd, class)) => {
                // RESET: Redis logs the connection out too.
                if self.state.on_reply(&cmd, &class, frame) && self.shared.cfg.clients_log_in() {
                    self.login = Login::Required;
                }
            }
            // A reply nobody asked for: forward it rather than lose it.
            None => out.extend_from_slice(frame),
        }
    }

    /// The node refused to run the request (READONLY: it was demoted;
    /// LOADING; MASTERDOWN): it goes to the next master.
    fn not_run(&mut self, frame: &[u8]) {
        self.pipeline.requeue_first_written();
        self.shared.metrics.ep(self.endpoint).retried.inc();
        self.retry_at = Some(Instant::now() + hold::RETRY);
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        if b.phase == Phase::Open {
            b.phase = Phase::ReplaceWhenIdle;
        }
        if frame.starts_with(b"-READONLY") {
            tracing::info!(backend = %b.addr, "READONLY from the master: sending to the new one");
            self.avoid = Some(Avoid::ReadOnly {
                addr: b.addr.clone(),
                epoch: b.epoch,
            });
            self.shared
                .routes
                .refresh(Refresh::ReadOnly(b.addr.clone()));
        }
    }

    /// The backend link failed: written requests are re-queued or failed
    /// by the replay rule; state that cannot move ends the session.
    fn backend_lost(&mut self, why: &str) {
        let Some(b) = &self.backend else { return };
        tracing::debug!(backend = %b.addr, why, "backend connection lost");
        self.shared
            .routes
            .refresh(Refresh::BackendDown(b.addr.clone()));
        if self.input == Input::Quit && self.state.replies == Replies::Streamed {
            self.input = Input::Closing; // Redis answered the QUIT and closed
            return;
        }
        if let Some(during) = self.pinned() {
            return self.break_session(during);
        }
        let r = self.pipeline.lose_written(&self.loss(why));
        self.shared
            .metrics
            .ep(self.endpoint)
            .retried
            .inc_by(r.replayed);
        for e in &r.failed {
            self.error_kind(e.kind());
        }
        self.cool_down();
    }

    /// Drops the lost link; the same node is not tried again for [`COOLDOWN`].
    fn cool_down(&mut self) {
        if let Some(b) = &self.backend {
            let until = Instant::now() + COOLDOWN;
            self.avoid = Some(Avoid::Lost {
                addr: b.addr.clone(),
                until,
            });
        }
        self.drop_backend();
        self.retry_at = Some(Instant::now());
    }

    /// Session state a new backend cannot take over.
    fn pinned(&self) -> Option<&'static str> {
        self.state.pinned().or_else(|| {
            self.pipeline
                .blocking_written()
                .then_some("a blocking command")
        })
    }

    fn break_session(&mut self, during: &'static str) {
        let addr = self
            .backend
            .as_ref()
            .map(|b| b.addr.clone())
            .unwrap_or_default();
        tracing::info!(backend = %addr, "closing a client session pinned to the old backend ({during})");
        let e = ClientError::SessionBroken { during };
        self.error_kind(e.kind());
        self.drop_backend();
        self.pipeline.abandon(e.reply());
        self.input = Input::Quit;
    }

    /// Picks up a routing change noticed without an event.
    fn sync_routes(&mut self) {
        if self.routes_rx.has_changed().unwrap_or(false) {
            self.routes = self.routes_rx.borrow_and_update().clone();
            self.on_routes();
        }
    }

    /// A new routing table: a link to a node that no longer serves this
    /// endpoint takes nothing new. With no master known at all, the link
    /// stays: the master may be busy, not gone, and Sentinel decides.
    fn on_routes(&mut self) {
        let Some(b) = &self.backend else { return };
        let serves = match self.endpoint {
            Endpoint::write => self.routes.master.as_ref() == Some(&b.addr),
            Endpoint::read => serves_reads(&self.routes, &b.addr),
        };
        let unknown = self.endpoint == Endpoint::write && self.routes.master.is_none();
        if serves || unknown || b.phase != Phase::Open {
            return;
        }
        if let Some(during) = self.pinned() {
            return self.break_session(during);
        }
        if self.pipeline.written() == 0 {
            return self.drop_backend();
        }
        if let Some(b) = self.backend.as_mut() {
            b.phase = Phase::Draining {
                until: Instant::now() + DRAIN,
            };
        }
    }
}

/// A replica in rotation, or the master serving reads with no replica left.
fn serves_reads(routes: &Routes, addr: &Addr) -> bool {
    routes.replicas.contains(addr)
        || (routes.replicas.is_empty() && routes.master.as_ref() == Some(addr))
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Reads what the client sent; a buffer only once there is something.
async fn read_client(cr: &mut OwnedReadHalf, cbuf: &mut BytesMut) -> std::io::Result<usize> {
    loop {
        cr.readable().await?;
        room(bufpool::held(cbuf));
        match super::read_draining(cr.as_ref(), cbuf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Looked readable, had nothing (a fresh socket does).
                if cbuf.is_empty() {
                    bufpool::give(cbuf);
                }
            }
            r => return r,
        }
    }
}
