//! Hostile clients against a running proxy: huge declared lengths, deep
//! nesting, binary garbage, slowloris and thousands of connections. After
//! each, a different, well-behaved client must still be served correctly.
//! (Basic malformed frames are in compat.rs, huge requests in guard.rs.)

#[macro_use]
mod common;

use common::*;
use redis_ha_proxy::config::ConnMode;
use redis_ha_proxy::server::ProxyHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A fresh client can write and read back a value, and the admin page
/// still says ready: the proxy lives and serves others.
async fn still_serving(p: &ProxyHandle, what: &str) {
    let key = format!("hostile-{what}");
    poll(
        &format!("a good client served after {what}"),
        Duration::from_secs(10),
        || async {
            let mut c = conn(p.write_addr()).await;
            let set = c.request(&["SET", &key, what]).await.ok()?;
            let get = c.request(&["GET", &key]).await.ok()?;
            (text(&set) == "OK" && text(&get) == what).then_some(())
        },
    )
    .await;
    let mut r = conn(p.read_addr()).await;
    assert_eq!(text(&cmd(&mut r, &["PING"]).await), "PONG", "after {what}");
    assert_eq!(
        http_get(p.admin_addr, "/readyz").await.0,
        200,
        "after {what}"
    );
}

/// Writes `bytes` (the proxy may close mid-way), half-closes, and returns
/// what came back before EOF.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let write = async {
        let _ = wr.write_all(bytes).await;
        let _ = wr.shutdown().await;
    };
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), rd.read_to_end(&mut got));
    let (_, done) = tokio::join!(write, read);
    // A reset after the error reply is fine; hanging is not.
    assert!(done.is_ok(), "the proxy never closed: {:?}", preview(&got));
    got
}

fn preview(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned()
}

fn assert_protocol_error(got: &[u8], input: &[u8]) {
    assert!(
        got.starts_with(b"-ERR Protocol error: "),
        "{:?} for {:?}",
        preview(got),
        preview(input)
    );
}

async fn huge_declared_lengths_are_refused_or_not_preallocated(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    for bad in [
        &b"*1\r\n$536870913\r\n"[..],
        b"*1\r\n$9223372036854775807\r\n",
        b"*1\r\n$99999999999999999999999\r\n",
        b"*2147483648\r\n",
        b"*9223372036854775807\r\n",
        b"*1\r\n$-2\r\n",
    ] {
        assert_protocol_error(&exchange(p.write_addr(), bad).await, bad);
        still_serving(&p, "a huge length").await;
    }
    // Legal but huge declared sizes, barely sent: nothing is reserved for
    // them up front (40 x 500 MB would exhaust memory).
    let mut held = Vec::new();
    for _ in 0..20 {
        for head in [
            &b"*1\r\n$500000000\r\nabc"[..],
            b"*2000000000\r\n$4\r\nPING\r\n",
        ] {
            let mut s = TcpStream::connect(p.write_addr()).await.unwrap();
            s.write_all(head).await.unwrap();
            held.push(s);
        }
    }
    still_serving(&p, "huge pending requests").await;
    drop(held);
    still_serving(&p, "huge pending requests closed").await;
}

async fn deep_nesting_is_refused(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let nested = b"*1\r\n".repeat(200_000);
    let mut wide_then_nested = b"*1000000\r\n".to_vec();
    wide_then_nested.extend_from_slice(&nested);
    for bad in [nested, wide_then_nested] {
        let got = exchange(p.write_addr(), &bad).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            "-ERR Protocol error: expected '$', got '*'\r\n"
        );
        still_serving(&p, "deep nesting").await;
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn binary_garbage_is_survived(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    for seed in 1..=8u64 {
        let mut bytes = garbage(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 256 * 1024);
        if seed % 2 == 0 {
            bytes[0] = b'*'; // start inside a multibulk
        }
        let got = exchange(p.write_addr(), &bytes).await;
        // Every answer is a well-formed RESP reply (errors, mostly).
        let mut rest = &got[..];
        while !rest.is_empty() {
            let n = redis_ha_resp::parse::frame_len(rest)
                .unwrap_or_else(|e| panic!("seed {seed}: bad reply {e}: {:?}", preview(rest)))
                .unwrap_or_else(|| panic!("seed {seed}: cut reply {:?}", preview(rest)));
            rest = &rest[n..];
        }
        still_serving(&p, "binary garbage").await;
    }
}

/// 100 clients each send a PING one byte every 250 ms, while others are served
/// each second; the slow ones get their PONG in the end.
async fn slowloris_clients_do_not_starve_others(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let req = b"*1\r\n$4\r\nPING\r\n";
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(TcpStream::connect(p.write_addr()).await.unwrap());
    }
    for &byte in req {
        for s in &mut slow {
            s.write_all(&[byte]).await.unwrap();
        }
        still_serving(&p, "a slowloris byte").await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for s in &mut slow {
        let mut buf = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
            .await
            .expect("a slow client's reply")
            .unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
    }
}

/// 2000 clients connected at once, each answered; another is served while
/// they are held and after they go.
async fn thousands_of_connections_are_served(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let mut clients = Vec::new();
    for i in 0..2000 {
        let addr = if i % 2 == 0 {
            p.write_addr()
        } else {
            p.read_addr()
        };
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PING\r\n").await.unwrap();
        clients.push(s);
    }
    for s in &mut clients {
        let mut buf = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut buf))
            .await
            .expect("every client answered")
            .unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
    }
    still_serving(&p, "2000 clients connected").await;
    drop(clients);
    still_serving(&p, "2000 clients gone").await;
}

in_both_modes!(
    huge_declared_lengths_are_refused_or_not_preallocated,
    deep_nesting_is_refused,
    binary_garbage_is_survived,
    slowloris_clients_do_not_starve_others,
    thousands_of_connections_are_served
);
