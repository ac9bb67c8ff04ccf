//! `--maxclients`: a client beyond the limit is told so and closed, the
//! others and the admin page carry on; colliding ports are refused at start.

mod common;

use common::*;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_resp::Frame;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_beyond_maxclients_is_refused_and_the_others_work() {
    let (_t, p) = setup(|c| c.maxclients = 5).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        // Alternate endpoints: the limit is shared.
        let addr = if i % 2 == 0 {
            p.write_addr()
        } else {
            p.read_addr()
        };
        let mut c = conn(addr).await;
        assert_eq!(cmd(&mut c, &["PING"]).await, Frame::Simple("PONG".into()));
        clients.push(c);
    }
    let mut sixth = tokio::net::TcpStream::connect(p.write_addr())
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sixth.read_to_end(&mut got))
        .await
        .expect("the sixth client is closed")
        .unwrap();
    assert_eq!(got, b"-ERR max number of clients reached\r\n");
    assert_eq!(p.metrics.rejected_connections_total.get(), 1);
    // A client that speaks first (as client libraries do: HELLO, CLIENT
    // SETINFO...) gets the error too, not a reset that loses it.
    for n in 0..20 {
        let mut c = tokio::net::TcpStream::connect(p.write_addr())
            .await
            .unwrap();
        c.write_all(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
            .await
            .expect("closed");
        assert!(read.is_ok(), "client {n}: {read:?}, got {got:?}");
        assert_eq!(got, b"-ERR max number of clients reached\r\n");
    }
    for c in &mut clients {
        assert_eq!(cmd(c, &["PING"]).await, Frame::Simple("PONG".into()));
    }
    let (code, _) = http_get(p.admin_addr, "/readyz").await;
    assert_eq!(code, 200);
    // A closed client frees its place.
    drop(clients.pop());
    poll("a place freed", Duration::from_secs(5), || async {
        let mut c = conn(p.read_addr()).await;
        c.request(&["PING"])
            .await
            .ok()
            .filter(|f| !f.is_error())
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn colliding_ports_are_refused_at_start() {
    let mut cfg = ProxyConfig::for_test(vec!["127.0.0.1:1".into()], "mymaster");
    cfg.write_listen = Some("127.0.0.1:47379".into());
    cfg.admin_listen = "127.0.0.1:47379".into();
    let e = redis_ha_proxy::server::start(cfg)
        .await
        .err()
        .expect("refused");
    let e = format!("{e:#}");
    assert!(e.contains("--port") && e.contains("--admin-port"), "{e}");
}

#[tokio::test]
async fn a_port_in_use_names_the_flag() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = ProxyConfig::for_test(vec!["127.0.0.1:1".into()], "mymaster");
    cfg.read_listen = Some(busy.local_addr().unwrap().to_string());
    let e = redis_ha_proxy::server::start(cfg)
        .await
        .err()
        .expect("refused");
    let e = format!("{e:#}");
    assert!(
        e.contains("--read-port") && e.contains("another process"),
        "{e}"
    );
}

#[tokio::test]
async fn a_bad_bind_address_says_to_check_bind() {
    let mut cfg = ProxyConfig::for_test(vec!["127.0.0.1:1".into()], "mymaster");
    cfg.write_listen = Some("999.1.1.1:0".into());
    let e = redis_ha_proxy::server::start(cfg)
        .await
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains("--bind"), "{e:#}");
}
