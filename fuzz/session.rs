//! The `session` fuzz target's body, shared with the stable replay test
//! (`crates/proxy/tests/fuzz_session.rs`): a whole proxy session fed
//! arbitrary client bytes against a scripted backend.
//!
//! Why real loopback TCP rather than an in-memory stream: the session reads
//! its client through `client_io` (a plain `TcpStream`'s halves, with its
//! own draining `recv`) and opens backends through `handshake::open`
//! (`TcpStream::connect`); an in-memory stream would need a new client and
//! backend type in the product code, and would skip the very code under
//! test. Loopback costs a few connects per input, which is cheap next to
//! starting anything, so the proxies and the scripted nodes start once per
//! process and every input reuses them.
//!
//! The world: one scripted sentinel naming one scripted master and one
//! scripted replica (tiny servers that parse frames with `redis_ha_resp`
//! and answer each one deterministically, roughly as Redis would), and four
//! real proxies in front of them (dedicated; multiplex; multiplex with a
//! password clients must log in with; dedicated with `--write-ack`).
//!
//! An input's first byte picks the proxy, the endpoint and how the rest is
//! cut into writes. Checked: nothing panics; the proxy answers and closes
//! within [`DEADLINE`] after the client half-closes; what it sent is whole
//! RESP frames; and afterwards a fresh client still gets `+PONG`.
//!
//! Two made-up commands let the client bytes script the backend as well:
//! `FUZZ.RAW <bytes>` makes the node send `<bytes>` as its reply (when they
//! are one complete frame, or bytes the framer rejects), `FUZZ.CLOSE` makes
//! it drop the connection. The proxy forwards them as unknown commands.

use bytes::BytesMut;
use redis_ha_proxy::config::{ConnMode, ProxyConfig};
use redis_ha_proxy::data::ack::WriteAck;
use redis_ha_proxy::data::lookup;
use redis_ha_proxy::server::{start, ProxyHandle};
use redis_ha_resp::parse::{frame_len, parse_command};
use redis_ha_resp::{Command, Limits};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// How long the proxy may take to answer everything and close after the
/// client half-closed. Far above what the fuzz proxies wait for on purpose:
/// each refusal that means "not run" (READONLY...) or lost link can hold
/// for `--failover-hold` (100 ms here), a few dozen of them fit in an input.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The master name the scripted sentinel knows.
const NAME: &str = "fuzz";
/// The password of the proxy whose clients must log in.
const PASSWORD: &str = "fuzzpw";

/// The proxies and the runtime they run on, started once per process.
struct World {
    rt: Runtime,
    proxies: Vec<Proxy>,
}

/// One proxy's endpoints and whether clients must log in.
struct Proxy {
    write: SocketAddr,
    read: SocketAddr,
    password: Option<&'static str>,
    _handle: ProxyHandle,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // One worker: the proxies run beside the fuzz loop's thread, which
        // drives the client (the machine is shared; two threads suffice).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let proxies = rt.block_on(start_world());
        World { rt, proxies }
    })
}

async fn start_world() -> Vec<Proxy> {
    let master = listen().await;
    let replica = listen().await;
    let sentinel = listen().await;
    let (m, r) = (master.local_addr().unwrap(), replica.local_addr().unwrap());
    tokio::spawn(serve(master, Node::Master { replica: r }));
    tokio::spawn(serve(replica, Node::Replica { master: m }));
    let s = sentinel.local_addr().unwrap();
    tokio::spawn(serve(
        sentinel,
        Node::Sentinel {
            master: m,
            replica: r,
        },
    ));
    let mut out = Vec::new();
    for i in 0..4 {
        let mut cfg = ProxyConfig::for_test(vec![s.to_string()], NAME);
        cfg.failover_hold = Duration::from_millis(100);
        cfg.connect_timeout = Duration::from_millis(500);
        cfg.mode = if i % 2 == 1 {
            ConnMode::Multiplex
        } else {
            ConnMode::Dedicated
        };
        if i == 2 {
            cfg.login = Some(redis_ha_resp::Login::default_user(PASSWORD));
        }
        if i == 3 {
            cfg.write_ack = Some(WriteAck::parse("replicas=1,timeout=100").unwrap());
        }
        let password = cfg.login.is_some().then_some(PASSWORD);
        let p = start(cfg).await.expect("proxy");
        p.wait_master(Duration::from_secs(10))
            .await
            .expect("master");
        // The read endpoint uses the replica once its health check is in.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while p.routes.current().replicas.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "replica healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        out.push(Proxy {
            write: p.write_addr(),
            read: p.read_addr(),
            password,
            _handle: p,
        });
    }
    out
}

async fn listen() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// What a scripted node plays.
#[derive(Clone, Copy)]
enum Node {
    Master {
        replica: SocketAddr,
    },
    Replica {
        master: SocketAddr,
    },
    Sentinel {
        master: SocketAddr,
        replica: SocketAddr,
    },
}

async fn serve(l: TcpListener, node: Node) {
    loop {
        let Ok((sock, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(conn(sock, node));
    }
}

/// One connection to a scripted node: frames in, replies out, until EOF,
/// QUIT or FUZZ.CLOSE.
async fn conn(mut sock: TcpStream, node: Node) {
    let _ = sock.set_nodelay(true);
    let mut st = ConnState::default();
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    loop {
        loop {
            match parse_command(&mut buf, &Limits::default()) {
                Ok(Some(c)) => {
                    if st.answer(node, &c, &mut out) == Then::Close {
                        let _ = sock.write_all(&out).await;
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if !out.is_empty() {
            if sock.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// What a scripted connection remembers.
#[derive(Default)]
struct ConnState {
    resp3: bool,
    authed: bool,
    /// Replies in the open MULTI, if one is open.
    multi: Option<usize>,
    subscriptions: i64,
    /// CLIENT REPLY OFF; `skip`: SKIP, for the next command.
    reply_off: bool,
    skip: bool,
    monitor: bool,
}

#[derive(PartialEq)]
enum Then {
    Go,
    Close,
}

fn simple(s: &str, out: &mut BytesMut) {
    out.extend_from_slice(format!("+{s}\r\n").as_bytes());
}

fn error(s: &str, out: &mut BytesMut) {
    out.extend_from_slice(format!("-{s}\r\n").as_bytes());
}

fn int(n: i64, out: &mut BytesMut) {
    out.extend_from_slice(format!(":{n}\r\n").as_bytes());
}

fn bulk(b: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

fn array(n: usize, out: &mut BytesMut) {
    out.extend_from_slice(format!("*{n}\r\n").as_bytes());
}

/// A flat list of field/value pairs (what SENTINEL MASTER/REPLICAS give).
fn pairs(kv: &[(&str, String)], out: &mut BytesMut) {
    array(kv.len() * 2, out);
    for (k, v) in kv {
        bulk(k.as_bytes(), out);
        bulk(v.as_bytes(), out);
    }
}

fn host_port(a: SocketAddr) -> [(&'static str, String); 2] {
    [("ip", a.ip().to_string()), ("port", a.port().to_string())]
}

impl ConnState {
    /// Answers one command into `out`.
    fn answer(&mut self, node: Node, c: &Command, out: &mut BytesMut) -> Then {
        let upper = c.name_upper();
        let arg = |i| c.arg(i).unwrap_or_default();
        if let Node::Sentinel { master, replica } = node {
            return sentinel(c, master, replica, out);
        }
        // Redis's own checks first: login, pub/sub context, MULTI queueing.
        if !self.authed && c.is("AUTH") {
            // Only the password proxy's nodes ask; any node accepts it.
            let pw = if c.argc() == 3 { arg(2) } else { arg(1) };
            if pw == PASSWORD.as_bytes() {
                self.authed = true;
                simple("OK", out);
            } else {
                error("WRONGPASS invalid username-password pair", out);
            }
            return Then::Go;
        }
        let muted = self.reply_off || std::mem::take(&mut self.skip);
        let mut reply = BytesMut::new();
        let then = self.reply(node, c, &upper, &mut reply);
        if !muted || (c.is("CLIENT") && c.arg_is(1, "REPLY") && c.arg_is(2, "ON")) {
            out.extend_from_slice(&reply);
        }
        then
    }

    fn reply(&mut self, node: Node, c: &Command, upper: &str, out: &mut BytesMut) -> Then {
        let arg = |i| c.arg(i).unwrap_or_default();
        match upper {
            "QUIT" => {
                simple("OK", out);
                return Then::Close;
            }
            "RESET" => {
                *self = ConnState::default();
                simple("RESET", out);
                return Then::Go;
            }
            "FUZZ.CLOSE" => return Then::Close,
            "FUZZ.RAW" => {
                // Only what cannot leave the proxy waiting for the rest of a
                // frame: one whole frame, or bytes the framer refuses.
                let raw = arg(1);
                match frame_len(raw) {
                    Ok(Some(n)) if n == raw.len() => {
                        out.extend_from_slice(raw);
                        // A push is no reply (Redis sends them beside
                        // replies): the reply still follows.
                        if raw.first() == Some(&b'>') {
                            simple("OK", out);
                        }
                    }
                    Err(_) => out.extend_from_slice(raw),
                    _ => error("ERR FUZZ.RAW wants one whole frame", out),
                }
                return Then::Go;
            }
            _ => {}
        }
        if self.monitor {
            return Then::Go; // MONITOR streams nothing here
        }
        if let Some(n) = self.multi.as_mut() {
            if !matches!(upper, "EXEC" | "DISCARD" | "MULTI" | "WATCH") {
                *n += 1;
                simple("QUEUED", out);
                return Then::Go;
            }
        }
        let subscribed = self.subscriptions > 0 && !self.resp3;
        let sub_ok = matches!(
            upper,
            "SUBSCRIBE"
                | "PSUBSCRIBE"
                | "SSUBSCRIBE"
                | "UNSUBSCRIBE"
                | "PUNSUBSCRIBE"
                | "SUNSUBSCRIBE"
                | "PING"
        );
        if subscribed && !sub_ok {
            error("ERR Can't execute: only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", out);
            return Then::Go;
        }
        match upper {
            "PING" if subscribed => {
                array(2, out);
                bulk(b"pong", out);
                bulk(arg(1), out);
            }
            "PING" if c.argc() > 1 => bulk(arg(1), out),
            "PING" => simple("PONG", out),
            "ECHO" if c.argc() == 2 => bulk(arg(1), out),
            "HELLO" => self.hello(c, node, out),
            "SELECT" => match std::str::from_utf8(arg(1))
                .ok()
                .and_then(|s| s.parse::<u8>().ok())
            {
                Some(n) if n < 16 => simple("OK", out),
                _ => error("ERR DB index is out of range", out),
            },
            "MULTI" if self.multi.is_some() => error("ERR MULTI calls can not be nested", out),
            "MULTI" => {
                self.multi = Some(0);
                simple("OK", out);
            }
            "EXEC" => match self.multi.take() {
                Some(n) => {
                    array(n, out);
                    for _ in 0..n {
                        simple("OK", out);
                    }
                }
                None => error("ERR EXEC without MULTI", out),
            },
            "DISCARD" => match self.multi.take() {
                Some(_) => simple("OK", out),
                None => error("ERR DISCARD without MULTI", out),
            },
            "WATCH" if self.multi.is_some() => error("ERR WATCH inside MULTI is not allowed", out),
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" if c.argc() < 2 => {
                error("ERR wrong number of arguments", out)
            }
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" => {
                let kind = upper.to_ascii_lowercase();
                for ch in c.args().skip(1) {
                    self.subscriptions += 1;
                    self.push(3, out);
                    bulk(kind.as_bytes(), out);
                    bulk(ch, out);
                    int(self.subscriptions, out);
                }
            }
            "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => {
                let kind = upper.to_ascii_lowercase();
                let chans: Vec<&[u8]> = c.args().skip(1).collect();
                if chans.is_empty() {
                    self.subscriptions = 0;
                    self.push(3, out);
                    bulk(kind.as_bytes(), out);
                    out.extend_from_slice(b"$-1\r\n");
                    int(0, out);
                }
                for ch in chans {
                    self.subscriptions = (self.subscriptions - 1).max(0);
                    self.push(3, out);
                    bulk(kind.as_bytes(), out);
                    bulk(ch, out);
                    int(self.subscriptions, out);
                }
            }
            "MONITOR" => {
                self.monitor = true;
                simple("OK", out);
            }
            "CLIENT" if c.arg_is(1, "REPLY") => {
                if c.arg_is(2, "ON") {
                    self.reply_off = false;
                    simple("OK", out);
                } else if c.arg_is(2, "OFF") {
                    self.reply_off = true;
                } else if c.arg_is(2, "SKIP") {
                    self.skip = true;
                } else {
                    error("ERR syntax error", out);
                }
            }
            "CLIENT" if c.arg_is(1, "ID") => int(7, out),
            "ROLE" => role(node, out),
            "INFO" => info(node, out),
            "WAIT" => int(1, out),
            _ => by_table(c, out),
        }
        Then::Go
    }

    /// A pub/sub message header: an array in RESP2, a push in RESP3.
    fn push(&self, n: usize, out: &mut BytesMut) {
        let t = if self.resp3 { '>' } else { '*' };
        out.extend_from_slice(format!("{t}{n}\r\n").as_bytes());
    }

    fn hello(&mut self, c: &Command, node: Node, out: &mut BytesMut) {
        let proto = match c.arg(1) {
            None => {
                if self.resp3 {
                    3
                } else {
                    2
                }
            }
            Some(b"2") => 2,
            Some(b"3") => 3,
            Some(_) => return error("NOPROTO unsupported protocol version", out),
        };
        let mut i = 2;
        while i < c.argc() {
            if c.arg_is(i, "AUTH") && i + 2 < c.argc() {
                if c.arg(i + 2) != Some(PASSWORD.as_bytes()) {
                    return error("WRONGPASS invalid username-password pair", out);
                }
                self.authed = true;
                i += 3;
            } else if c.arg_is(i, "SETNAME") && i + 1 < c.argc() {
                i += 2;
            } else {
                return error("ERR Syntax error in HELLO option", out);
            }
        }
        self.resp3 = proto == 3;
        let role = if matches!(node, Node::Master { .. }) {
            "master"
        } else {
            "replica"
        };
        let kv = [
            ("server", "redis"),
            ("version", "7.2.0"),
            ("proto", if self.resp3 { "3" } else { "2" }),
            ("mode", "standalone"),
            ("role", role),
        ];
        if self.resp3 {
            out.extend_from_slice(format!("%{}\r\n", kv.len()).as_bytes());
        } else {
            array(kv.len() * 2, out);
        }
        for (k, v) in kv {
            bulk(k.as_bytes(), out);
            bulk(v.as_bytes(), out);
        }
    }
}

/// The sentinel: the views the control plane asks for, and a PSUBSCRIBE
/// that never sends an event (nothing fails over here).
fn sentinel(c: &Command, master: SocketAddr, replica: SocketAddr, out: &mut BytesMut) -> Then {
    let sub = c.arg(1).map(|s| s.to_ascii_uppercase()).unwrap_or_default();
    let ours = c.arg(2) == Some(NAME.as_bytes());
    if c.is("PING") {
        simple("PONG", out);
    } else if c.is("PSUBSCRIBE") || c.is("SUBSCRIBE") {
        let kind = c.name().to_ascii_lowercase();
        for (n, ch) in c.args().skip(1).enumerate() {
            array(3, out);
            bulk(&kind, out);
            bulk(ch, out);
            int(n as i64 + 1, out);
        }
    } else if !c.is("SENTINEL") || !ours {
        error("ERR unknown command or master name", out);
    } else if sub == b"GET-MASTER-ADDR-BY-NAME" {
        array(2, out);
        bulk(master.ip().to_string().as_bytes(), out);
        bulk(master.port().to_string().as_bytes(), out);
    } else if sub == b"MASTER" {
        let mut kv = vec![("name", NAME.to_string())];
        kv.extend(host_port(master));
        kv.extend([
            ("flags", "master".into()),
            ("config-epoch", "0".into()),
            ("num-slaves", "1".into()),
        ]);
        pairs(&kv, out);
    } else if sub == b"REPLICAS" || sub == b"SLAVES" {
        array(1, out);
        let mut kv = vec![("name", replica.to_string())];
        kv.extend(host_port(replica));
        kv.extend([
            ("flags", "slave".into()),
            ("master-link-status", "ok".into()),
        ]);
        pairs(&kv, out);
    } else if sub == b"SENTINELS" {
        array(0, out);
    } else {
        error("ERR unknown sentinel subcommand", out);
    }
    Then::Go
}

fn role(node: Node, out: &mut BytesMut) {
    match node {
        Node::Master { replica } => {
            array(3, out);
            bulk(b"master", out);
            int(0, out);
            array(1, out);
            array(3, out);
            bulk(replica.ip().to_string().as_bytes(), out);
            bulk(replica.port().to_string().as_bytes(), out);
            bulk(b"0", out);
        }
        Node::Replica { master } => {
            array(5, out);
            bulk(b"slave", out);
            bulk(master.ip().to_string().as_bytes(), out);
            int(master.port().into(), out);
            bulk(b"connected", out);
            int(0, out);
        }
        Node::Sentinel { .. } => unreachable!("answered by sentinel()"),
    }
}

fn info(node: Node, out: &mut BytesMut) {
    let text = match node {
        Node::Master { replica } => format!(
            "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip={},port={},state=online,offset=0,lag=0\r\nmaster_repl_offset:0\r\n",
            replica.ip(),
            replica.port()
        ),
        Node::Replica { master } => format!(
            "# Replication\r\nrole:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:up\r\nslave_repl_offset:0\r\n",
            master.ip(),
            master.port()
        ),
        Node::Sentinel { .. } => unreachable!("answered by sentinel()"),
    };
    bulk(text.as_bytes(), out);
}

/// Any other command, by Redis's command table: unknown, wrong arity, a
/// read (a bulk: its first argument), or a write (+OK).
fn by_table(c: &Command, out: &mut BytesMut) {
    let Some(spec) = lookup(c) else {
        return error("ERR unknown command", out);
    };
    let argc = c.argc() as i32;
    let arity_ok = if spec.arity >= 0 {
        argc == spec.arity
    } else {
        argc >= -spec.arity
    };
    if !arity_ok {
        error("ERR wrong number of arguments", out);
    } else if spec.flags & redis_ha_proxy::data::table::flag::READONLY != 0 {
        match c.arg(1) {
            Some(a) => bulk(a, out),
            None => out.extend_from_slice(b"$-1\r\n"),
        }
    } else if spec.flags & redis_ha_proxy::data::table::flag::BLOCKING != 0 {
        // As if the timeout passed at once: nothing to block on here.
        out.extend_from_slice(b"*-1\r\n");
    } else {
        simple("OK", out);
    }
}

/// One fuzz input: see the module docs.
pub fn session(data: &[u8]) {
    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    let w = world();
    let proxy = &w.proxies[(knob & 3) as usize];
    let addr = if knob & 4 == 0 {
        proxy.write
    } else {
        proxy.read
    };
    // 0: one write; else pieces of 1, 2, 4... bytes.
    let step = match knob >> 3 {
        0 => input.len().max(1),
        k => 1 << ((k - 1) % 12),
    };
    w.rt.block_on(async {
        let mut got = Vec::new();
        let reset = tokio::time::timeout(DEADLINE, exchange(addr, input, step, &mut got))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the proxy neither answered nor closed within {DEADLINE:?}; it sent {:?}",
                    String::from_utf8_lossy(&got)
                )
            })
            .unwrap_or_else(|e| panic!("client i/o failed: {e}"));
        let mut rest = &got[..];
        while !rest.is_empty() {
            match frame_len(rest) {
                Ok(Some(n)) => rest = &rest[n..],
                // A reset may cut what was in flight.
                Ok(None) if reset => break,
                r => panic!(
                    "the proxy sent a broken frame ({r:?}) at byte {} of {:?}",
                    got.len() - rest.len(),
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        let ping = tokio::time::timeout(DEADLINE, fresh_ping(addr, proxy.password))
            .await
            .expect("a fresh client's PING answered in time");
        assert_eq!(
            ping.expect("a fresh client's PING"),
            expected_pong(proxy.password)
        );
    });
}

/// Writes `input` in pieces of `step`, half-closes, and reads into `got`
/// until EOF; true if the connection was reset instead (the proxy closed
/// with input unread, after QUIT or a protocol error).
async fn exchange(
    addr: SocketAddr,
    input: &[u8],
    step: usize,
    got: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let (mut r, mut w) = sock.into_split();
    let write = async {
        for piece in input.chunks(step) {
            // The proxy may close first (QUIT, a protocol error): fine.
            if w.write_all(piece).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        let _ = w.shutdown().await;
    };
    let read = async {
        loop {
            match r.read_buf(got).await {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    };
    let ((), reset) = tokio::join!(write, read);
    reset
}

fn expected_pong(password: Option<&str>) -> Vec<u8> {
    match password {
        Some(_) => b"+OK\r\n+PONG\r\n".to_vec(),
        None => b"+PONG\r\n".to_vec(),
    }
}

/// A new client's `PING` (after `AUTH` where clients log in): the bytes back.
async fn fresh_ping(addr: SocketAddr, password: Option<&str>) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = BytesMut::new();
    if let Some(pw) = password {
        redis_ha_resp::encode::command(&["AUTH", pw], &mut req);
    }
    redis_ha_resp::encode::command(&["PING"], &mut req);
    s.write_all(&req).await?;
    let want = expected_pong(password).len();
    let mut got = vec![0; want];
    s.read_exact(&mut got).await?;
    Ok(got)
}
