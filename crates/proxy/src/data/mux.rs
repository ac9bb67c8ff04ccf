//! Shared backend connections for `--mode multiplex`: the stateless commands
//! of many client sessions go over a few pipelined connections per node.
//!
//! A session appends its requests' bytes to a connection's outgoing buffer
//! and its [`Inbox`] to the line of waiters under one lock, so wire order and
//! reply order agree; every write to the socket happens under that lock too,
//! without blocking. A writer task flushes whatever has accumulated: it runs
//! after the sessions already woken in the same tick, so all of them are in
//! the batch (flush on what is ready, never on a timer). A batch that reaches
//! [`FLUSH_AT`] bytes is written at once by the session that filled it. A reader
//! task measures replies with `frame_len` and hands each one, a slice of its
//! read buffer, to the waiter at the head of the line. A connection that
//! fails tells every waiter, per request, whether it was written
//! ([`Reply::Lost`]) or not ([`Reply::Unsent`]); the session's replay rule
//! decides what is sent again. A connection whose node leaves the routing
//! table is retired: it takes nothing new but still delivers the replies to
//! what was written, for up to [`DRAIN`].
//!
//! With `--write-ack`, a flush that carries writes awaiting replication ends
//! with one WAIT; its verdict goes to each session that had such a write in
//! the flush ([`Reply::Ack`]), after that session's replies.

use super::ack::WriteAck;
use super::backend_io::MuxSock;
use super::error::ClientError;
use crate::route::Routes;
use atomic_waker::AtomicWaker;
use bytes::{Buf, Bytes, BytesMut};
use prometheus_client::metrics::gauge::Gauge;
use redis_ha_resp::encode;
use redis_ha_resp::parse::frame_len;
use redis_ha_resp::{Access, Credentials};
use redis_ha_topology::Addr;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

/// What a shared connection hands back to a session.
pub enum Reply {
    Frame(Bytes),
    /// A piece of a big bulk reply ([`crate::data::big`]), passed on as it
    /// arrives; `true` on the last (which ends with the CRLF). If the
    /// connection fails before the last, [`Reply::Lost`] follows.
    Part(Bytes, bool),
    /// The connection failed before this request was written to it: it
    /// certainly did not run.
    Unsent,
    /// The connection failed after this request was written, before its
    /// reply: it may have run.
    Lost,
    /// `--write-ack`: the replicas' verdict on this session's replied writes
    /// sent before the WAIT.
    Ack(Result<(), ClientError>),
}

impl Reply {
    /// The reply bytes it carries.
    fn bytes(&self) -> usize {
        match self {
            Reply::Frame(b) | Reply::Part(b, _) => b.len(),
            Reply::Unsent | Reply::Lost | Reply::Ack(_) => 0,
        }
    }
}

/// Where a session's replies arrive, tagged with the session generation
/// they were sent in (replies to an abandoned generation are dropped).
/// Wakes the session through a single registered waker: cheaper, per reply,
/// than a `Notify` and its list of waiters.
#[derive(Default)]
pub struct Inbox {
    q: Mutex<VecDeque<(u64, Reply)>>,
    ready: AtomicBool,
    waker: AtomicWaker,
    /// Bytes of [`Reply::Part`]s delivered and not yet taken by the session:
    /// the reader reads no further while there are [`RELAY_AHEAD`] of them.
    held: AtomicUsize,
    /// The session took some, or ended.
    room: Notify,
    /// The session ended.
    closed: AtomicBool,
    /// Reply bytes queued here, not yet taken.
    queued: AtomicUsize,
    /// Reply bytes the session said it holds ([`Inbox::session_holds`]).
    session: AtomicUsize,
    /// `--client-output-limit` (0: none): past it, queued and held
    /// together, nothing more is queued and the session is to cut its
    /// client ([`Inbox::overflowed`]). The session cuts it itself as a
    /// rule; this is for a reader that runs ahead of it.
    limit: AtomicUsize,
    overflow: AtomicBool,
}

impl Inbox {
    /// Delivers several replies with one lock and one wake-up; to a session
    /// that ended they are dropped (consumed all the same: the iterator
    /// may be what moves the read buffer on).
    fn push_all(&self, rs: impl Iterator<Item = (u64, Reply)>) {
        if self.closed.load(Ordering::Acquire) || self.overflow.load(Ordering::Acquire) {
            return rs.for_each(drop);
        }
        let mut n = 0;
        {
            let mut q = lock(&self.q);
            q.extend(rs.inspect(|(_, r)| n += r.bytes()));
            let queued = self.queued.fetch_add(n, Ordering::Relaxed) + n;
            let limit = self.limit.load(Ordering::Relaxed);
            if limit > 0 && queued + self.session.load(Ordering::Relaxed) > limit {
                // Freed now: the session cuts its client when it wakes.
                self.overflow.store(true, Ordering::Release);
                q.clear();
                self.queued.store(0, Ordering::Relaxed);
            }
        }
        self.ready.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready once something has arrived since the last [`Inbox::take`].
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        if self.ready.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The session took `n` bytes of [`Reply::Part`]s.
    pub fn taken(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
        self.room.notify_one();
    }

    /// The session ended: nothing it was sent will be taken.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.room.notify_one();
    }

    /// Waits until the session has taken all but [`RELAY_AHEAD`] bytes of
    /// the pieces sent to it; false if it ended, or took nothing for
    /// [`RELAY_STALL`].
    async fn room_for_more(&self) -> bool {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            if self.held.load(Ordering::Acquire) <= RELAY_AHEAD {
                return true;
            }
            let took = self.room.notified();
            if tokio::time::timeout(RELAY_STALL, took).await.is_err() {
                return false;
            }
        }
    }

    /// Moves everything received so far into `into` (which must be empty),
    /// swapping buffers so neither side allocates in steady state.
    pub fn take(&self, into: &mut VecDeque<(u64, Reply)>) {
        let mut q = lock(&self.q);
        self.ready.store(false, Ordering::Release);
        self.queued.store(0, Ordering::Relaxed);
        std::mem::swap(&mut *q, into);
    }

    /// Sets the bytes queued and held together past which replies are
    /// dropped and the session told to cut its client; 0: no limit.
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// The session now holds `bytes` of replies for its client.
    pub fn session_holds(&self, bytes: usize) {
        self.session.store(bytes, Ordering::Relaxed);
    }

    /// Replies were dropped for the limit: the client must be cut.
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::Acquire)
    }

    /// Ready once replies were dropped for the limit (while the session
    /// takes none: its client is behind).
    pub fn poll_overflow(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        if self.overflowed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Reply bytes delivered and not yet taken.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Bytes of a big reply a shared connection reads ahead of its session.
const RELAY_AHEAD: usize = 1 << 20;

/// How long a shared connection waits for a session to take a piece of a
/// big reply (a client not reading it): then that client's reply is cut
/// ([`Reply::Lost`], which closes it) and the rest of the value is read and
/// dropped, so the connection serves its other sessions again.
const RELAY_STALL: Duration = Duration::from_secs(5);

/// Whose replies the next `n` are.
enum Dest {
    Session(Arc<Inbox>, u64),
    /// The proxy's WAIT: its verdict goes to these sessions.
    Gate(Vec<(Arc<Inbox>, u64)>),
}

impl Dest {
    /// Where some of a waiter's replies go while the rest are still due. A
    /// gate (one reply) is never split.
    fn part(&self) -> Dest {
        match self {
            Dest::Session(inbox, gen) => Dest::Session(inbox.clone(), *gen),
            Dest::Gate(_) => Dest::Gate(Vec::new()),
        }
    }
}

/// `n` consecutive requests of one session (a pipeline costs one entry).
struct Waiter {
    dest: Dest,
    n: usize,
    /// Where its requests start in the connection's byte stream: written
    /// once the socket has taken more than this.
    start: u64,
}

/// Bytes in a batch that make the session adding the last request write it
/// at once instead of leaving it to the writer task, so Redis starts on it
/// while the proxy still reads other clients (SET 256 B at pipeline 1, 50
/// clients: +8-10 % against one batch per tick; 1 KiB and 16 KiB did worse).
const FLUSH_AT: usize = 4096;

/// Whether a shared connection takes new requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Open,
    /// Its node left the routing table: no new requests; replies to those
    /// already written are still delivered, until [`DRAIN`] ends.
    Retiring,
    Dead,
}

/// How long a retired connection may still deliver replies to requests
/// written before the switch (a demoted master answers them, or refuses
/// with READONLY); what is still unanswered then is lost.
pub const DRAIN: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Outgoing {
    buf: BytesMut,
    waiting: VecDeque<Waiter>,
    /// The socket is full; the writer task waits for room.
    blocked: bool,
    phase: Phase,
    /// Bytes queued and bytes the socket took, since the connection opened.
    pushed: u64,
    flushed: u64,
    /// Sessions with writes awaiting replication since the last WAIT.
    gated: Vec<(Arc<Inbox>, u64)>,
}

/// What a flush achieved.
enum Flush {
    Done,
    Blocked,
    Failed(io::Error),
}

/// One shared, pipelined connection to a node.
pub struct MuxConn {
    pub addr: Addr,
    sock: MuxSock,
    out: Mutex<Outgoing>,
    wake: Notify,
    reader: Mutex<Option<AbortHandle>>,
    open: Gauge,
    ack: Option<WriteAck>,
}

/// Queues requests on a shared connection; the writer is woken when the
/// sender is dropped.
pub struct Sender<'a> {
    g: Option<MutexGuard<'a, Outgoing>>,
    conn: &'a MuxConn,
    inbox: &'a Arc<Inbox>,
    gen: u64,
    n: usize,
    start: u64,
    was_empty: bool,
    awaited: bool,
}

impl Sender<'_> {
    /// Queues the requests `encode` appends to the connection's buffer;
    /// it returns how many. Written in place: one copy, not two.
    pub fn push_with(&mut self, encode: impl FnOnce(&mut BytesMut) -> usize) -> usize {
        let g = self.g.as_mut().expect("live until drop");
        let before = g.buf.len();
        let n = encode(&mut g.buf);
        g.pushed += (g.buf.len() - before) as u64;
        self.n += n;
        n
    }

    /// Some of them are writes whose replies wait for the replicas: the
    /// flush that carries them ends with a WAIT.
    pub fn await_ack(&mut self) {
        self.awaited = true;
    }
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        let Some(mut g) = self.g.take() else { return };
        if self.n > 0 {
            g.waiting.push_back(Waiter {
                dest: Dest::Session(self.inbox.clone(), self.gen),
                n: self.n,
                start: self.start,
            });
            if self.awaited && self.conn.ack.is_some() {
                g.gated.push((self.inbox.clone(), self.gen));
            }
        }
        if g.buf.is_empty() || g.blocked {
            return; // nothing to send, or the writer waits for room already
        }
        if g.buf.len() >= FLUSH_AT {
            match self.conn.flush_locked(&mut g) {
                Flush::Done => {}
                Flush::Blocked => self.conn.wake.notify_one(),
                Flush::Failed(e) => {
                    drop(g);
                    self.conn.fail(&format!("write failed: {e}"));
                }
            }
        } else if self.was_empty {
            self.conn.wake.notify_one();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MuxConn {
    /// Starts queuing requests, or `None` if the connection takes no more
    /// (failed, or retired after a switch).
    pub fn sender<'a>(&'a self, inbox: &'a Arc<Inbox>, gen: u64) -> Option<Sender<'a>> {
        let g = lock(&self.out);
        if g.phase != Phase::Open {
            return None;
        }
        let was_empty = g.buf.is_empty();
        let start = g.pushed;
        Some(Sender {
            g: Some(g),
            conn: self,
            inbox,
            gen,
            n: 0,
            start,
            was_empty,
            awaited: false,
        })
    }

    pub fn is_dead(&self) -> bool {
        lock(&self.out).phase != Phase::Open
    }

    /// Takes no new requests; closes once those written are answered, or
    /// after [`DRAIN`]. Nothing new reaches a node that left the routing table.
    pub fn retire(self: &Arc<Self>) {
        {
            let mut g = lock(&self.out);
            if g.phase != Phase::Open {
                return;
            }
            g.phase = Phase::Retiring;
            if !g.waiting.is_empty() {
                let conn = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(DRAIN).await;
                    conn.fail("retired: its node left the routing table");
                });
                return;
            }
        }
        self.fail("retired: its node left the routing table");
    }

    /// Ends the batch with a WAIT if writes in it await replication.
    fn gate_locked(&self, g: &mut Outgoing) {
        let Some(ack) = &self.ack else { return };
        if g.gated.is_empty() {
            return;
        }
        let wait = ack.wait();
        g.waiting.push_back(Waiter {
            dest: Dest::Gate(std::mem::take(&mut g.gated)),
            n: 1,
            start: g.pushed,
        });
        g.buf.extend_from_slice(&wait.raw);
        g.pushed += wait.raw.len() as u64;
    }

    /// Writes what it can of the batch without blocking.
    fn flush_locked(&self, g: &mut Outgoing) -> Flush {
        self.gate_locked(g);
        while !g.buf.is_empty() {
            match self.sock.try_write(&g.buf) {
                Ok(n) => {
                    g.buf.advance(n);
                    g.flushed += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    g.blocked = true;
                    return Flush::Blocked;
                }
                Err(e) => return Flush::Failed(e),
            }
        }
        g.blocked = false;
        if g.buf.capacity() > 4 << 20 {
            // Do not keep a huge buffer around after one big value.
            g.buf = BytesMut::with_capacity(64 * 1024);
        } else {
            g.buf.clear();
        }
        Flush::Done
    }

    /// Marks the connection failed and tells every waiter.
    fn fail(&self, why: &str) {
        let waiting = {
            let mut g = lock(&self.out);
            if g.phase == Phase::Dead {
                return;
            }
            g.phase = Phase::Dead;
            g.buf = BytesMut::new();
            let flushed = g.flushed;
            (std::mem::take(&mut g.waiting), flushed)
        };
        let (waiting, flushed) = waiting;
        tracing::debug!(backend = %self.addr, why, waiting = waiting.len(), "shared backend connection lost");
        self.open.dec();
        for w in waiting {
            // Never written: certainly not run. Otherwise it may have run.
            let unsent = w.start >= flushed;
            let reply = move || if unsent { Reply::Unsent } else { Reply::Lost };
            match w.dest {
                Dest::Session(inbox, gen) => inbox.push_all((0..w.n).map(|_| (gen, reply()))),
                Dest::Gate(sessions) => {
                    for (inbox, gen) in sessions {
                        let lost = Reply::Ack(Err(WriteAck::lost(&self.addr)));
                        inbox.push_all(std::iter::once((gen, lost)));
                    }
                }
            }
        }
        // Closed now, whoever still holds this connection: nothing more may
        // reach a fenced node.
        self.sock.close();
        self.wake.notify_one();
        if let Some(r) = lock(&self.reader).take() {
            r.abort();
        }
    }
}

async fn writer(conn: Arc<MuxConn>) {
    loop {
        conn.wake.notified().await;
        loop {
            let r = {
                let mut g = lock(&conn.out);
                if g.phase == Phase::Dead {
                    return;
                }
                conn.flush_locked(&mut g)
            };
            match r {
                Flush::Done => break,
                // Room again: the next pass writes and clears `blocked`.
                Flush::Blocked => {
                    if let Err(e) = conn.sock.writable().await {
                        return conn.fail(&format!("write failed: {e}"));
                    }
                }
                Flush::Failed(e) => return conn.fail(&format!("write failed: {e}")),
            }
        }
    }
}

/// A read buffer left empty with more room than this is replaced by a
/// small one (a big value passed through must not stay allocated).
pub const SHRINK_ABOVE: usize = 4 << 20;

async fn reader(conn: Arc<MuxConn>, mut buf: BytesMut) {
    let mut lens: Vec<usize> = Vec::new();
    let mut ready: Vec<(Dest, usize)> = Vec::new();
    loop {
        // Complete replies first (some may have arrived with the handshake).
        let mut at = 0;
        loop {
            match frame_len(&buf[at..]) {
                Ok(Some(n)) => {
                    lens.push(n);
                    at += n;
                }
                Ok(None) => break,
                Err(e) => return conn.fail(&format!("protocol error from backend: {e}")),
            }
        }
        if !lens.is_empty() {
            {
                // Match replies to waiters: (inbox, gen, how many) per run.
                let mut g = lock(&conn.out);
                let mut left = lens.len();
                while left > 0 {
                    let Some(w) = g.waiting.front_mut() else {
                        drop(g);
                        return conn.fail("a reply nobody asked for");
                    };
                    let k = w.n.min(left);
                    w.n -= k;
                    left -= k;
                    let dest = if w.n == 0 {
                        g.waiting.pop_front().expect("front").dest
                    } else {
                        w.dest.part()
                    };
                    ready.push((dest, k));
                }
                if g.phase == Phase::Retiring && g.waiting.is_empty() {
                    drop(g);
                    deliver(&mut buf, &mut lens, &mut ready, conn.ack.as_ref());
                    return conn.fail("retired: every reply delivered");
                }
            }
            deliver(&mut buf, &mut lens, &mut ready, conn.ack.as_ref());
        }
        if buf.len() > 16 && buf[0] == b'$' {
            if let Some((_, total)) = super::big::bulk_head(&buf) {
                if let Err(why) = relay(&conn, &mut buf, total).await {
                    return conn.fail(&why);
                }
                continue;
            }
        }
        if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
            // After a big reply: its tail would keep the whole allocation.
            buf = BytesMut::with_capacity(64 * 1024);
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        // The writer shares the socket: wait for readability, then read.
        let read = loop {
            if let Err(e) = conn.sock.readable().await {
                break Err(e);
            }
            match conn.sock.read_draining(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => break r,
            }
        };
        match read {
            Ok(0) => return conn.fail("closed by the server"),
            Ok(_) => {}
            Err(e) => return conn.fail(&format!("read failed: {e}")),
        }
    }
}

/// Reads into `buf` what the socket has (waiting for it if needed).
async fn read_more(conn: &MuxConn, buf: &mut BytesMut) -> Result<(), String> {
    if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(64 * 1024);
    }
    loop {
        if let Err(e) = conn.sock.readable().await {
            return Err(format!("read failed: {e}"));
        }
        match conn.sock.read_draining(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Ok(0) => return Err("closed by the server".into()),
            Ok(_) => return Ok(()),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

/// The reply at the front of `buf` is a big bulk string of `total` bytes
/// not all here yet: it goes to its session in pieces as it arrives
/// ([`Reply::Part`]), reading no further ahead of the session than
/// [`RELAY_AHEAD`]. Meanwhile this connection's other replies wait behind
/// it (they follow it on the wire). A session that takes nothing for
/// [`RELAY_STALL`], or ends, is cut: it gets [`Reply::Lost`], and the rest
/// of the value is read and dropped. `Err`: the connection failed.
async fn relay(conn: &MuxConn, buf: &mut BytesMut, total: usize) -> Result<(), String> {
    let (inbox, gen) = {
        let g = lock(&conn.out);
        match g.waiting.front() {
            Some(Waiter {
                dest: Dest::Session(inbox, gen),
                ..
            }) => (inbox.clone(), *gen),
            _ => return Err("a reply nobody asked for".into()),
        }
    };
    let mut r = super::big::Relay { left: total };
    let mut owed = true;
    loop {
        let n = r.piece(buf.len());
        if n > 0 {
            let piece = buf.split_to(n).freeze();
            r.left -= n;
            let last = r.left == 0;
            if last && !piece.ends_with(b"\r\n") {
                return Err("protocol error from backend: bulk data not followed by CRLF".into());
            }
            if owed {
                inbox.held.fetch_add(n, Ordering::AcqRel);
                inbox.push_all(std::iter::once((gen, Reply::Part(piece, last))));
            }
            if last {
                if owed {
                    answered_front(conn);
                }
                return Ok(());
            }
        }
        if owed && !inbox.room_for_more().await {
            tracing::info!(backend = %conn.addr, "a big reply's client took none of it for a while: cut");
            inbox.push_all(std::iter::once((gen, Reply::Lost)));
            answered_front(conn);
            owed = false;
        }
        // (Cut: the pieces above are split off and dropped as they come.)
        read_more(conn, buf).await?;
    }
}

/// The waiter at the front had one reply delivered outside [`deliver`].
fn answered_front(conn: &MuxConn) {
    let mut g = lock(&conn.out);
    if let Some(w) = g.waiting.front_mut() {
        w.n -= 1;
        if w.n == 0 {
            g.waiting.pop_front();
        }
    }
}

/// Hands each waiter its replies: `lens` are the reply lengths at the front
/// of `buf`, `ready` says whose they are; a WAIT's reply becomes the verdict
/// for its sessions.
fn deliver(
    buf: &mut BytesMut,
    lens: &mut Vec<usize>,
    ready: &mut Vec<(Dest, usize)>,
    ack: Option<&WriteAck>,
) {
    let mut lens_it = lens.drain(..);
    for (dest, k) in ready.drain(..) {
        match dest {
            Dest::Session(inbox, gen) => {
                let frames = lens_it
                    .by_ref()
                    .take(k)
                    .map(|n| (gen, Reply::Frame(buf.split_to(n).freeze())));
                inbox.push_all(frames);
            }
            Dest::Gate(sessions) => {
                let Some(n) = lens_it.next() else { continue };
                let frame = buf.split_to(n);
                let verdict = ack.map_or(Ok(()), |a| a.judge(&frame));
                for (inbox, gen) in sessions {
                    inbox.push_all(std::iter::once((gen, Reply::Ack(verdict.clone()))));
                }
            }
        }
    }
}

/// The shared connections, a few per node.
pub struct Pool {
    per_node: usize,
    ack: Option<WriteAck>,
    access: Access,
    connect_timeout: Duration,
    /// Per node and protocol: RESP3 clients (HELLO 3) get connections of
    /// their own, since replies are encoded per connection.
    nodes: Mutex<HashMap<(Addr, Proto), Arc<Node>>>,
    /// Shared connections currently open (a metric).
    pub open: Gauge,
}

/// The protocol a shared connection speaks, as set by HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Resp2,
    Resp3,
}

#[derive(Default)]
struct Node {
    conns: Mutex<Vec<Arc<MuxConn>>>,
    connecting: tokio::sync::Mutex<()>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(
        per_node: usize,
        access: Access,
        connect_timeout: Duration,
        open: Gauge,
        ack: Option<WriteAck>,
    ) -> Pool {
        Pool {
            per_node: per_node.max(1),
            ack,
            access,
            connect_timeout,
            nodes: Mutex::new(HashMap::new()),
            open,
        }
    }

    /// A live shared connection to `addr` speaking `proto`, spreading
    /// sessions over up to `per_node` connections; opens one if needed.
    pub async fn get(&self, addr: &str, proto: Proto) -> io::Result<Arc<MuxConn>> {
        let node = lock(&self.nodes)
            .entry((addr.to_string(), proto))
            .or_default()
            .clone();
        let slot = node.next.fetch_add(1, Ordering::Relaxed) % self.per_node;
        if let Some(c) = self.pick(&node, slot) {
            return Ok(c);
        }
        // One connect at a time per node: a burst of new sessions shares it.
        let _g = node.connecting.lock().await;
        if let Some(c) = self.pick(&node, slot) {
            return Ok(c);
        }
        let c = self.connect(addr, proto).await?;
        lock(&node.conns).push(c.clone());
        Ok(c)
    }

    /// Closes shared connections to nodes that no longer serve (neither the
    /// master nor a replica in rotation): nothing more may reach a fenced
    /// master, and sessions waiting on them re-send elsewhere.
    pub fn fence(&self, routes: &Routes) {
        let nodes = lock(&self.nodes);
        for ((addr, _), node) in nodes.iter() {
            if routes.master.as_ref() == Some(addr) || routes.replicas.contains(addr) {
                continue;
            }
            for c in lock(&node.conns).drain(..) {
                c.retire();
            }
        }
    }

    /// A shared connection to `addr` failed: its siblings take no new
    /// requests either (they still deliver what was written to them). If
    /// the node died, a new connection fails at once instead of a sibling
    /// taking a request it can never answer; if only that connection was
    /// killed, new ones open.
    pub fn suspect(&self, addr: &str) {
        let nodes = lock(&self.nodes);
        for ((a, _), node) in nodes.iter() {
            if a == addr {
                for c in lock(&node.conns).drain(..) {
                    c.retire();
                }
            }
        }
    }

    /// Fences on every routing change, until the proxy stops.
    pub async fn watch(self: Arc<Self>, mut rx: watch::Receiver<Arc<Routes>>) {
        loop {
            let routes = rx.borrow_and_update().clone();
            self.fence(&routes);
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn pick(&self, node: &Node, slot: usize) -> Option<Arc<MuxConn>> {
        let mut conns = lock(&node.conns);
        conns.retain(|c| !c.is_dead());
        if conns.len() < self.per_node {
            return None;
        }
        Some(conns[slot % conns.len()].clone())
    }

    async fn connect(&self, addr: &str, proto: Proto) -> io::Result<Arc<MuxConn>> {
        let mut setup = BytesMut::new();
        let mut n = 0;
        // Named, so `CLIENT LIST` on the node shows what these are.
        const NAME: &str = "redis-ha-mux";
        let login = self.access.login.as_ref();
        if proto == Proto::Resp3 {
            // One HELLO switches the protocol, logs in and names it.
            let mut a = vec!["HELLO", "3"];
            if let Some(l) = login {
                a.extend(["AUTH", l.user_name(), &l.password]);
            }
            a.extend(["SETNAME", NAME]);
            encode::command(&a, &mut setup);
        } else {
            if let Some(l) = login {
                encode::command(&l.auth_args(), &mut setup);
                n += 1;
            }
            encode::command(&["CLIENT", "SETNAME", NAME], &mut setup);
        }
        n += 1;
        let tls = self.access.tls.as_deref();
        let (stream, mut buf) =
            super::handshake::open(addr, tls, &setup, n, self.connect_timeout).await?;
        let sock = MuxSock::new(stream)?;
        buf.reserve(64 * 1024);
        let conn = Arc::new(MuxConn {
            addr: addr.to_string(),
            sock,
            out: Mutex::new(Outgoing::default()),
            wake: Notify::new(),
            reader: Mutex::new(None),
            open: self.open.clone(),
            ack: self.ack,
        });
        let rd = tokio::spawn(reader(conn.clone(), buf));
        *lock(&conn.reader) = Some(rd.abort_handle());
        tokio::spawn(writer(conn.clone()));
        self.open.inc();
        tracing::debug!(backend = %addr, "shared backend connection opened");
        Ok(conn)
    }
}
