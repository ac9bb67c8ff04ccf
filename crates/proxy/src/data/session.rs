//! One client connection and its backend: a dedicated connection, or in
//! multiplex mode a shared one ([`super::mux`]) until the client does
//! something stateful (MULTI, SELECT, SUBSCRIBE, a blocking command...),
//! after which it gets a dedicated connection. It returns to the shared ones
//! once its state is back to a fresh connection's (transaction over, SELECT 0,
//! nothing blocked) and it has sent nothing stateful for [`REJOIN`]. RESP3
//! clients share RESP3 connections; a name (CLIENT SETNAME / SETINFO) is
//! given again to any later dedicated connection. Pub/sub, a login other
//! than the shared connections', and commands whose effect on the connection
//! the proxy does not track (CLIENT TRACKING, unknown commands) keep it
//! dedicated.
//!
//! Requests are forwarded in batches (everything parsed from one read goes
//! out in one write); replies are forwarded as byte ranges measured by
//! `frame_len`, never rebuilt. Replies reach the client strictly in request
//! order, including the proxy's own (QUIT, protocol errors, hold timeouts):
//! every request gets a slot in `inflight`, answered either by the backend or
//! locally.
//!
//! With a password, a client logs in first, as with Redis: before that
//! every command but AUTH, HELLO ... AUTH, RESET and QUIT gets Redis's
//! NOAUTH. A wrong password for the default user is refused on the spot; a
//! good one, or any other user's, goes to Redis, and nothing the client sent
//! after it is read until Redis has answered.
//!
//! Failover: with no master the requests wait in `queue` (the hold); after a
//! switch or a dropped backend the requests still unanswered are re-sent to
//! the new master (at-least-once for requests in flight when a master dies;
//! an acknowledged write is never dropped by the proxy). A request refused
//! with READONLY (the node was demoted) is re-sent the same way. Sessions
//! whose server-side state cannot move (MULTI/WATCH, pub/sub, MONITOR,
//! blocked commands) get an error and are closed, as if the server restarted.

use super::bufpool;
use super::commands::{Kind, LastClass};
use super::mux::{Inbox, MuxConn, Proto, Reply};
use super::Shared;
use crate::config::ConnMode;
use crate::metrics::Endpoint;
use crate::route::{Refresh, Routes};
use bytes::{Bytes, BytesMut};
use redis_ha_resp::parse::{frame_len, parse_command};
use redis_ha_resp::{encode, Command};
use redis_ha_topology::Addr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How often a held session retries when nothing else wakes it.
const RETRY: Duration = Duration::from_millis(50);

/// How long a session on a dedicated connection (multiplex mode) must go
/// without a stateful command before it returns to the shared ones. A client
/// that runs a transaction every few commands keeps its connection instead of
/// reconnecting each time.
pub const REJOIN: Duration = Duration::from_secs(1);

/// Session state that must follow the client to a new backend connection.
#[derive(Default, Clone)]
struct State {
    hello: Option<Command>,
    auth: Option<Command>,
    /// CLIENT SETNAME / SETINFO, the last one per label.
    labels: Vec<Command>,
    select: Option<Command>,
    multi: bool,
    watching: bool,
    /// Replies no longer pair with requests (pub/sub, MONITOR, CLIENT REPLY).
    passthrough: bool,
    /// A connection-level command the proxy does not track was sent (CLIENT
    /// TRACKING, an unknown command...): the connection may hold state.
    untracked: bool,
}

struct Pending {
    /// The request, kept for re-sending after a switch.
    cmd: Command,
    kind: Kind,
    /// May use a shared backend connection (multiplex mode).
    shared: bool,
    /// A reply the proxy gives itself (no backend involved).
    local: Option<Bytes>,
    /// Close the connection once this reply is written.
    close_after: bool,
}

struct Backend {
    addr: Addr,
    epoch: u64,
    r: OwnedReadHalf,
    w: OwnedWriteHalf,
    buf: BytesMut,
}

/// The session's way to its backend node.
enum Link {
    Dedicated(Backend),
    /// A shared connection; `epoch` is the routing epoch it was chosen in.
    Mux {
        conn: Arc<MuxConn>,
        epoch: u64,
    },
}

impl Link {
    fn addr(&self) -> &Addr {
        match self {
            Link::Dedicated(b) => &b.addr,
            Link::Mux { conn, .. } => &conn.addr,
        }
    }

    fn epoch(&self) -> u64 {
        match self {
            Link::Dedicated(b) => b.epoch,
            Link::Mux { epoch, .. } => *epoch,
        }
    }
}

pub struct Session {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    cr: OwnedReadHalf,
    cw: OwnedWriteHalf,
    cbuf: BytesMut,
    out: BytesMut,
    backend: Option<Link>,
    /// On a shared connection (multiplex mode, nothing stateful going on).
    mux: bool,
    /// When the last stateful command was sent (multiplex mode).
    stateful_at: Option<Instant>,
    inbox: Option<Arc<Inbox>>,
    /// Bumped whenever in-flight requests are abandoned (re-sent elsewhere),
    /// so late replies to them from a shared connection are ignored.
    gen: u64,
    replies: VecDeque<(u64, Reply)>,
    /// The routing table as last seen (refreshed when it changes).
    routes_rx: watch::Receiver<Arc<Routes>>,
    routes: Arc<Routes>,
    last_class: LastClass,
    /// Reused buffer for batching requests to a dedicated backend.
    batch: BytesMut,
    /// Accepted, not yet sent (held while there is no usable backend).
    queue: VecDeque<Pending>,
    /// Sent (or answered locally), reply not yet written to the client.
    inflight: VecDeque<Pending>,
    state: State,
    hold_since: Option<Instant>,
    /// Do not send to this node at this epoch: it answered READONLY.
    avoid: Option<(Addr, u64)>,
    retry_at: Option<Instant>,
    reading: bool,
    closing: bool,
    /// Logged in, or no login needed (see `ProxyConfig::client_auth`).
    authed: bool,
    /// A login is on its way to Redis: read nothing more from the client
    /// until it is answered, so nothing slips in unauthenticated.
    auth_wait: bool,
    /// A RESET went out on a dedicated connection and logs it out on Redis
    /// while the client needs no login (`--client-auth none`): nothing more
    /// is sent on it, and it is replaced once answered.
    relogin: bool,
}

/// Where `AUTH user pass` starts in `HELLO [protover [AUTH user pass] ...]`.
fn hello_auth_at(hello: &Command) -> Option<usize> {
    (2..hello.argc()).find(|&i| hello.arg_is(i, "AUTH"))
}

/// Compares a password in time that does not depend on where it differs
/// (as Redis does), so response times do not leak it byte by byte.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// What a command from a client that has not logged in gets.
enum Login {
    /// A login attempt Redis answers.
    Forward,
    /// Answered by the proxy.
    Local(Bytes),
    /// Refused with this error.
    Refuse(&'static str),
}

/// Makes room to read into, growing the buffer only when it runs low: a
/// reserve while earlier requests still share the buffer would allocate a
/// new one every time. A small (pooled) buffer first grows back to 4 KiB.
fn room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(if buf.capacity() < 4096 {
            4096
        } else {
            16 * 1024
        });
    }
}

enum Wake {
    Client(std::io::Result<usize>),
    Backend(std::io::Result<usize>),
    Mux,
    Routes,
    Timer,
}

impl Session {
    pub fn new(sock: TcpStream, endpoint: Endpoint, shared: Arc<Shared>) -> Session {
        let (cr, cw) = sock.into_split();
        let mux = shared.cfg.mode == ConnMode::Multiplex;
        let mut routes_rx = shared.routes.routes.clone();
        let routes = routes_rx.borrow_and_update().clone();
        let authed = !shared.cfg.clients_log_in();
        Session {
            endpoint,
            shared,
            cr,
            cw,
            // Allocated on first use: a connection that never sends costs
            // only its task and socket.
            cbuf: BytesMut::new(),
            out: BytesMut::new(),
            backend: None,
            mux,
            stateful_at: None,
            inbox: None,
            gen: 0,
            replies: VecDeque::new(),
            routes_rx,
            routes,
            batch: BytesMut::new(),
            last_class: LastClass::default(),
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            state: State::default(),
            hold_since: None,
            avoid: None,
            retry_at: None,
            reading: true,
            closing: false,
            authed,
            auth_wait: false,
            relogin: false,
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
            if self.auth_wait && !self.login_pending() {
                // Answered (or failed): go on with what the client sent after it.
                self.auth_wait = false;
                self.on_client_data();
            }
            self.dispatch().await;
            self.flush_local();
            if !self.out.is_empty() {
                self.cw.write_all(&self.out).await?;
                self.out.clear();
            }
            if self.inflight.is_empty() && self.queue.is_empty() {
                // Idle: hold no buffers until the client sends again.
                bufpool::give(&mut self.out);
                if self.cbuf.is_empty() {
                    bufpool::give(&mut self.cbuf);
                }
            }
            if self.closing {
                return Ok(());
            }
            let timer = self.next_timer();
            // A session on shared connections learns of a switch from the
            // pool (fenced connections fail); it only needs routing events
            // while it holds requests. Skipping them saves a waiter
            // registration per loop.
            let watch_routes = !self.mux || !self.queue.is_empty();
            let wake = {
                let cr = &mut self.cr;
                let cbuf = &mut self.cbuf;
                let reading = self.reading;
                let auth_wait = self.auth_wait;
                let backend = &mut self.backend;
                let inbox = &self.inbox;
                let routes = &mut self.routes_rx;
                tokio::select! {
                    biased;
                    _ = std::future::poll_fn(|cx| match inbox {
                        Some(i) => i.poll_ready(cx),
                        None => std::task::Poll::Pending,
                    }) => Wake::Mux,
                    r = async {
                        match backend.as_mut() {
                            Some(Link::Dedicated(b)) => { room(&mut b.buf); b.r.read_buf(&mut b.buf).await }
                            _ => std::future::pending().await,
                        }
                    } => Wake::Backend(r),
                    r = async {
                        loop {
                            // A buffer only once there is something to read.
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
                    }, if reading && !auth_wait => Wake::Client(r),
                    r = routes.changed(), if watch_routes => {
                        if r.is_err() {
                            return Ok(()); // the proxy is shutting down
                        }
                        Wake::Routes
                    }
                    _ = async {
                        match timer {
                            Some(t) => tokio::time::sleep_until(t.into()).await,
                            None => std::future::pending().await,
                        }
                    } => Wake::Timer,
                }
            };
            match wake {
                Wake::Client(Ok(0)) | Wake::Client(Err(_)) => return Ok(()),
                Wake::Client(Ok(_)) => self.on_client_data(),
                Wake::Backend(Ok(0)) => self.backend_lost("closed the connection"),
                Wake::Backend(Err(e)) => self.backend_lost(&e.to_string()),
                Wake::Backend(Ok(_)) => self.on_backend_data(),
                Wake::Mux => self.on_mux_replies(),
                Wake::Routes => {
                    self.routes = self.routes_rx.borrow_and_update().clone();
                    self.on_routes();
                }
                Wake::Timer => self.on_timer(),
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let hold_end = self.hold_since.map(|s| s + self.shared.cfg.failover_hold);
        match (hold_end, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_client_data(&mut self) {
        let shared = self.shared.clone();
        let limits = &shared.limits;
        let mut n = 0u64;
        loop {
            match parse_command(&mut self.cbuf, limits) {
                Ok(Some(cmd)) => {
                    n += 1;
                    self.accept(cmd);
                    if !self.reading || self.auth_wait {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.error_kind("protocol");
                    self.local(
                        Command::from_args(&["QUIT"]),
                        format!("ERR Protocol error: {e}"),
                        true,
                    );
                    self.reading = false;
                    break;
                }
            }
        }
        if n > 0 {
            self.shared.metrics.ep(self.endpoint).commands.inc_by(n);
        }
    }

    fn accept(&mut self, cmd: Command) {
        let class = self.last_class.classify(&cmd);
        let (kind, shared) = (class.kind, class.shared);
        if kind == Kind::Quit {
            let mut out = BytesMut::new();
            encode::simple("OK", &mut out);
            self.queue.push_back(Pending {
                cmd,
                kind,
                shared,
                local: Some(out.freeze()),
                close_after: true,
            });
            self.reading = false;
            return;
        }
        if !self.authed {
            match self.login(&cmd, kind) {
                Login::Forward => self.auth_wait = true,
                Login::Local(reply) => {
                    self.queue.push_back(Pending {
                        cmd,
                        kind: Kind::Normal,
                        shared: true,
                        local: Some(reply),
                        close_after: false,
                    });
                    return;
                }
                Login::Refuse(err) => {
                    self.error_kind("auth");
                    return self.local(cmd, err.into(), false);
                }
            }
        }
        self.queue.push_back(Pending {
            cmd,
            kind,
            shared,
            local: None,
            close_after: false,
        });
    }

    /// What to do with a command from a client that has not logged in yet
    /// (the answers are Redis's own). A login with the right password, or
    /// as another ACL user, goes to Redis, which has the last word.
    fn login(&self, cmd: &Command, kind: Kind) -> Login {
        const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
        let creds = match kind {
            Kind::Auth => match cmd.argc() {
                2 => (None, cmd.arg(1)),
                3 => (cmd.arg(1), cmd.arg(2)),
                _ => return Login::Refuse("ERR wrong number of arguments for 'auth' command"),
            },
            Kind::Hello => match hello_auth_at(cmd) {
                Some(i) => (cmd.arg(i + 1), cmd.arg(i + 2)),
                None => return Login::Refuse(
                    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
                ),
            },
            // Nothing to reset before a login.
            Kind::Reset => return Login::Local(Bytes::from_static(b"+RESET\r\n")),
            _ => return Login::Refuse("NOAUTH Authentication required."),
        };
        match creds {
            (_, None) => Login::Refuse("ERR Syntax error in HELLO option 'auth'"),
            // The default user's password is known here; other users' are not.
            (Some(u), _) if u != b"default" => Login::Forward,
            (user, pass) if self.same_login(user, pass) => Login::Forward,
            _ => Login::Refuse(WRONGPASS),
        }
    }

    /// A login (AUTH, HELLO) not answered yet.
    fn login_pending(&self) -> bool {
        self.queue
            .iter()
            .chain(&self.inflight)
            .any(|p| matches!(p.kind, Kind::Auth | Kind::Hello))
    }

    /// Queues a locally generated error reply.
    fn local(&mut self, cmd: Command, err: String, close_after: bool) {
        let mut out = BytesMut::new();
        encode::error(&err, &mut out);
        self.queue.push_back(Pending {
            cmd,
            kind: Kind::Normal,
            shared: true,
            local: Some(out.freeze()),
            close_after,
        });
    }

    fn error_kind(&self, kind: &str) {
        let m = &self.shared.metrics;
        m.ep(self.endpoint).error(kind).inc();
    }

    /// Writes replies the proxy produced itself once everything before them
    /// has been answered.
    fn flush_local(&mut self) {
        while let Some(p) = self.inflight.front() {
            let Some(reply) = &p.local else { break };
            bufpool::held(&mut self.out).extend_from_slice(reply);
            if p.close_after {
                self.closing = true;
            }
            self.inflight.pop_front();
        }
    }

    /// Where requests should go now, or why they must wait / fail.
    fn target(&self, routes: &Routes) -> Result<Option<Addr>, String> {
        match self.endpoint {
            Endpoint::write => {
                let m = routes.master.clone();
                if let (Some(m), Some((a, e))) = (&m, &self.avoid) {
                    if m == a && routes.epoch == *e {
                        return Ok(None);
                    }
                }
                Ok(m)
            }
            Endpoint::read => {
                if let Some(b) = &self.backend {
                    let a = b.addr();
                    if routes.replicas.contains(a)
                        || (routes.replicas.is_empty() && routes.master.as_ref() == Some(a))
                    {
                        return Ok(Some(a.clone()));
                    }
                }
                if let Some(r) = self.shared.balancer.pick(&routes.replicas) {
                    return Ok(Some(r));
                }
                match self.shared.cfg.read_fallback {
                    crate::config::ReadFallback::Master => Ok(routes.master.clone()),
                    crate::config::ReadFallback::Error => Err(
                        "NOREPLICAS redis-ha: no healthy replica for the read endpoint (--read-fallback error); retry, or read from the write endpoint".into(),
                    ),
                }
            }
        }
    }

    /// Sends queued requests if a backend is usable; otherwise holds them.
    async fn dispatch(&mut self) {
        self.retry_at = None;
        // Local replies queued behind nothing can move straight on.
        while self.queue.front().is_some_and(|p| p.local.is_some()) {
            let p = self.queue.pop_front().expect("checked");
            self.inflight.push_back(p);
        }
        if self.queue.is_empty() {
            self.hold_since = None;
            return;
        }
        if self.relogin {
            if self.remote_inflight() {
                return;
            }
            self.relogin = false;
            self.drop_backend(); // the next one logs in again
        }
        if self.mux && self.queue.front().is_some_and(|p| !p.shared) {
            // A stateful command: leave the shared connection once everything
            // sent over it has been answered (replies stay in order).
            if self.remote_inflight() {
                return;
            }
            tracing::debug!("session leaves the shared connection for a dedicated one");
            self.drop_backend();
            self.mux = false;
        } else if !self.mux && self.may_share_again() {
            tracing::debug!("session returns from its dedicated connection to the shared ones");
            self.drop_backend();
            self.mux = true;
        }
        self.sync_routes();
        let routes = self.routes.clone();
        let target = match self.target(&routes) {
            Ok(t) => t,
            Err(msg) => {
                self.error_kind("no_replica");
                self.fail_queue(&msg);
                return;
            }
        };
        // A backend that is no longer the target is replaced between requests.
        if let (Some(b), Some(t)) = (&self.backend, &target) {
            if b.addr() != t && !self.remote_inflight() {
                self.drop_backend();
            }
        }
        if self.backend.is_none() {
            let Some(t) = target else {
                return self.hold(&routes);
            };
            let link = if self.mux {
                self.shared
                    .pool
                    .get(&t, self.proto())
                    .await
                    .map(|conn| Link::Mux {
                        conn,
                        epoch: routes.epoch,
                    })
            } else {
                self.connect(&t, routes.epoch).await.map(|b| {
                    self.shared
                        .metrics
                        .ep(self.endpoint)
                        .backend_connections
                        .inc();
                    Link::Dedicated(b)
                })
            };
            match link {
                Ok(l) => {
                    if self.endpoint == Endpoint::read {
                        self.shared.balancer.bind(l.addr());
                    }
                    self.backend = Some(l);
                }
                Err(e) => {
                    tracing::debug!(backend = %t, error = %e, "backend connect failed");
                    self.shared.routes.refresh(Refresh::BackendDown(t));
                    return self.hold(&routes);
                }
            }
        }
        if let Some(since) = self.hold_since.take() {
            self.shared
                .metrics
                .hold_seconds
                .observe(since.elapsed().as_secs_f64());
        }
        if self.mux {
            return self.send_shared();
        }
        let mut batch = std::mem::take(&mut self.batch);
        let cfg = &self.shared.cfg;
        let reset_logs_out = cfg.password.is_some() && !cfg.client_auth;
        let multiplex = cfg.mode == ConnMode::Multiplex;
        while let Some(p) = self.queue.pop_front() {
            let reset = p.kind == Kind::Reset;
            if p.local.is_none() {
                batch.extend_from_slice(&p.cmd.raw);
                self.note_sent(&p);
                if !p.shared && multiplex {
                    self.stateful_at = Some(Instant::now());
                }
            }
            self.inflight.push_back(p);
            if reset && reset_logs_out {
                self.relogin = true;
                break;
            }
        }
        if !batch.is_empty() {
            let Some(Link::Dedicated(b)) = self.backend.as_mut() else {
                unreachable!("dedicated mode has a dedicated link here");
            };
            if let Err(e) = b.w.write_all(&batch).await {
                self.backend_lost(&e.to_string());
            }
        }
        batch.clear();
        self.batch = batch;
    }

    /// Multiplex mode: queues the shareable requests at the front of the
    /// queue on the shared connection (stopping at a stateful one).
    fn send_shared(&mut self) {
        let Some(Link::Mux { conn, .. }) = &self.backend else {
            unreachable!("multiplex mode has a shared link here");
        };
        let conn = conn.clone();
        let inbox = self.inbox.get_or_insert_with(Default::default).clone();
        let Some(mut tx) = conn.sender(&inbox, self.gen) else {
            return self.backend_lost("shared connection failed");
        };
        while let Some(p) = self.queue.front() {
            if p.local.is_none() {
                if !p.shared {
                    break;
                }
                tx.push(&p.cmd.raw);
            }
            let p = self.queue.pop_front().expect("checked");
            self.inflight.push_back(p);
        }
    }

    /// Multiplex mode, on a dedicated connection: the next request may go
    /// over a shared one again (nothing on the connection would be missed).
    fn may_share_again(&self) -> bool {
        let s = &self.state;
        self.shared.cfg.mode == ConnMode::Multiplex
            && self
                .queue
                .front()
                .is_some_and(|p| p.shared && p.local.is_none())
            && !s.multi
            && !s.watching
            && !s.passthrough
            && !s.untracked
            && self.hello_shareable()
            && self.auth_shareable()
            && s.select.as_ref().is_none_or(|c| c.arg_is(1, "0"))
            && !self.remote_inflight()
            && self.stateful_at.is_none_or(|t| t.elapsed() >= REJOIN)
    }

    /// The protocol the client asked for with HELLO.
    fn proto(&self) -> Proto {
        match &self.state.hello {
            Some(h) if h.arg_is(1, "3") => Proto::Resp3,
            _ => Proto::Resp2,
        }
    }

    /// `user`/`pass` are what the shared connections log in with: the
    /// default user with the proxy's `--password`.
    fn same_login(&self, user: Option<&[u8]>, pass: Option<&[u8]>) -> bool {
        let Some(pw) = self.shared.cfg.password.as_deref() else {
            return false;
        };
        user.is_none_or(|u| u == b"default") && pass.is_some_and(|p| same_bytes(p, pw.as_bytes()))
    }

    /// No AUTH, or one that logs in as the shared connections do.
    fn auth_shareable(&self) -> bool {
        match &self.state.auth {
            None => true,
            Some(a) if a.argc() == 2 => self.same_login(None, a.arg(1)),
            Some(a) if a.argc() == 3 => self.same_login(a.arg(1), a.arg(2)),
            Some(_) => false,
        }
    }

    /// No HELLO, or `HELLO [2|3] [AUTH user pass] [SETNAME name]` whose
    /// AUTH, if any, is the shared connections' login.
    fn hello_shareable(&self) -> bool {
        let Some(h) = &self.state.hello else {
            return true;
        };
        let mut i = 2;
        while i < h.argc() {
            if h.arg_is(i, "AUTH") && self.same_login(h.arg(i + 1), h.arg(i + 2)) {
                i += 3;
            } else if h.arg_is(i, "SETNAME") && h.arg(i + 1).is_some() {
                i += 2;
            } else {
                return false;
            }
        }
        true
    }

    /// Requests sent to the backend and not answered yet.
    fn remote_inflight(&self) -> bool {
        self.inflight.iter().any(|p| p.local.is_none())
    }

    /// Tracks transaction state as requests go out (a MULTI is in progress
    /// from the moment it is sent).
    fn note_sent(&mut self, p: &Pending) {
        match p.kind {
            Kind::Multi => self.state.multi = true,
            Kind::Watch => self.state.watching = true,
            Kind::PassThrough => self.state.passthrough = true,
            _ => {}
        }
    }

    fn hold(&mut self, routes: &Routes) {
        let hold = self.shared.cfg.failover_hold;
        let since = *self.hold_since.get_or_insert_with(|| {
            self.shared
                .metrics
                .ep(self.endpoint)
                .held
                .inc_by(self.queue.len() as u64);
            Instant::now()
        });
        if since.elapsed() >= hold {
            let why = routes.closed.clone().unwrap_or_else(|| {
                format!("no master available after waiting {hold:?} (failover in progress?)")
            });
            self.error_kind("hold_timeout");
            self.fail_queue(&format!("TRYAGAIN redis-ha: {why}; retry later"));
            self.hold_since = None;
            return;
        }
        self.retry_at = Some(Instant::now() + RETRY);
    }

    fn fail_queue(&mut self, msg: &str) {
        let mut out = BytesMut::new();
        encode::error(msg, &mut out);
        let reply = out.freeze();
        while let Some(mut p) = self.queue.pop_front() {
            if p.local.is_none() {
                p.local = Some(reply.clone());
            }
            self.inflight.push_back(p);
        }
    }

    async fn connect(&self, addr: &str, epoch: u64) -> std::io::Result<Backend> {
        let t = self.shared.cfg.connect_timeout;
        let sock = tokio::time::timeout(t, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        sock.set_nodelay(true)?;
        let (r, w) = sock.into_split();
        let mut b = Backend {
            addr: addr.to_string(),
            epoch,
            r,
            w,
            buf: BytesMut::with_capacity(16 * 1024),
        };
        // Replay the session's state so the client cannot tell the difference.
        let mut replay = BytesMut::new();
        let mut n = 0;
        let s = &self.state;
        // The login comes first: a HELLO without AUTH on a connection not
        // logged in fails. A HELLO that logs in replaces any earlier AUTH
        // (see `on_reply`), and an AUTH after it wins.
        let hello_logs_in = s.hello.as_ref().and_then(hello_auth_at).is_some();
        if let Some(pw) = &self.shared.cfg.password {
            if s.auth.is_none() && !hello_logs_in {
                encode::command(&["AUTH", pw.as_str()], &mut replay);
                n += 1;
            }
        }
        let once = if hello_logs_in {
            [&s.hello, &s.auth, &s.select]
        } else {
            [&s.auth, &s.hello, &s.select]
        };
        for c in once.into_iter().flatten().chain(&s.labels) {
            replay.extend_from_slice(&c.raw);
            n += 1;
        }
        if n > 0 {
            b.w.write_all(&replay).await?;
            let deadline = Instant::now() + t;
            let mut got = 0;
            while got < n {
                while let Some(len) = frame_len(&b.buf).map_err(std::io::Error::other)? {
                    let reply = b.buf.split_to(len);
                    if reply.first() == Some(&b'-') {
                        return Err(std::io::Error::other(format!(
                            "replaying session state on {addr} failed: {}",
                            String::from_utf8_lossy(&reply).trim_end()
                        )));
                    }
                    got += 1;
                }
                if got >= n {
                    break;
                }
                let read = tokio::time::timeout_at(deadline.into(), b.r.read_buf(&mut b.buf))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "state replay timed out")
                    })??;
                if read == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "closed during state replay",
                    ));
                }
            }
        }
        Ok(b)
    }

    fn drop_backend(&mut self) {
        let Some(link) = self.backend.take() else {
            return;
        };
        // Anything still owed on this link is abandoned (re-sent elsewhere).
        self.gen += 1;
        if self.endpoint == Endpoint::read {
            self.shared.balancer.release(link.addr());
        }
        if let Link::Dedicated(_) = link {
            self.shared
                .metrics
                .ep(self.endpoint)
                .backend_connections
                .dec();
        }
    }

    fn on_backend_data(&mut self) {
        loop {
            let Some(Link::Dedicated(b)) = self.backend.as_mut() else {
                return;
            };
            let len = match frame_len(&b.buf) {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(e) => return self.backend_lost(&format!("protocol error from backend: {e}")),
            };
            let frame = b.buf.split_to(len);
            if !self.on_frame(&frame) {
                return;
            }
        }
    }

    /// Replies that arrived over the shared connection.
    fn on_mux_replies(&mut self) {
        let Some(inbox) = &self.inbox else { return };
        let mut replies = std::mem::take(&mut self.replies);
        inbox.take(&mut replies);
        for (gen, r) in replies.drain(..) {
            if gen != self.gen {
                continue; // abandoned: its requests were re-sent
            }
            let go_on = match r {
                Reply::Frame(f) => self.on_frame(&f),
                Reply::Lost => {
                    self.backend_lost("shared connection failed");
                    false
                }
            };
            if !go_on {
                break;
            }
        }
        replies.clear();
        if replies.capacity() > 4096 {
            replies.shrink_to(64); // do not keep a huge pipeline's worth around
        }
        self.replies = replies;
    }

    /// Handles one reply from the backend; false when the rest of what this
    /// backend sends no longer matters (its requests are being re-sent).
    fn on_frame(&mut self, frame: &[u8]) -> bool {
        if self.state.passthrough || frame.first() == Some(&b'>') {
            bufpool::held(&mut self.out).extend_from_slice(frame);
            return true;
        }
        if self.endpoint == Endpoint::write && !self.state.multi && frame.starts_with(b"-READONLY")
        {
            // The node was demoted under us: re-send to the new master.
            let Some(b) = &self.backend else { return false };
            let (addr, epoch) = (b.addr().clone(), b.epoch());
            tracing::info!(backend = %addr, "READONLY from the master: re-sending to the new one");
            self.avoid = Some((addr.clone(), epoch));
            self.shared.routes.refresh(Refresh::ReadOnly(addr));
            self.requeue_inflight();
            return false;
        }
        let answered = match self.inflight.front() {
            Some(p) if p.local.is_none() => {
                let p = self.inflight.pop_front().expect("checked");
                self.on_reply(&p, frame);
                true
            }
            // A reply nobody asked for: forward it rather than lose it. (Never
            // ahead of a local reply: those are flushed first.)
            _ => false,
        };
        bufpool::held(&mut self.out).extend_from_slice(frame);
        if answered {
            self.flush_local();
        }
        true
    }

    /// Updates session state from a reply.
    fn on_reply(&mut self, p: &Pending, reply: &[u8]) {
        let ok = reply.first() != Some(&b'-') && reply.first() != Some(&b'!');
        match p.kind {
            Kind::Multi if !ok => self.state.multi = false,
            Kind::EndMulti => {
                self.state.multi = false;
                self.state.watching = false;
            }
            Kind::Unwatch => self.state.watching = false,
            Kind::Select if ok => self.state.select = Some(p.cmd.clone()),
            Kind::Auth if ok => {
                self.state.auth = Some(p.cmd.clone());
                self.authed = true;
            }
            Kind::Hello if ok => {
                if hello_auth_at(&p.cmd).is_some() {
                    self.state.auth = None; // replaced by this login
                }
                self.state.hello = Some(p.cmd.clone());
                self.authed = true;
            }
            Kind::SetName if ok => {
                // Replaces the same label: SETNAME, or SETINFO of the same
                // attribute (LIB-NAME, LIB-VER).
                let n = if p.cmd.arg_is(1, "SETINFO") { 3 } else { 2 };
                let same = |c: &Command| {
                    (1..n).all(|i| {
                        c.arg(i)
                            .zip(p.cmd.arg(i))
                            .is_some_and(|(x, y)| x.eq_ignore_ascii_case(y))
                    })
                };
                self.state.labels.retain(|c| !same(c));
                self.state.labels.push(p.cmd.clone());
            }
            // Not followed by the proxy; a refused one changed nothing.
            Kind::Normal if ok && !p.shared => self.state.untracked = true,
            Kind::Reset if ok => {
                // Redis logs the connection out too when there is a password.
                self.state = State::default();
                self.authed = !self.shared.cfg.clients_log_in();
            }
            _ => {}
        }
    }

    /// Session state a new backend cannot take over.
    fn pinned(&self) -> Option<&'static str> {
        if self.state.passthrough {
            Some("subscribed / MONITOR / CLIENT REPLY")
        } else if self.state.multi {
            Some("MULTI")
        } else if self.state.watching {
            Some("WATCH")
        } else if self
            .inflight
            .iter()
            .any(|p| p.kind == Kind::Blocking && p.local.is_none())
        {
            Some("a blocking command")
        } else {
            None
        }
    }

    /// Moves requests still waiting for a backend reply back to the front
    /// of the queue (they go to the next backend), dropping the backend.
    fn requeue_inflight(&mut self) {
        if let Some(why) = self.pinned() {
            return self.break_session(why);
        }
        let mut n = 0;
        while let Some(p) = self.inflight.pop_back() {
            if p.local.is_none() {
                n += 1;
            }
            self.queue.push_front(p);
        }
        if n > 0 {
            self.shared.metrics.ep(self.endpoint).retried.inc_by(n);
        }
        self.drop_backend();
    }

    fn break_session(&mut self, why: &str) {
        let addr = self
            .backend
            .as_ref()
            .map(|b| b.addr().clone())
            .unwrap_or_default();
        tracing::info!(backend = %addr, "closing a client session pinned to the old backend ({why})");
        self.error_kind("session_broken");
        self.drop_backend();
        self.inflight.retain(|p| p.local.is_some());
        self.queue.clear();
        let mut out = BytesMut::new();
        encode::error(
            &format!("ERR redis-ha: the backend changed (failover) while this connection was in {why}; reconnect and retry"),
            &mut out,
        );
        self.inflight.push_back(Pending {
            cmd: Command::from_args(&["QUIT"]),
            kind: Kind::Quit,
            shared: true,
            local: Some(out.freeze()),
            close_after: true,
        });
        self.reading = false;
    }

    fn backend_lost(&mut self, why: &str) {
        let Some(b) = &self.backend else { return };
        tracing::debug!(backend = %b.addr(), why, "backend connection lost");
        self.shared
            .routes
            .refresh(Refresh::BackendDown(b.addr().clone()));
        self.requeue_inflight();
        // Lost while sending (inside dispatch): nothing else may wake the
        // session, so retry at once.
        self.retry_at = Some(Instant::now());
    }

    /// Picks up a routing change noticed without an event.
    fn sync_routes(&mut self) {
        if self.routes_rx.has_changed().unwrap_or(false) {
            self.routes = self.routes_rx.borrow_and_update().clone();
            self.on_routes();
        }
    }

    fn on_routes(&mut self) {
        let routes = self.routes.clone();
        let Some(b) = &self.backend else { return };
        let addr = b.addr();
        let stale = match self.endpoint {
            // Fencing: nothing more goes to a master that is no longer adopted.
            Endpoint::write => routes.master.as_ref() != Some(addr),
            Endpoint::read => {
                // Still a replica, or the master serving reads as fallback.
                let fallback = routes.replicas.is_empty() && routes.master.as_ref() == Some(addr);
                !(routes.replicas.contains(addr) || fallback)
            }
        };
        if stale {
            if self.endpoint == Endpoint::write
                && routes.master.is_none()
                && self.pinned().is_some()
            {
                // Hold: a pinned session keeps its connection until a new
                // master is adopted (or the old one comes back).
                return;
            }
            self.requeue_inflight();
        }
    }

    fn on_timer(&mut self) {
        // dispatch() at the top of the loop retries or fails held requests.
    }
}
