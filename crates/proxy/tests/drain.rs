//! Draining a proxy (what SIGTERM does) under INCR/RPUSH load, in both
//! connection modes and over the TLS endpoints: writers that reconnect to
//! a second proxy see no error at all; writers that never retry see at most
//! one closed connection each, and the command it cut did not run (Redis's
//! counter equals what was acknowledged, the list holds each value once).
//! Idle clients, subscribers and a blocked BLPOP are closed cleanly and at
//! once; `/readyz` turns not ready as soon as the drain starts.

mod common;
mod pki;

use bytes::BytesMut;
use common::*;
use pki::Pki;
use redis_ha_proxy::config::{ConnMode, TlsEndpoints};
use redis_ha_proxy::data::drain::Drained;
use redis_ha_proxy::data::tls::AuthClients;
use redis_ha_proxy::server::ProxyHandle;
use redis_ha_resp::tls::Tls;
use redis_ha_resp::Frame;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where clients connect: the plain write endpoint, or the TLS one.
#[derive(Clone)]
enum Dial {
    Plain(SocketAddr),
    Tls(Arc<Tls>, SocketAddr),
}

impl Dial {
    fn of(p: &ProxyHandle, tls: Option<&Arc<Tls>>) -> Dial {
        match tls {
            None => Dial::Plain(p.write_addr()),
            Some(t) => Dial::Tls(t.clone(), p.tls_write_addr.expect("TLS write endpoint")),
        }
    }
}

/// A bare RESP client: one request at a time, errors as Redis sent them.
struct Client {
    s: Box<dyn Io>,
    buf: BytesMut,
}

/// What one request got.
#[derive(Debug)]
enum Outcome {
    Reply(Frame),
    /// The connection closed (or reset) before the reply.
    Closed(String),
}

impl Client {
    async fn connect(d: &Dial) -> std::io::Result<Client> {
        let s: Box<dyn Io> = match d {
            Dial::Plain(a) => Box::new(TcpStream::connect(a).await?),
            Dial::Tls(t, a) => {
                let tcp = TcpStream::connect(a).await?;
                Box::new(t.handshake("localhost:0", tcp).await?)
            }
        };
        Ok(Client {
            s,
            buf: BytesMut::new(),
        })
    }

    async fn send(&mut self, args: &[&str]) -> Outcome {
        let mut out = BytesMut::new();
        redis_ha_resp::encode::command(args, &mut out);
        if let Err(e) = self.s.write_all(&out).await {
            return Outcome::Closed(e.to_string());
        }
        self.reply().await
    }

    async fn reply(&mut self) -> Outcome {
        loop {
            match redis_ha_resp::parse::parse_frame(&mut self.buf) {
                Ok(Some(f)) => return Outcome::Reply(f),
                Ok(None) => {}
                Err(e) => panic!("bad RESP from the proxy: {e}"),
            }
            let read = self.s.read_buf(&mut self.buf);
            match tokio::time::timeout(Duration::from_secs(20), read).await {
                Err(_) => panic!("no reply in 20 s"),
                Ok(Ok(0)) => return Outcome::Closed("end of stream".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Outcome::Closed(e.to_string()),
            }
        }
    }
}

/// One writer's tally.
#[derive(Debug, Default)]
struct Tally {
    incr_acked: u64,
    rpush_acked: u64,
    /// Closed connections, why (a non-retrying writer stops at the first).
    closed: Vec<String>,
    /// Error replies: none are expected.
    errors: Vec<String>,
}

/// INCR `c:ID` and RPUSH `l:ID N` in turn until `stop`; on a closed
/// connection a retrying writer reconnects to `next` and sends the same
/// command again (it did not run), a non-retrying one stops.
async fn writer(
    id: usize,
    first: Dial,
    next: Option<Dial>,
    acks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let (c, l) = (format!("c:{id}"), format!("l:{id}"));
    let mut t = Tally::default();
    let mut cl = Client::connect(&first).await.expect("connect");
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = (t.rpush_acked + 1).to_string();
        let args: &[&str] = if i.is_multiple_of(2) {
            &["INCR", &c]
        } else {
            &["RPUSH", &l, &n]
        };
        match cl.send(args).await {
            Outcome::Reply(Frame::Error(e)) => {
                t.errors.push(String::from_utf8_lossy(&e).into_owned());
                return t;
            }
            Outcome::Reply(_) => {
                if i.is_multiple_of(2) {
                    t.incr_acked += 1;
                } else {
                    t.rpush_acked += 1;
                }
                i += 1;
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Closed(why) => {
                t.closed.push(why);
                let Some(d) = &next else { return t };
                cl = Client::connect(d)
                    .await
                    .expect("reconnect to the other proxy");
            }
        }
    }
    t
}

async fn drain_under_load(mode: ConnMode, client_tls: bool) {
    let pki = Pki::new();
    let tweak = |c: &mut redis_ha_proxy::config::ProxyConfig| {
        c.mode = mode;
        if client_tls {
            c.tls = Some(TlsEndpoints {
                files: pki.files("server", AuthClients::No),
                write_listen: Some("127.0.0.1:0".into()),
                read_listen: None,
            });
        }
    };
    let (t, mut a) = setup(tweak).await;
    // The proxy the retrying writers move to (a restart's new process).
    let mut cfg_b =
        redis_ha_proxy::config::ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg_b.backend_tls = backend_tls(&t);
    tweak(&mut cfg_b);
    let b = redis_ha_proxy::server::start(cfg_b).await.expect("proxy b");
    b.wait_master(Duration::from_secs(10)).await.unwrap();
    let tls = client_tls.then(|| Arc::new(pki.client("ca.pem", false)));
    let (da, db) = (Dial::of(&a, tls.as_ref()), Dial::of(&b, tls.as_ref()));

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut acks = Vec::new();
    for id in 0..8 {
        let retrying = id % 2 == 0;
        let n = Arc::new(AtomicU64::new(0));
        acks.push(n.clone());
        let next = retrying.then(|| db.clone());
        tasks.push(tokio::spawn(writer(id, da.clone(), next, n, stop.clone())));
    }
    poll(
        "every writer under way",
        Duration::from_secs(20),
        || async {
            acks.iter()
                .all(|n| n.load(Ordering::Relaxed) >= 20)
                .then_some(())
        },
    )
    .await;
    let drained = a
        .drain(Duration::from_millis(200), Duration::from_secs(10))
        .await;
    assert_eq!(drained, Drained::Finished, "every session closed in time");
    // The retrying writers go on through the other proxy.
    let after: Vec<u64> = acks.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    poll(
        "retrying writers on the other proxy",
        Duration::from_secs(20),
        || async {
            (0..8)
                .step_by(2)
                .all(|i| acks[i].load(Ordering::Relaxed) >= after[i] + 20)
                .then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let master = t.master().await.unwrap();
    for (id, task) in tasks.into_iter().enumerate() {
        let tally = task.await.unwrap();
        let retrying = id % 2 == 0;
        assert!(tally.errors.is_empty(), "writer {id}: {:?}", tally.errors);
        if retrying {
            assert!(tally.closed.len() <= 1, "writer {id}: {tally:?}");
        } else {
            assert_eq!(
                tally.closed.len(),
                1,
                "writer {id} was closed once: {tally:?}"
            );
        }
        let count = node_query(&t, &master, &["GET", &format!("c:{id}")])
            .await
            .unwrap();
        assert_eq!(
            text(&count).parse::<u64>().unwrap(),
            tally.incr_acked,
            "writer {id}: INCR ran exactly as acknowledged ({tally:?})"
        );
        let l = format!("l:{id}");
        let list = node_query(&t, &master, &["LRANGE", &l, "0", "-1"])
            .await
            .unwrap();
        let Frame::Array(items) = list else {
            panic!("LRANGE: {list:?}")
        };
        let want: Vec<String> = (1..=tally.rpush_acked).map(|n| n.to_string()).collect();
        let got: Vec<String> = items.iter().map(text).collect();
        assert_eq!(got, want, "writer {id}: RPUSH ran exactly as acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_dedicated() {
    drain_under_load(ConnMode::Dedicated, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_multiplex() {
    drain_under_load(ConnMode::Multiplex, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_tls_dedicated() {
    drain_under_load(ConnMode::Dedicated, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_tls_multiplex() {
    drain_under_load(ConnMode::Multiplex, true).await
}

/// Idle clients, a subscriber and a blocked BLPOP all end at once with a
/// clean close (no error reply), the BLPOP without popping; `/readyz`
/// says not ready during the grace while the port still accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscribed_and_blocked_clients_close_at_once() {
    let (t, mut p) = setup(|c| c.mode = ConnMode::Multiplex).await;
    let d = Dial::of(&p, None);
    let mut idle = Client::connect(&d).await.unwrap();
    assert!(matches!(
        idle.send(&["PING"]).await,
        Outcome::Reply(Frame::Simple(_))
    ));
    let mut sub = Client::connect(&d).await.unwrap();
    assert!(matches!(
        sub.send(&["SUBSCRIBE", "ch"]).await,
        Outcome::Reply(_)
    ));
    let mut blocked = Client::connect(&d).await.unwrap();
    let mut out = BytesMut::new();
    redis_ha_resp::encode::command(&["BLPOP", "q", "0"], &mut out);
    blocked.s.write_all(&out).await.unwrap();
    let master = t.master().await.unwrap();
    poll(
        "BLPOP blocked on Redis",
        Duration::from_secs(10),
        || async {
            let f = node_query(&t, &master, &["INFO", "clients"]).await.ok()?;
            text(&f).contains("blocked_clients:1").then_some(())
        },
    )
    .await;

    let admin = p.admin_addr;
    let write = p.write_addr();
    let drain = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let d = p
            .drain(Duration::from_millis(1500), Duration::from_secs(30))
            .await;
        (d, started.elapsed())
    });
    poll("/readyz not ready", Duration::from_secs(1), || async {
        (http_get(admin, "/readyz").await.0 == 503).then_some(())
    })
    .await;
    let mut late = Client::connect(&Dial::Plain(write))
        .await
        .expect("accepted in the grace");
    assert!(matches!(
        late.send(&["PING"]).await,
        Outcome::Reply(Frame::Simple(_))
    ));
    let (drained, took) = drain.await.unwrap();
    assert_eq!(drained, Drained::Finished);
    assert!(
        took < Duration::from_secs(10),
        "closed at once, not at the timeout: {took:?}"
    );
    for (what, c) in [
        ("idle", &mut idle),
        ("subscriber", &mut sub),
        ("late", &mut late),
    ] {
        match c.reply().await {
            Outcome::Closed(_) => {}
            r => panic!("{what}: a clean close expected, got {r:?}"),
        }
    }
    match blocked.reply().await {
        Outcome::Closed(_) => {}
        r => panic!("BLPOP: a clean close expected, got {r:?}"),
    }
    node_query(&t, &master, &["RPUSH", "q", "x"]).await.unwrap();
    let n = node_query(&t, &master, &["LLEN", "q"]).await.unwrap();
    assert_eq!(
        n.as_int(),
        Some(1),
        "the BLPOP that was closed popped nothing"
    );
}

/// `POST /drain` asks the process to drain (the CLI then drains as on
/// SIGTERM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_drain_asks_for_a_drain() {
    let (_t, p) = setup(|_| {}).await;
    let mut s = TcpStream::connect(p.admin_addr).await.unwrap();
    s.write_all(b"POST /drain HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let r = String::from_utf8_lossy(&buf);
    assert!(
        r.starts_with("HTTP/1.0 202") || r.starts_with("HTTP/1.1 202"),
        "{r}"
    );
    tokio::time::timeout(Duration::from_secs(1), p.drain_state.requested())
        .await
        .expect("the drain was asked for");
}
