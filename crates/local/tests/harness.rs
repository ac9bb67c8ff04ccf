use redis_ha_local::Topology;
use std::time::Duration;

#[tokio::test]
async fn kill_master_fails_over_and_restart_rejoins_as_replica() {
    let t = Topology::start_test(1000).await.expect("start");
    let old = t.master().await.unwrap();
    assert_eq!(old, t.redis_addrs()[0]);
    t.kill("redis-0").unwrap();
    let new = t
        .wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    assert_ne!(new, old);
    t.restart("redis-0").await.unwrap();
    t.wait_healthy(Duration::from_secs(30)).await.unwrap();
    assert_eq!(t.master().await.unwrap(), new);
}
