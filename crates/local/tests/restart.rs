//! Restart safety with real processes: a master that comes back with an
//! empty disk before Sentinel reacts hands the role over instead of wiping
//! the cluster; a whole-topology cold start in any order (with a stale
//! node, with the sentinels' state lost) ends with the newest node master
//! and every acknowledged key kept.

use redis_ha_local::cold::Order;
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_resp::conn::query;
use redis_ha_resp::Frame;
use redis_ha_topology::info::Role;
use redis_ha_topology::role;
use std::time::{Duration, Instant};

const IO: Duration = Duration::from_secs(2);

/// Writes `n` keys `prefix:i` to `at` (the proxy or the master); each is
/// acknowledged before the next. A refusal (NOREPLICAS while a replica
/// links up) is retried until a deadline.
async fn write_keys(at: &str, prefix: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..n {
        let k = format!("{prefix}:{i}");
        loop {
            match query(at, &["SET", &k, &k], IO).await {
                Ok(Frame::Simple(ok)) if ok == "OK" => break,
                other => {
                    assert!(Instant::now() < deadline, "SET {k}: {other:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Waits until `replicas` replicas acknowledged everything `master` took.
async fn wait_replicated(master: &str, replicas: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = replicas.to_string();
    loop {
        let r = query(master, &["WAIT", &want, "1000"], IO).await;
        if r.as_ref().ok().and_then(|f| f.as_int()) >= Some(replicas) {
            return;
        }
        assert!(Instant::now() < deadline, "WAIT {want}: {r:?}");
    }
}

/// Polls until every sentinel names `master`.
async fn wait_all_sentinels_name(t: &Topology, master: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = role::ask(
            &t.sentinel_addrs(),
            Some(t.sentinel_access()),
            &t.opts.spec.master_name,
            IO,
        )
        .await;
        if v.votes_for(master) == t.sentinel_addrs().len() {
            return;
        }
        assert!(Instant::now() < deadline, "sentinels: {:?}", v.answers);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn dbsize(node: &str) -> i64 {
    query(node, &["DBSIZE"], IO)
        .await
        .ok()
        .and_then(|f| f.as_int())
        .unwrap_or(-1)
}

/// How many of `prefix:0..n` are missing on `node`.
async fn missing(node: &str, prefix: &str, n: usize) -> usize {
    let mut gone = 0;
    for i in 0..n {
        let k = format!("{prefix}:{i}");
        if query(node, &["EXISTS", &k], IO)
            .await
            .ok()
            .and_then(|f| f.as_int())
            != Some(1)
        {
            gone += 1;
        }
    }
    gone
}

async fn roles(t: &Topology) -> Vec<String> {
    let mut out = Vec::new();
    for a in t.redis_addrs() {
        let r = query(&a, &["ROLE"], IO).await.ok();
        out.push(
            r.and_then(|f| Role::from_frame(&f))
                .map_or("down", |r| r.name())
                .to_string(),
        );
    }
    out
}

/// Scenario 1 of the issue, as written: 1,000 keys through the proxy, kill
/// -9 of the master, its data directory emptied, `node restart` of it well
/// within down-after. It hands the role to a replica with the data and
/// comes back as its replica; every key is kept on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_back_with_an_empty_disk_hands_over_and_keeps_every_key() {
    let t = Topology::start_test(5000).await.expect("topology");
    let cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    let proxy = redis_ha_proxy::server::start(cfg).await.expect("proxy");
    proxy.wait_master(Duration::from_secs(10)).await.unwrap();
    let proxy_addr = proxy.write_addr().to_string();
    write_keys(&proxy_addr, "k", 1000).await;
    let old = t.master().await.unwrap();
    let name = t.name_of(&old).unwrap();
    let i: usize = name.trim_start_matches("redis-").parse().unwrap();
    wait_replicated(&old, 2).await;

    t.kill(&name).unwrap();
    t.wipe_data(i).unwrap();
    // Within down-after (5 s): the sentinels still name the wiped node.
    t.restart(&name).await.expect("restart");

    let new = t.master().await.unwrap();
    assert_ne!(new, old, "the empty node must not stay master");
    t.wait_healthy(Duration::from_secs(60)).await.unwrap();
    assert_eq!(t.master().await.unwrap(), new);
    for a in t.redis_addrs() {
        assert_eq!(missing(&a, "k", 1000).await, 0, "keys missing on {a}");
    }
    assert_eq!(missing(&proxy_addr, "k", 1000).await, 0);
}

/// A replica back with an empty disk resyncs from the master; it is not
/// promoted and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_back_with_an_empty_disk_resyncs() {
    let t = Topology::start_test(2000).await.expect("topology");
    let m = t.master().await.unwrap();
    write_keys(&m, "k", 300).await;
    wait_replicated(&m, 2).await;
    let r = t.redis_addrs().into_iter().position(|a| a != m).unwrap();
    let name = format!("redis-{r}");
    t.kill(&name).unwrap();
    t.wipe_data(r).unwrap();
    t.restart(&name).await.expect("restart");
    t.wait_healthy(Duration::from_secs(60)).await.unwrap();
    assert_eq!(t.master().await.unwrap(), m);
    assert_eq!(missing(&t.redis_addrs()[r], "k", 300).await, 0);
}

/// The whole topology stopped after a switchover and while one node was
/// down (stale), then started in `order`: the newest node ends master, the
/// others its replicas, nothing acknowledged is lost.
async fn cold_start_keeps_everything(order: Order, lose_sentinel_state: bool) {
    // appendfsync always: with everysec, Redis may postpone its AOF write
    // while an fsync runs (a busy disk: these tests run beside others) and
    // a kill of every process then loses writes it acknowledged (README,
    // Restarts). The boot decision is what this tests.
    let t = Topology::start_test_with(2000, |s| s.appendfsync = "always".into())
        .await
        .expect("topology");
    let first = t.master().await.unwrap();
    write_keys(&first, "a", 200).await;
    wait_replicated(&first, 2).await;
    // redis-0 goes down; the others take more writes: redis-0 is stale.
    let stale = t
        .redis_addrs()
        .into_iter()
        .position(|a| a == first)
        .unwrap();
    t.kill(&format!("redis-{stale}")).unwrap();
    let newest = t
        .wait_new_master(&first, Duration::from_secs(30))
        .await
        .unwrap();
    wait_all_sentinels_name(&t, &newest).await;
    write_keys(&newest, "b", 200).await;
    wait_replicated(&newest, 1).await;

    t.kill_all();
    if lose_sentinel_state {
        t.forget_sentinel_state().unwrap();
    }
    t.cold_start(order, Some(stale)).await.expect("cold start");
    t.wait_healthy(Duration::from_secs(60)).await.unwrap();
    let m = t.master().await.unwrap();
    assert_ne!(m, first, "the stale node became master ({order:?})");
    let r = roles(&t).await;
    assert_eq!(
        r.iter().filter(|x| *x == "master").count(),
        1,
        "roles {r:?}"
    );
    for a in t.redis_addrs() {
        assert_eq!(missing(&a, "a", 200).await, 0, "a: keys missing on {a}");
        assert_eq!(missing(&a, "b", 200).await, 0, "b: keys missing on {a}");
        assert_eq!(dbsize(&a).await, 400, "{a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_sentinels_last_keeps_everything() {
    cold_start_keeps_everything(Order::SentinelsLast, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_stale_first_keeps_everything() {
    cold_start_keeps_everything(Order::StaleFirst, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_all_at_once_keeps_everything() {
    cold_start_keeps_everything(Order::AllAtOnce, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_with_the_sentinels_state_lost_chooses_by_data() {
    cold_start_keeps_everything(Order::AllAtOnce, true).await
}
