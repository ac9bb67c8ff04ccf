//! One client connection: reads its requests, sends them to the backend the
//! routing table names, and writes the replies back in request order.
//!
//! The decisions live beside this driver, without sockets: [`pipeline`]
//! (each request's slot and outcome), [`replay`] (what may be sent again),
//! [`state`] (what follows the client to a new connection), [`login`],
//! [`hold`] (waiting for a master) and [`link`] (the backend connection).
//! The driver here is a `select!` loop over the client, the backend,
//! routing changes and one timer, with one short step per event: [`input`]
//! (the client's requests), [`dispatch`] (sending them), [`replies`]
//! (the backend's answers, lost links, routing changes) and [`draining`]
//! (the proxy shutting down: `Input::Draining`, a state of the session).
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
//! read from it. The reply bytes the session holds are weighed by
//! [`budget::pressure`]: past the client's budget it pauses (a dedicated
//! connection is not read either, until the client reads), and on a shared
//! connection past `--client-output-limit` it is closed, as Redis does.

pub mod client_io;
mod dispatch;
mod draining;
mod hold;
mod input;
mod link;
mod login;
mod pipeline;
mod replay;
mod replies;
mod state;
mod stream;

use self::client_io::{ClientReader, ClientWriter};
use self::hold::{Hold, Next};
use self::link::{Backend, Link, Phase, SendError};
use self::login::{Gate, Signin};
use self::pipeline::{Ack, After, Answer, Pipeline, Slot, Take};
use self::replay::{Loss, Verdict};
use self::state::{ConnState, Replies};
use super::big::{self, Relay, Upload};
use super::budget::{self, Backside, Held, Pressure, Share};
use super::bufpool;
use super::commands::{is_unsubscribe_push, Class, Effect, Kind, LastClass};
use super::drain::DrainState;
use super::error::{ClientError, ErrorKind};
use super::mux::{Inbox, Reply};
use super::policy::{Avoid, COOLDOWN};
use super::Shared;
use crate::config::ConnMode;
use crate::route::{Endpoint, Refresh, Routes};
use bytes::{Buf, Bytes, BytesMut};
use redis_ha_resp::parse::frame_len;
use redis_ha_resp::Command;
use redis_ha_resp::RequestParser;
use redis_ha_topology::Addr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// How long a session closed by the proxy's drain waits for its client to
/// see the close (see [`Session::close`]).
const LINGER: Duration = Duration::from_secs(2);

/// Whether, and how, the client's side is still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Open,
    /// QUIT (or a protocol error) read: nothing more is read.
    Quit,
    /// The client shut its write side: answer what came, then close.
    Eof,
    /// The proxy is shutting down: nothing more is read; close at the
    /// first request boundary (every forwarded request answered), or at
    /// `until` whatever is left.
    Draining {
        until: Instant,
    },
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
    Drain,
    Shutdown,
}

pub struct Session {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    cr: ClientReader,
    cw: ClientWriter,
    /// Bytes read from the client, not yet parsed.
    cbuf: BytesMut,
    /// Resumes a partly received request where the last read stopped.
    parser: RequestParser,
    /// Replies for the client, not yet written.
    out: BytesMut,
    input: Input,
    login: Signin,
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
    drain_rx: watch::Receiver<DrainState>,
    last_class: LastClass,
    batch: BytesMut,
    hold: Hold,
    /// Since when the master refuses writes as not run (LOADING,
    /// NOREPLICAS...): they are sent again up to `--failover-hold`.
    refused: Hold,
    avoid: Option<Avoid>,
    retry_at: Option<Instant>,
    last_input: Instant,
    /// The rest of a big request being read and passed on.
    upload: Option<Upload>,
    /// A big reply being passed to the client as it arrives.
    relay: Option<Relay>,
    /// A big reply from a shared connection that cannot be relayed (not
    /// the first due): gathered whole, as any reply.
    gathered: BytesMut,
    /// What the reply bytes held for the client call for ([`budget`]).
    pressure: Pressure,
    /// This session's part of [`Shared::held`].
    share: Share,
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

impl Session {
    /// A session on a client's socket halves ([`client_io::plain`] or
    /// [`client_io::tls`]).
    pub fn new(
        (cr, cw): (ClientReader, ClientWriter),
        endpoint: Endpoint,
        shared: Arc<Shared>,
    ) -> Session {
        let lane = match shared.cfg.mode {
            ConnMode::Multiplex => Lane::Shared,
            ConnMode::Dedicated => Lane::Dedicated { since: None },
        };
        let mut routes_rx = shared.routes.routes.clone();
        let routes = routes_rx.borrow_and_update().clone();
        // Unseen: a session that starts during the drain is told at once.
        let mut drain_rx = shared.drain.watch();
        drain_rx.mark_changed();
        let login = if shared.cfg.clients_log_in() {
            Signin::Required
        } else {
            Signin::Done
        };
        let s = Session {
            endpoint,
            parser: RequestParser::new(shared.limits.clone()),
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
            drain_rx,
            last_class: LastClass::default(),
            batch: BytesMut::new(),
            hold: Hold::Off,
            refused: Hold::Off,
            avoid: None,
            retry_at: None,
            last_input: Instant::now(),
            upload: None,
            relay: None,
            gathered: BytesMut::new(),
            pressure: Pressure::Under,
            share: Share::default(),
        };
        s.inbox.set_limit(s.shared.cfg.client_output_limit);
        s
    }

    pub async fn run(mut self) {
        let m = self.shared.metrics.ep(self.endpoint).clone();
        m.client_connections.inc();
        m.client_connections_total.inc();
        if let Err(e) = self.serve().await {
            tracing::debug!(error = %e, "client session ended");
        }
        self.drop_backend();
        self.inbox.close();
        self.share.report(0, &self.shared.held);
        m.client_connections.dec();
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        loop {
            self.step().await;
            // The rest of a big request: boxed, so the usual loop's future
            // (and what the compiler inlines into it) stays as it was.
            if self.upload.is_some() {
                Box::pin(self.pump_upload()).await;
            }
            self.write_out()?;
            if self.finished() {
                return self.close().await;
            }
            self.pressure = self.weigh_held();
            if self.pressure == Pressure::Cut {
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
        if self.login == Signin::Waiting && !self.pipeline.login_pending() {
            self.login = if self.state.auth.is_some() || self.state.hello.is_some() {
                Signin::Done
            } else {
                Signin::Required
            };
            self.on_client_data();
        }
        self.dispatch().await;
        self.half_close_backend().await;
        // Only then a buffer: an idle client holds none.
        if self.pipeline.reply_ready()
            && self.pipeline.flush(bufpool::held(&mut self.out)) == After::Close
        {
            self.input = Input::Closing;
        }
    }

    /// Writes what the client will take now, without waiting, then counts
    /// the replies that left toward the latency metric.
    fn write_out(&mut self) -> std::io::Result<()> {
        let m = self.shared.metrics.ep(self.endpoint);
        let mut written = 0;
        let r = loop {
            if self.out.is_empty() {
                break Ok(());
            }
            match self.cw.try_write(&self.out) {
                Ok(n) => {
                    self.out.advance(n);
                    written += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if written > 0 {
            m.bytes_out.inc_by(written as u64);
            let now = Instant::now();
            self.pipeline
                .take_answered(|t, n| m.latency.observe(now - t, n));
        }
        r
    }

    fn finished(&self) -> bool {
        match self.input {
            Input::Closing => true,
            Input::Eof => self.pipeline.is_empty() || self.state.replies == Replies::Streamed,
            Input::Draining { .. } => self.pipeline.is_empty(),
            Input::Open | Input::Quit => false,
        }
    }

    /// Writes the last replies (briefly: a client that does not read them
    /// is not waited for) and closes. While draining, the close lingers: a
    /// request the client sent meanwhile is read and dropped until it sees
    /// the close, as a reset (closing with unread input) could cost it the
    /// replies it has not read yet.
    async fn close(&mut self) -> std::io::Result<()> {
        let last = tokio::time::timeout(Duration::from_secs(1), self.cw.write_all(&self.out));
        let _ = last.await;
        let _ = self.cw.shutdown().await;
        if self.shared.drain.state() != DrainState::Ready {
            let linger = async {
                loop {
                    self.cbuf.clear();
                    if !matches!(self.cr.read(&mut self.cbuf).await, Ok(n) if n > 0) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, linger).await;
        }
        Ok(())
    }

    fn output_limit(&self) -> usize {
        let hard = self.shared.cfg.client_output_limit;
        match self.state.replies {
            Replies::Streamed => hard.min(STREAM_OUTPUT),
            Replies::Paired => hard,
        }
    }

    /// Reports the reply bytes held for the client and weighs them; little
    /// held, and nothing reported before, is decided at once (every
    /// small-value request passes here).
    #[inline(always)]
    pub(super) fn weigh_held(&mut self) -> Pressure {
        let held = Held {
            unread: self.out.len(),
            kept: self.pipeline.kept(),
            queued: self.inbox.queued(),
        };
        if held.bytes() < budget::FLOOR && self.share.is_empty() && !self.inbox.overflowed() {
            return Pressure::Under;
        }
        self.weigh(held)
    }

    #[inline(never)]
    fn weigh(&mut self, held: Held) -> Pressure {
        if self.share.report(held.bytes(), &self.shared.held).is_some() {
            self.inbox.session_holds(held.unread + held.kept);
        }
        if self.inbox.overflowed() {
            return Pressure::Cut; // replies came faster than it took them
        }
        let limits = budget::Limits {
            client: budget::CLIENT_BUDGET,
            hard: self.output_limit(),
            total: self.shared.cfg.client_output_total,
        };
        let total = || self.shared.held.get();
        budget::pressure(held, total, self.backside(), &limits)
    }

    /// Whether nothing more is to be taken from the backend until the
    /// client reads: a paused dedicated link, or a shared one's replies
    /// while the client has [`budget::CLIENT_BUDGET`] unread (kept replies
    /// do not count: they wait for the next ones).
    fn behind(&self) -> bool {
        match (self.lane, self.backside()) {
            (_, Backside::Pausable) => self.pressure == Pressure::Pause,
            (Lane::Shared, _) => self.out.len() >= budget::CLIENT_BUDGET,
            (Lane::Dedicated { .. }, _) => false,
        }
    }

    /// Whether the backend can wait for this client alone.
    fn backside(&self) -> Backside {
        match (self.lane, self.state.replies) {
            (Lane::Dedicated { .. }, Replies::Paired) => Backside::Pausable,
            _ => Backside::Unpausable,
        }
    }

    fn over_output_limit(&mut self) -> std::io::Result<()> {
        tracing::warn!(
            pending = self.out.len(),
            kept = self.pipeline.kept(),
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
        if self.upload.is_some() {
            // The rest of a big request: read on (a drain lets it finish)
            // while little of it waits here.
            return matches!(self.input, Input::Open | Input::Draining { .. })
                && self.cbuf.len() < big::UPLOAD_AHEAD;
        }
        self.input == Input::Open
            && self.login != Signin::Waiting
            && self.pressure == Pressure::Under
            && self.out.len() < SOFT_OUTPUT
            && self.pipeline.len() < MAX_PENDING
    }

    async fn wait(&mut self) -> Wake {
        let timer = self.next_timer();
        // On shared connections a switch shows as a retired connection; the
        // routing table only matters while requests wait for a backend.
        let watch_routes = !matches!(self.lane, Lane::Shared) || self.pipeline.queued() > 0;
        let reading = self.wants_input();
        let writing = !self.out.is_empty() || self.cw.has_unflushed();
        let drain_news = !matches!(self.input, Input::Draining { .. });
        // A big reply waits while the client is behind on it; so does a
        // dedicated link while the client holds too much, and a shared
        // one's replies wait in the inbox (bounded there) while the client
        // is behind.
        let from_backend =
            !self.behind() && (self.relay.is_none() || self.out.len() < big::RELAY_OUT);
        let (cr, cbuf, cw) = (&mut self.cr, &mut self.cbuf, &mut self.cw);
        let drain = &mut self.drain_rx;
        let (backend, inbox, routes) = (&mut self.backend, &self.inbox, &mut self.routes_rx);
        tokio::select! {
            biased;
            _ = std::future::poll_fn(|cx| match from_backend {
                true => inbox.poll_ready(cx),
                false => inbox.poll_overflow(cx),
            }) => Wake::Mux,
            r = async {
                match backend.as_mut().map(|b| &mut b.link) {
                    Some(Link::Dedicated(d)) if from_backend => { room(&mut d.buf); d.r.read_buf(&mut d.buf).await }
                    _ => std::future::pending().await,
                }
            } => Wake::Backend(r),
            r = cw.ready(), if writing => Wake::Writable(r),
            r = cr.read(cbuf), if reading => Wake::Client(r),
            r = routes.changed(), if watch_routes => match r {
                Ok(()) => Wake::Routes,
                Err(_) => Wake::Shutdown,
            },
            r = drain.changed(), if drain_news => match r {
                Ok(()) => Wake::Drain,
                Err(_) => Wake::Shutdown,
            },
            _ = sleep_until(timer) => Wake::Timer,
        }
    }

    fn on_wake(&mut self, wake: Wake) -> std::io::Result<()> {
        match wake {
            Wake::Client(Ok(0)) => self.on_client_eof(),
            Wake::Client(Ok(n)) => {
                let now = Instant::now();
                self.last_input = now;
                self.pipeline.arrived(now);
                self.shared
                    .metrics
                    .ep(self.endpoint)
                    .bytes_in
                    .inc_by(n as u64);
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
            Wake::Drain => {
                let now = *self.drain_rx.borrow_and_update();
                if let DrainState::Draining { until } = now {
                    self.on_drain(until);
                }
            }
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
        let cut = match self.input {
            Input::Draining { until } => Some(until),
            _ => None,
        };
        [self.retry_at, drain, idle, cut]
            .into_iter()
            .flatten()
            .min()
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
        if let Input::Draining { until } = self.input {
            if until <= now {
                self.drain_timed_out();
            }
        }
        if let Some(Phase::Draining { until }) = self.backend.as_ref().map(|b| b.phase) {
            if until <= now {
                self.backend_lost("no reply from the old node after the switch");
            }
        }
        // dispatch() in the next step retries or fails held requests.
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
