//! `redis-ha status --watch --count N`: N refreshes, each with the proxy's
//! live numbers, then a clean exit.

use redis_ha_local::cli::{status_to, StatusArgs};
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_two_refreshes_with_live_numbers_and_exits() {
    let t = Topology::start_test(1000).await.expect("topology");
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.node_names = t.opts.named_addrs();
    let p = redis_ha_proxy::server::start(cfg).await.expect("proxy");
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    let mut c =
        redis_ha_resp::Connection::connect(&p.write_addr().to_string(), Duration::from_secs(2))
            .await
            .unwrap();
    for _ in 0..20 {
        c.request(&["SET", "k", "v"]).await.unwrap();
    }
    let args = StatusArgs {
        state_dir: t.opts.state_dir.clone(),
        sentinels: t.sentinel_addrs(),
        master_name: t.opts.spec.master_name.clone(),
        password: None,
        sentinel_password: None,
        json: false,
        watch: true,
        interval: Duration::from_millis(1200),
        count: Some(2),
        admin: Some(p.admin_addr.to_string()),
    };
    let mut out = Vec::new();
    let run = status_to(args, &mut out, false, std::future::pending());
    let code = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("status --count 2 did not stop")
        .expect("status");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("redis-ha status · ").count(), 2, "{text}");
    assert!(
        text.contains("refresh 1 of 2") && text.contains("refresh 2 of 2"),
        "{text}"
    );
    assert_eq!(text.matches("proxy live").count(), 2, "{text}");
    assert_eq!(text.matches("healthy: master").count(), 2, "{text}");
    // The second refresh has a previous one to take rates from.
    assert!(text.contains("/s)"), "{text}");
    let master = t.master().await.unwrap();
    let name = t.name_of(&master).unwrap();
    assert!(
        text.contains(&format!("writes to {name} {master}")),
        "{text}"
    );
}
