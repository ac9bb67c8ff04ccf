//! Bad or dangerous input through the proxy, against real Redis: dangerous
//! commands are refused (or go once), HTTP and requests that make Redis drop
//! the connection are not looped, QUIT is answered after pub/sub, a
//! half-closed client gets every reply, replication streams are refused,
//! and clients that do not read or sit idle are closed as Redis would.

#[macro_use]
mod common;

use common::*;
use redis_ha_local::Topology;
use redis_ha_proxy::config::ConnMode;
use redis_ha_proxy::data::ErrorKind;
use redis_ha_proxy::route::Endpoint;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `INFO stats` total_connections_received on `node`.
async fn connections_received(t: &Topology, node: &str) -> i64 {
    let f = node_query(t, node, &["INFO", "stats"]).await.unwrap();
    text(&f)
        .lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Reads until EOF (or `limit`), returning what came.
async fn read_to_eof(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    tokio::time::timeout(limit, s.read_to_end(&mut buf))
        .await
        .expect("the proxy closed the connection")
        .expect("read");
    buf
}

async fn shutdown_is_denied_and_otherwise_goes_once(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let old = t.master().await.unwrap();
    let mut c = conn(p.write_addr()).await;
    for denied in [
        &["SHUTDOWN", "NOSAVE"][..],
        &["DEBUG", "SLEEP", "0"],
        &["REPLICAOF", "NO", "ONE"],
        &["CLIENT", "KILL", "TYPE", "normal"],
    ] {
        let e = text(&cmd(&mut c, denied).await);
        assert!(
            e.contains("not allowed through the proxy"),
            "{denied:?}: {e}"
        );
    }
    let e = text(&cmd(&mut c, &["PSYNC", "?", "-1"]).await);
    assert!(e.contains("replication stream"), "{e}");
    assert_eq!(
        text(&node_query(&t, &old, &["PING"]).await.unwrap()),
        "PONG"
    );
    let denied = p.metrics.ep(Endpoint::write).error(ErrorKind::Denied).get();
    assert_eq!(denied, 5);

    // With nothing denied, SHUTDOWN stops one node, once: it is never held
    // for, or sent again to, the promoted replica.
    drop(p);
    let mut cfg =
        redis_ha_proxy::config::ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.mode = mode;
    cfg.backend_tls = backend_tls(&t);
    cfg.deny_commands = String::new();
    let p = redis_ha_proxy::server::start(cfg).await.unwrap();
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    let mut c = conn(p.write_addr()).await;
    let r = c.request(&["SHUTDOWN", "NOSAVE"]).await;
    eprintln!("SHUTDOWN through the proxy: {r:?}");
    let new = t
        .wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    poll(
        "writes through the new master",
        Duration::from_secs(20),
        || async {
            let mut c = conn(p.write_addr()).await;
            (text(&cmd(&mut c, &["SET", "after", "1"]).await) == "OK").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alive = text(&node_query(&t, &new, &["PING"]).await.unwrap());
    assert_eq!(alive, "PONG", "the promoted replica was shut down too");
    let running = t
        .running()
        .iter()
        .filter(|n| n.starts_with("redis-"))
        .count();
    assert_eq!(running, 2, "SHUTDOWN stopped more than one node");
}

async fn http_is_refused_before_any_backend_sees_it(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let master = t.master().await.unwrap();
    let before = connections_received(&t, &master).await;
    for _ in 0..20 {
        let mut s = TcpStream::connect(p.write_addr()).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let got = read_to_eof(&mut s, Duration::from_secs(5)).await;
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    // Only the INFO below (and a control-plane probe or two) reached Redis.
    let after = connections_received(&t, &master).await;
    assert!(
        after - before <= 5,
        "{} backend connections for 20 HTTP requests",
        after - before
    );
    let mut c = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut c, &["PING"]).await), "PONG");
}

/// A read that makes Redis close the connection (its query buffer limit)
/// is failed, never looped. Its 16 MiB key streams through the proxy (an
/// argument of 1 MiB or more is not held whole), so it cannot be sent
/// again: Redis closed the connection before it had all of it, and the
/// client is told the command did not run. (A whole request would be sent
/// once more, then failed as poison: the pipeline's unit tests.)
async fn a_request_that_kills_its_connection_is_failed_not_looped(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let master = t.master().await.unwrap();
    let limit = ["CONFIG", "SET", "client-query-buffer-limit", "1mb"];
    assert_eq!(text(&node_query(&t, &master, &limit).await.unwrap()), "OK");
    let before = connections_received(&t, &master).await;
    let mut c = conn(p.write_addr()).await;
    // 16 MiB: more than loopback's socket buffers can take in (with 3 MiB
    // the whole key was once written before Redis's reset arrived, and the
    // proxy rightly said "unknown outcome": it had sent it all).
    let key = "k".repeat(16 << 20);
    let r = text(&cmd(&mut c, &["GET", &key]).await);
    assert!(r.contains("did not run"), "{r}");
    assert_eq!(p.metrics.ep(Endpoint::write).error(ErrorKind::Cut).get(), 1);
    let after = connections_received(&t, &master).await;
    // The request's two tries, plus the control plane's probes meanwhile.
    assert!(
        after - before <= 10,
        "{} backend connections for one poison request",
        after - before
    );
    // The client and the proxy go on.
    assert_eq!(text(&cmd(&mut c, &["PING"]).await), "PONG");
}

async fn quit_after_subscribe_is_answered_and_subscriptions_go_with_the_client(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let master = t.master().await.unwrap();
    let mut s = TcpStream::connect(p.write_addr()).await.unwrap();
    s.write_all(b"SUBSCRIBE ch\r\nUNSUBSCRIBE ch\r\nPING\r\nQUIT\r\n")
        .await
        .unwrap();
    let got =
        String::from_utf8_lossy(&read_to_eof(&mut s, Duration::from_secs(5)).await).into_owned();
    assert!(got.ends_with("+OK\r\n"), "{got:?}");
    assert!(
        got.contains("subscribe") && got.contains("unsubscribe"),
        "{got:?}"
    );

    // A subscriber that just leaves: Redis no longer counts it.
    let mut s = TcpStream::connect(p.write_addr()).await.unwrap();
    s.write_all(b"SUBSCRIBE leaving\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    let numsub = || async {
        let f = node_query(&t, &master, &["PUBSUB", "NUMSUB", "leaving"])
            .await
            .unwrap();
        f.as_array()
            .and_then(|a| a.get(1).and_then(|n| n.as_int()))
            .unwrap()
    };
    assert_eq!(numsub().await, 1);
    drop(s);
    poll(
        "the subscription to go with the client",
        Duration::from_secs(5),
        || async { (numsub().await == 0).then_some(()) },
    )
    .await;
}

async fn a_half_closed_client_gets_every_reply(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let mut s = TcpStream::connect(p.write_addr()).await.unwrap();
    let mut req = b"GET nothing\r\n".to_vec();
    for _ in 0..1000 {
        req.extend_from_slice(b"INCR halfclose\r\n");
    }
    s.write_all(&req).await.unwrap();
    s.shutdown().await.unwrap(); // like nc -N: nothing more to say
    let got = read_to_eof(&mut s, Duration::from_secs(10)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("$-1\r\n"), "{got:.40}");
    assert_eq!(got.matches("\r\n:").count(), 1000, "{got:.80}");
    assert!(
        got.ends_with(":1000\r\n"),
        "{}",
        &got[got.len().saturating_sub(40)..]
    );
}

async fn clients_that_do_not_read_or_sit_idle_are_closed(mode: ConnMode) {
    let (_t, p) = setup(|c| {
        c.mode = mode;
        c.client_output_limit = 1 << 20;
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    // A subscriber that never reads, and a publisher: the subscriber is closed.
    let mut sub = TcpStream::connect(p.write_addr()).await.unwrap();
    sub.set_nodelay(true).unwrap();
    sub.write_all(b"SUBSCRIBE flood\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut publisher = conn(p.write_addr()).await;
    let msg = "x".repeat(10_000);
    let ep = p.metrics.ep(Endpoint::write);
    for _ in 0..6000 {
        cmd(&mut publisher, &["PUBLISH", "flood", &msg]).await;
        if ep.error(ErrorKind::OutputLimit).get() > 0 {
            break;
        }
    }
    assert_eq!(
        ep.error(ErrorKind::OutputLimit).get(),
        1,
        "the subscriber was not closed"
    );
    // An idle client is closed after --timeout; a busy one is not.
    let mut idle = TcpStream::connect(p.write_addr()).await.unwrap();
    idle.write_all(b"PING\r\n").await.unwrap();
    let got = read_to_eof(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(&got[..], b"+PONG\r\n");
    let mut busy = conn(p.write_addr()).await;
    for _ in 0..15 {
        assert_eq!(text(&cmd(&mut busy, &["PING"]).await), "PONG");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One 200k-argument request sent in 700-byte pieces: parsed once, not
/// once per piece (the count of bytes scanned is tested in the parser), and
/// answered; another client is served meanwhile.
async fn a_huge_request_in_small_pieces_is_answered(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let n = 200_000;
    let mut req = format!("*{}\r\n$5\r\nRPUSH\r\n$4\r\nhuge\r\n", n + 2).into_bytes();
    for _ in 0..n {
        req.extend_from_slice(b"$1\r\nx\r\n");
    }
    let mut s = TcpStream::connect(p.write_addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut other = conn(p.write_addr()).await;
    for (i, piece) in req.chunks(700).enumerate() {
        s.write_all(piece).await.unwrap();
        if i % 500 == 0 {
            assert_eq!(text(&cmd(&mut other, &["PING"]).await), "PONG");
        }
    }
    let mut buf = vec![0u8; 64];
    let got = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..got], format!(":{n}\r\n").as_bytes());
}

/// A big value streams through (README, "Big values"), pipelined with
/// requests before and after it in one write; what follows it is served in
/// order; an argument over proto-max-bulk-len keeps Redis's error.
async fn a_big_value_between_small_requests_is_served_in_order(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let size = 3 << 20;
    let mut req = b"*3\r\n$3\r\nSET\r\n$5\r\nsmall\r\n$1\r\na\r\n".to_vec();
    req.extend_from_slice(format!("*5\r\n$4\r\nMSET\r\n$3\r\nbig\r\n${size}\r\n").as_bytes());
    req.extend((0..size).map(|i| b'a' + (i % 26) as u8));
    req.extend_from_slice(b"\r\n$5\r\nafter\r\n");
    req.extend_from_slice(format!("${size}\r\n").as_bytes());
    req.extend(vec![b'z'; size]);
    req.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n*1\r\n$4\r\nPING\r\n");
    req.extend_from_slice(b"*2\r\n$6\r\nSTRLEN\r\n$5\r\nafter\r\n");
    let mut s = TcpStream::connect(p.write_addr()).await.unwrap();
    let mut want = b"+OK\r\n+OK\r\n".to_vec();
    want.extend_from_slice(format!("${size}\r\n").as_bytes());
    want.extend((0..size).map(|i| b'a' + (i % 26) as u8));
    want.extend_from_slice(format!("\r\n+PONG\r\n:{size}\r\n").as_bytes());
    let (mut rd, mut wr) = s.split();
    let write = async {
        for piece in req.chunks(100_000) {
            wr.write_all(piece).await.unwrap();
        }
    };
    let mut got = Vec::new();
    let read = async {
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < want.len() {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed after {} bytes: {:?}",
                got.len(),
                String::from_utf8_lossy(&got[..got.len().min(300)])
            );
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) })
        .await
        .expect("answered within 30 s");
    assert!(
        got == want,
        "replies differ at byte {:?}",
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
    // Past proto-max-bulk-len (512 MB): Redis's error, before anything goes.
    let mut c = TcpStream::connect(p.write_addr()).await.unwrap();
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n")
        .await
        .unwrap();
    let got = read_to_eof(&mut c, Duration::from_secs(5)).await;
    assert_eq!(&got[..], b"-ERR Protocol error: invalid bulk length\r\n");
}

in_both_modes!(
    a_big_value_between_small_requests_is_served_in_order,
    a_huge_request_in_small_pieces_is_answered,
    shutdown_is_denied_and_otherwise_goes_once,
    http_is_refused_before_any_backend_sees_it,
    a_request_that_kills_its_connection_is_failed_not_looped,
    quit_after_subscribe_is_answered_and_subscriptions_go_with_the_client,
    a_half_closed_client_gets_every_reply,
    clients_that_do_not_read_or_sit_idle_are_closed
);
