//! `redis-ha init-role` against real sentinels: silent sentinels are never
//! taken for a first boot (it waits, and says so); in a running topology
//! each node follows the agreed master; after a failover the old master,
//! restarted, is told to be a replica of the new one, never a second master.

use redis_ha_local::cluster_args::ClusterArgs;
use redis_ha_local::init_role::{run, InitRoleArgs};
use redis_ha_local::{ports, Topology};
use redis_ha_topology::promotion::Promotion;
use redis_ha_topology::render::promotion_conf;
use std::time::Duration;

/// What a restarted replica's role file ends with (not promotable until synced).
const AFTER_SYNC: &str = promotion_conf(Promotion::AfterSync);

fn args(sentinels: Vec<String>, me: &str, first: &str, out: &std::path::Path) -> InitRoleArgs {
    InitRoleArgs {
        cluster: ClusterArgs::of(sentinels),
        announce: me.into(),
        peers: vec![],
        first_master: first.into(),
        // Holds data: a node of a running topology (the decision reads it).
        data_dir: out.parent().unwrap().to_path_buf(),
        output: out.to_path_buf(),
        timeout: Duration::from_secs(2),
        max_wait: Some(Duration::from_secs(3)),
    }
}

/// The include file written, or the refusal (no majority).
async fn try_decide(sentinels: Vec<String>, me: &str, first: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dump.rdb"), "REDIS").unwrap();
    let out = dir.path().join("role.conf");
    run(args(sentinels, me, first, &out))
        .await
        .map_err(|e| e.to_string())?;
    Ok(std::fs::read_to_string(out).unwrap())
}

async fn decide(sentinels: Vec<String>, me: &str, first: &str) -> String {
    try_decide(sentinels, me, first).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_waits_then_follow_the_agreed_master_even_after_a_failover() {
    // Nothing answers on the sentinel ports: never a first boot, it waits
    // (here at most --max-wait) and says what for.
    let nobody: Vec<String> = ports::free_ports("127.0.0.1", 3)
        .unwrap()
        .into_iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let why = try_decide(nobody, "127.0.0.1:7000", "127.0.0.1:7000")
        .await
        .unwrap_err();
    assert!(
        why.contains("waiting for the sentinels: 0 of 3 answer")
            && why.contains("not a first boot"),
        "{why}"
    );

    let t = Topology::start_test(1000).await.expect("topology");
    let master = t.master().await.unwrap();
    let replicas: Vec<String> = t
        .redis_addrs()
        .into_iter()
        .filter(|a| *a != master)
        .collect();
    let first = t.redis_addrs()[0].clone();
    let (mh, mp) = master.rsplit_once(':').unwrap();
    assert_eq!(decide(t.sentinel_addrs(), &master, &first).await, "");
    assert_eq!(
        decide(t.sentinel_addrs(), &replicas[0], &first).await,
        format!("replicaof {mh} {mp}\n{AFTER_SYNC}")
    );

    // The master dies and the sentinels fail over; the old master (pod 0 in
    // Kubernetes), restarting, must follow the new one.
    t.kill(&t.name_of(&master).unwrap()).unwrap();
    let new = t
        .wait_new_master(&master, Duration::from_secs(30))
        .await
        .unwrap();
    let (nh, np) = new.rsplit_once(':').unwrap();
    // Sentinels that have not heard of the switch yet do not vote together
    // with the rest; the answer settles within a few seconds.
    let want = format!("replicaof {nh} {np}\n{AFTER_SYNC}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = try_decide(t.sentinel_addrs(), &master, &first).await;
        if d.as_deref() == Ok(want.as_str()) {
            break;
        }
        // A refusal (no majority yet) is fine; "master" never is.
        assert_ne!(
            d.as_deref(),
            Ok(""),
            "the old master was told to start as master again"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "still {d:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
