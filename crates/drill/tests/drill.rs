//! Drills against a real topology: through the proxy a planned failover
//! must cost no client error, a kill -9 at most the one unknown-outcome
//! error per writer in flight, and neither an acknowledged write; straight to
//! the old master, the drill must end on its own and report the damage.

use redis_ha_drill::{run_drill, DrillConfig, Fault};
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use std::time::Duration;

fn config(t: &Topology, target: String, fault: Fault) -> DrillConfig {
    DrillConfig {
        target,
        state_dir: Some(t.opts.state_dir.clone()),
        sentinels: t.sentinel_addrs(),
        master_name: t.opts.spec.master_name.clone(),
        password: t.opts.spec.password.clone(),
        sentinel_password: t.opts.spec.sentinel_password.clone(),
        fault,
        writers: 4,
        before: Duration::from_millis(1500),
        after: Duration::from_millis(1000),
        max_wait: Duration::from_secs(30),
        request_timeout: Duration::from_secs(15),
        restore: true,
        progress: false,
    }
}

/// `password`: the nodes require it (`requirepass`, sentinel `auth-pass`);
/// `sentinel_pw`: the sentinels do (`requirepass`, also between them). The supervisor, the proxy and the drill log in with them.
async fn drill_through_proxy(fault: Fault, password: Option<&str>, sentinel_pw: Option<&str>) {
    let t = Topology::start_test_with(1000, |s| {
        s.password = password.map(str::to_string);
        s.sentinel_password = sentinel_pw.map(str::to_string);
    })
    .await
    .expect("topology");
    let mut pcfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    pcfg.password = password.map(str::to_string);
    pcfg.sentinel_password = sentinel_pw.map(str::to_string);
    let proxy = redis_ha_proxy::server::start(pcfg).await.expect("proxy");
    let r = run_drill(config(&t, proxy.write_addr.to_string(), fault))
        .await
        .expect("drill");
    eprintln!("{}", redis_ha_drill::cli::render(&r));
    assert_ne!(
        r.new_master.as_deref(),
        Some(r.old_master.as_str()),
        "no failover happened"
    );
    assert!(r.writes_acked > 100, "too few writes: {}", r.writes_acked);
    // A kill -9 leaves each writer's request in flight with an unknown
    // outcome: the proxy answers it with an error instead of sending it
    // twice. A planned failover loses no request: the demoted master answers
    // or refuses (READONLY, sent again), so there is no error at all.
    let unknown_allowed = match fault {
        Fault::Kill => r.writers as u64,
        _ => 0,
    };
    assert!(
        r.writes_failed <= unknown_allowed && r.errors.keys().all(|k| k == "unknown_outcome"),
        "client errors through the proxy: {:?}",
        r.errors
    );
    assert_eq!(
        r.lost_writes, 0,
        "lost acknowledged writes: {:?}",
        r.lost_examples
    );
    assert!(r.promoted_after_ms.is_some() && r.first_ack_after_promotion_ms.is_some());
    // restore: the killed node is back as a replica and the topology healthy.
    t.wait_healthy(Duration::from_secs(30))
        .await
        .expect("healthy after restore");
}

/// The sentinels must log in to each other to vote the failover through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_with_password_protected_sentinels_through_proxy_costs_no_error_and_no_write() {
    drill_through_proxy(Fault::Kill, None, Some("sentinel-pw")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_failover_with_a_password_through_proxy_costs_no_error_and_no_write() {
    drill_through_proxy(Fault::Failover, Some("s3cret"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_straight_to_a_dead_master_ends_and_reports_the_errors() {
    let t = Topology::start_test(1000).await.expect("topology");
    let old = t.master().await.unwrap();
    let mut cfg = config(&t, old.clone(), Fault::Kill);
    cfg.max_wait = Duration::from_secs(8);
    cfg.request_timeout = Duration::from_secs(1);
    let r = run_drill(cfg).await.expect("drill");
    assert_eq!(r.old_master, old);
    assert!(r.writes_failed > 0, "writes to a killed node must fail");
    assert_eq!(
        r.first_ack_after_promotion_ms, None,
        "nothing can be acknowledged by a dead node"
    );
    // Redis writes replies and the replication stream in the same event-loop
    // pass, not one after the other's delivery: a kill -9 inside that pass
    // loses what it acknowledged, at most one write per writer (one in flight
    // each). The same bound as the partition test's.
    assert!(
        r.lost_writes <= r.writers as u64,
        "lost {} acknowledged writes with {} writers: {:?}",
        r.lost_writes,
        r.writers,
        r.lost_examples
    );
}

#[tokio::test]
async fn unreachable_target_is_a_clear_error() {
    let t = Topology::start_test(1000).await.expect("topology");
    let port = redis_ha_local::ports::free_port("127.0.0.1").unwrap();
    let err = run_drill(config(&t, format!("127.0.0.1:{port}"), Fault::Failover))
        .await
        .expect_err("must fail");
    assert!(
        format!("{err:#}").contains("cannot reach the drill target"),
        "{err:#}"
    );
}
