//! Reply budgets (issue 28): a client that pipelines reads of big values
//! and does not read its replies must not grow the proxy. Its process's
//! RSS (the proxy's and this test's: each test runs in a process of its
//! own under nextest) is sampled throughout and must stay within
//! [`BOUND`] of what it was before; another client is served meanwhile.
//! Once the slow client reads, on a dedicated connection it gets every
//! reply whole and in order; on a shared one it gets whole replies in
//! order and then, if it held too much, a closed connection, never a
//! short value.

#[macro_use]
mod common;

use common::*;
use redis_ha_proxy::config::ConnMode;
use redis_ha_proxy::data::ErrorKind;
use redis_ha_proxy::route::Endpoint;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How far above its RSS before the flood the process may grow.
const BOUND: u64 = 64 << 20;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// Samples the RSS every 20 ms until dropped; `peak()` is the highest seen.
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn start() -> Sampler {
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A value of `len` bytes that says which key it is.
fn value(key: &str, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = key.bytes().cycle().take(len).collect();
    v[len - 1] = b'!';
    v
}

/// Reads replies as they come and checks each against `expected` in
/// order, holding at most one reply; stops at the last or at the close.
/// Returns how many whole, correct replies came, and whether the
/// connection closed before the last.
async fn read_replies(s: &mut tokio::net::tcp::OwnedReadHalf, expected: &[&[u8]]) -> (usize, bool) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut got = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    while got < expected.len() {
        // Whole replies at the front of what was read.
        while let Some(end) = buf.windows(2).take(24).position(|w| w == b"\r\n") {
            assert_eq!(buf[0], b'$', "not a bulk reply: {:?}", &buf[..end]);
            let len: usize = std::str::from_utf8(&buf[1..end]).unwrap().parse().unwrap();
            let total = end + 2 + len + 2;
            if buf.len() < total {
                break;
            }
            let want = expected[got];
            assert_eq!(len, want.len(), "reply {got}: wrong length");
            assert!(
                &buf[end + 2..end + 2 + len] == want,
                "reply {got}: wrong value"
            );
            assert_eq!(&buf[total - 2..total], b"\r\n");
            buf.drain(..total);
            got += 1;
            if got == expected.len() {
                return (got, false);
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await;
        match read.expect("the proxy neither answered nor closed") {
            Ok(0) | Err(_) => return (got, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    (got, false)
}

/// Another client is served within a deadline while the slow one waits.
async fn others_are_served(addr: std::net::SocketAddr) {
    let mut other = conn(addr).await;
    other.timeout = Duration::from_secs(15);
    for _ in 0..5 {
        assert_eq!(text(&cmd(&mut other, &["PING"]).await), "PONG");
        let r = cmd(&mut other, &["GET", "small"]).await;
        assert_eq!(text(&r), "s".repeat(100));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pipelines `keys` as GETs without reading, waits, checks the RSS and
/// another client, then reads. Returns (replies read whole, closed early).
async fn flood(
    t: &redis_ha_local::Topology,
    p: &redis_ha_proxy::server::ProxyHandle,
    keys: &[(String, Vec<u8>)],
    rounds: usize,
) -> (usize, bool) {
    let master = t.master().await.unwrap();
    for (k, v) in keys {
        let v = String::from_utf8(v.clone()).unwrap();
        node_query(t, &master, &["SET", k, &v]).await.unwrap();
    }
    let before = rss_bytes();
    let sampler = Sampler::start();
    let mut req = Vec::new();
    let mut expected: Vec<&[u8]> = Vec::new();
    for _ in 0..rounds {
        for (k, v) in keys {
            req.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{k}\r\n", k.len()).as_bytes());
            expected.push(v);
        }
    }
    let slow = TcpStream::connect(p.write_addr()).await.unwrap();
    // Written apart: the proxy may stop reading before the last request.
    let (r, mut w) = slow.into_split();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&req).await;
        w
    });
    let started = Instant::now();
    // Long enough for the proxy to take what it will: it must stay bounded.
    while started.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let grown = sampler.peak().saturating_sub(before);
        assert!(grown < BOUND, "the proxy grew by {} MB", grown >> 20);
    }
    others_are_served(p.write_addr()).await;
    let waited = sampler.peak();
    let mut slow = r;
    let r = read_replies(&mut slow, &expected).await;
    writer.abort();
    let peak = sampler.peak();
    drop(sampler);
    eprintln!(
        "RSS before {} MB, peak while not reading {} MB, peak overall {} MB, after {} MB; {} of {} replies, closed early: {}",
        before >> 20,
        waited >> 20,
        peak >> 20,
        rss_bytes() >> 20,
        r.0,
        expected.len(),
        r.1
    );
    assert!(
        peak.saturating_sub(before) < BOUND,
        "the proxy grew by {} MB",
        (peak - before) >> 20
    );
    r
}

fn output_limit_cuts(p: &redis_ha_proxy::server::ProxyHandle) -> u64 {
    p.metrics
        .ep(Endpoint::write)
        .error(ErrorKind::OutputLimit)
        .get()
}

/// 1000 GETs of 1 MB values (under the 1 MiB streaming threshold: each is
/// a whole reply), pipelined by a client that reads nothing for seconds.
async fn many_big_gets_for_a_slow_client(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let keys: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            let k = format!("big{i}");
            let v = value(&k, 1_000_000);
            (k, v)
        })
        .collect();
    let master = t.master().await.unwrap();
    node_query(&t, &master, &["SET", "small", &"s".repeat(100)])
        .await
        .unwrap();
    let (got, closed) = flood(&t, &p, &keys, 100).await;
    match mode {
        ConnMode::Dedicated => {
            assert_eq!((got, closed), (1000, false), "every reply, in order");
            assert_eq!(output_limit_cuts(&p), 0, "paused, not cut");
        }
        ConnMode::Multiplex => {
            assert!(
                got == 1000 || (closed && output_limit_cuts(&p) == 1),
                "{got} replies, closed: {closed}"
            );
        }
    }
}

/// Big replies (4 MiB, streamed) each behind a small one, pipelined.
async fn big_replies_behind_small_ones(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let keys = vec![
        ("small".to_string(), b"s".repeat(100)),
        ("huge".to_string(), value("huge", 4 << 20)),
    ];
    let (got, closed) = flood(&t, &p, &keys, 100).await;
    match mode {
        ConnMode::Dedicated => assert_eq!((got, closed), (200, false), "every reply, in order"),
        // A client that takes none of a streamed reply for 5 s is cut.
        ConnMode::Multiplex => assert!(got == 200 || closed, "{got} replies"),
    }
}

in_both_modes!(
    many_big_gets_for_a_slow_client,
    big_replies_behind_small_ones
);
