//! Errors that say what is wrong: a sentinel name that does not resolve, a
//! port with nothing on it, a master name the sentinels do not know. Each is
//! given at start (wait_master), in `/api/status` and to held clients.

mod common;

use common::*;
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_proxy::server::start;
use redis_ha_resp::tls::Tls;
use std::sync::Arc;
use std::time::Duration;

/// Starts a proxy on `sentinels`/`name` and checks that the start-up error,
/// the status page and a held client's error all carry `expect`.
async fn says(sentinels: Vec<String>, name: &str, tls: Option<Arc<Tls>>, expect: &[&str]) {
    let mut cfg = ProxyConfig::for_test(sentinels, name);
    cfg.backend_tls = tls;
    cfg.failover_hold = Duration::from_secs(1);
    let p = start(cfg).await.expect("proxy starts");
    let e = p
        .wait_master(Duration::from_secs(3))
        .await
        .expect_err("no master");
    let e = format!("{e:#}");
    for x in expect {
        assert!(e.contains(x), "start-up error {e:?} lacks {x:?}");
    }
    let (code, body) = http_get(p.admin_addr, "/api/status").await;
    assert_eq!(code, 200);
    for x in expect {
        assert!(
            body.contains(&x.replace('"', "\\\"")),
            "/api/status lacks {x:?}: {body}"
        );
    }
    let mut c = conn(p.write_addr()).await;
    let r = cmd(&mut c, &["SET", "k", "v"]).await;
    let msg = r.error_message().unwrap_or_default();
    assert!(msg.starts_with("TRYAGAIN"), "{r:?}");
    for x in expect {
        assert!(msg.contains(x), "client error {msg:?} lacks {x:?}");
    }
}

#[tokio::test]
async fn a_sentinel_name_that_does_not_resolve() {
    says(
        vec!["nohost.invalid:1".into()],
        "mymaster",
        None,
        &["does not resolve", "--sentinel"],
    )
    .await;
}

#[tokio::test]
async fn a_sentinel_port_with_nothing_on_it() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    says(
        vec![addr.clone()],
        "mymaster",
        None,
        &["nothing listens", &addr],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_name_the_sentinels_do_not_know() {
    let t = Topology::start_test(1000).await.expect("topology");
    says(
        t.sentinel_addrs(),
        "nosuch",
        backend_tls(&t),
        &["no master named \"nosuch\"", "--master-name"],
    )
    .await;
}
