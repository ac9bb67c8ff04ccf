//! The admin page does not let a client hold a connection: silence, or
//! headers that never end, are closed within seconds.

mod common;

use common::*;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_proxy::server::{start, ProxyHandle};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Well above the 5 s header timeout, well below "forever".
const DEADLINE: Duration = Duration::from_secs(20);

async fn proxy() -> ProxyHandle {
    // No sentinel needed: the admin page serves regardless.
    start(ProxyConfig::for_test(
        vec!["127.0.0.1:1".into()],
        "mymaster",
    ))
    .await
    .expect("proxy")
}

/// Reads until the server closes; panics if it has not within `DEADLINE`.
async fn closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!("the admin server kept the connection open for {DEADLINE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let p = proxy().await;
    let mut s = TcpStream::connect(p.admin_addr).await.unwrap();
    closed_by_server(&mut s).await;
    let (code, _) = http_get(p.admin_addr, "/healthz").await;
    assert_eq!(code, 200, "the page still serves");
}

#[tokio::test]
async fn headers_that_never_end_are_closed() {
    let p = proxy().await;
    let mut s = TcpStream::connect(p.admin_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let drip = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if s.write_all(b"X-Drip: 1\r\n").await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DEADLINE, drip).await;
    closed_by_server(&mut s).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let p = proxy().await;
    let mut s = TcpStream::connect(p.admin_addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    // Kept alive, then silent: closed like a connection that never spoke.
    closed_by_server(&mut s).await;
}
