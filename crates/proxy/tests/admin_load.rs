//! The admin port under a crowd: 3,000 idle connections and 1,000
//! concurrent `/metrics` scrapes, and `/healthz` and `/readyz` still
//! answer (probes are never refused by the limit meant for scrapers);
//! every scrape is answered (queued, not reset).

mod common;

use common::*;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_proxy::server::start;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_past_idle_crowds_and_every_scrape_is_served() {
    // No sentinel needed: the admin port serves regardless (not ready).
    let p = start(ProxyConfig::for_test(
        vec!["127.0.0.1:1".into()],
        "mymaster",
    ))
    .await
    .expect("proxy");
    let admin = p.admin_addr;
    let mut idle = Vec::new();
    for _ in 0..3000 {
        idle.push(TcpStream::connect(admin).await.expect("connect"));
    }
    // The probes queue behind all of them in the accept queue.
    for _ in 0..5 {
        assert_eq!(http_get(admin, "/healthz").await.0, 200);
        let (code, body) = http_get(admin, "/readyz").await;
        assert_eq!(code, 503, "no master here, and it says so: {body}");
        assert!(body.contains("not ready"), "{body}");
    }
    drop(idle);

    let scrapes = (0..1000).map(|_| tokio::spawn(http_get(admin, "/metrics")));
    let mut answered = 0;
    for s in scrapes {
        let (code, body) = s.await.expect("scrape task");
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("redis_ha_"), "a metrics page");
        answered += 1;
    }
    assert_eq!(answered, 1000);
    assert_eq!(http_get(admin, "/healthz").await.0, 200);
}
