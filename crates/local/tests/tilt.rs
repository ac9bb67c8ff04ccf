//! Sentinel's TILT mode with real processes: sentinels frozen for 3 s
//! (SIGSTOP, as a stalled machine or a slow fsync would) enter TILT, and
//! `status` says so and why no failover will happen for 30 s; then a kill
//! -9 of the master still ends in a new master, the wait being extended.
//!
//! down-after is 5 s here, not the tests' usual 1 s: Sentinel promotes no
//! replica whose link has been down longer than 10 x down-after beyond the
//! master's own down time, and TILT delays "master down" by up to 30 s, so
//! with 1 s a master killed in TILT is never failed over (seen in CI).

use redis_ha_local::Topology;
use redis_ha_topology::{sentinel, status};
use std::time::{Duration, Instant};

const IO: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_sentinels_are_reported_in_tilt_and_the_failover_wait_allows_for_it() {
    let t = Topology::start_test(5000).await.expect("topology");
    let master = t.master().await.unwrap();
    let names: Vec<String> = (0..t.opts.spec.sentinels)
        .map(redis_ha_topology::Spec::sentinel_name)
        .collect();
    for n in &names {
        t.stop(n).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    for n in &names {
        t.cont(n).unwrap();
    }
    // The jump is seen at the next timer tick (10 per second).
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.sentinels_in_tilt().await < names.len() {
        assert!(Instant::now() < deadline, "sentinels never entered TILT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sentinels: Vec<(String, String)> = names.iter().cloned().zip(t.sentinel_addrs()).collect();
    let r = status::collect::<str, str>(&sentinels, &[], &t.opts.spec.master_name, None, None, IO)
        .await;
    assert!(!r.healthy);
    assert!(r.sentinels.iter().all(|s| s.tilt), "{:?}", r.sentinels);
    assert!(
        r.problems.iter().any(|p| p.contains("TILT mode")),
        "{:?}",
        r.problems
    );
    assert!(sentinel::in_tilt::<str>(&t.sentinel_addrs()[0], None, IO)
        .await
        .unwrap());

    // In TILT, a dead master is not failed over until TILT ends; a 10 s
    // wait would fail without the extension.
    t.kill(&t.name_of(&master).unwrap()).unwrap();
    let new = t
        .wait_new_master(&master, Duration::from_secs(10))
        .await
        .expect("a new master once TILT ended");
    assert_ne!(new, master);
}
