//! Backpressure: a client pipelining 2 million GETs of a 10 KB value
//! without reading a reply must leave the proxy's memory and Redis's
//! buffers bounded (the proxy stops reading from it), while other clients
//! keep writing. Alone in its own test binary, so the process's RSS is the
//! proxy's (and this test's) alone.

mod common;

use common::*;
use redis_ha_proxy::config::ConnMode;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in INFO"))
}

/// Writes up to 2M pipelined GETs; stops once the proxy takes no more for
/// a second (it stopped reading). Returns the requests written.
async fn flood(addr: std::net::SocketAddr) -> (TcpStream, u64) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let one = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
    let chunk: Vec<u8> = one.iter().copied().cycle().take(one.len() * 4096).collect();
    let mut sent = 0u64;
    while sent < 2_000_000 {
        match tokio::time::timeout(Duration::from_secs(1), s.write_all(&chunk)).await {
            Ok(r) => r.unwrap(),
            Err(_) => break, // the proxy stopped reading: backpressure
        }
        sent += 4096;
    }
    (s, sent)
}

async fn a_client_that_never_reads(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let master = t.master().await.unwrap();
    let value = "v".repeat(10_000);
    node_query(&t, &master, &["SET", "big", &value])
        .await
        .unwrap();
    let before = rss_bytes();
    let started = Instant::now();
    let (flooder, sent) = flood(p.write_addr()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rss_bytes().saturating_sub(before);
    let info = text(&node_query(&t, &master, &["INFO"]).await.unwrap());
    let (used, outbuf) = (
        info_field(&info, "used_memory"),
        info_field(&info, "client_recent_max_output_buffer"),
    );
    eprintln!(
        "{mode:?}: {sent} GETs written in {:?} before the proxy stopped reading; proxy RSS +{} MB; Redis used_memory {} MB, largest client output buffer {} KB",
        started.elapsed(),
        grown >> 20,
        used >> 20,
        outbuf >> 10
    );
    assert!(
        sent < 2_000_000,
        "the proxy read all 2M requests from a client that reads nothing"
    );
    assert!(grown < 100 << 20, "the proxy grew by {} MB", grown >> 20);
    assert!(used < 256 << 20, "Redis used {} MB", used >> 20);
    assert!(
        outbuf < 64 << 20,
        "Redis buffered {} MB for one client",
        outbuf >> 20
    );
    // Everyone else is served meanwhile (no -OOM, no stall).
    let mut other = conn(p.write_addr()).await;
    other.timeout = Duration::from_secs(5);
    for i in 0..100 {
        let r = cmd(&mut other, &["SET", &format!("other{i}"), "x"]).await;
        assert_eq!(text(&r), "OK");
    }
    drop(flooder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_grow_the_proxy_or_redis() {
    // One mode after the other: RSS is the whole process's.
    a_client_that_never_reads(ConnMode::Multiplex).await;
    a_client_that_never_reads(ConnMode::Dedicated).await;
}
