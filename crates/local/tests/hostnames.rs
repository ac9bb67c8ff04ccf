//! A local topology that announces hostnames (`localhost`) instead of IPs,
//! as the Kubernetes pods announce their DNS names: the sentinels report
//! master and replicas by name, a kill -9 failover completes, the proxy
//! (which resolves the names) routes writes to the new master, and
//! `status` reports the topology healthy once the old master is back, and a
//! planned switchover by name works.

use redis_ha_local::cli::local_report;
use redis_ha_local::switchover::{switchover, SwitchoverArgs};
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_resp::conn::query;
use redis_ha_resp::Connection;
use redis_ha_topology::sentinel;
use std::time::{Duration, Instant};

const IO: Duration = Duration::from_secs(2);

/// Polls `f` until it returns `Some`, for at most `timeout`.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every sentinel names `master` and lists only `localhost` replicas.
async fn sentinels_use_names(t: &Topology, master: &str) -> Option<()> {
    for s in t.sentinel_addrs() {
        let m = sentinel::master_info::<str>(&s, None, "mymaster", IO)
            .await
            .ok()?;
        if m.get("ip").map(String::as_str) != Some("localhost") {
            return None;
        }
        if sentinel::master_addr::<str>(&s, None, "mymaster", IO)
            .await
            .ok()??
            != master
        {
            return None;
        }
        let reps = sentinel::replicas::<str>(&s, None, "mymaster", IO)
            .await
            .ok()?;
        let ips: Vec<&str> = reps
            .iter()
            .filter_map(|r| r.get("ip"))
            .map(String::as_str)
            .collect();
        if ips != ["localhost", "localhost"] {
            return None;
        }
    }
    Some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_topology_fails_over_and_the_proxy_follows_by_name() {
    let t = Topology::start_test_with(1000, |s| s.announce_hostnames = true)
        .await
        .expect("topology");
    let old = t.master().await.unwrap();
    assert!(old.starts_with("localhost:"), "master named {old}");
    assert_eq!(old, t.redis_addrs()[0]);
    poll(
        "sentinels reporting hostnames",
        Duration::from_secs(10),
        || sentinels_use_names(&t, &old),
    )
    .await;
    let proxy = redis_ha_proxy::server::start(ProxyConfig::for_test(
        t.sentinel_addrs(),
        &t.opts.spec.master_name,
    ))
    .await
    .expect("proxy");
    assert_eq!(
        proxy.wait_master(Duration::from_secs(10)).await.unwrap(),
        old
    );
    let mut c = Connection::connect(&proxy.write_addr().to_string(), IO)
        .await
        .unwrap();
    c.timeout = Duration::from_secs(20);
    c.request_ok(&["SET", "before", "1"]).await.unwrap();
    // Replication is asynchronous: a write acknowledged just before a kill
    // -9 may never reach a replica. Kill only once both replicas have it.
    for r in t.redis_addrs().into_iter().filter(|r| *r != old) {
        poll(
            "the write on every replica",
            Duration::from_secs(10),
            || {
                let r = r.clone();
                async move {
                    let f = query(&r, &["GET", "before"], IO).await.ok()?;
                    (f.as_text().as_deref() == Some("1")).then_some(())
                }
            },
        )
        .await;
    }

    t.kill(&t.name_of(&old).unwrap()).unwrap();
    let new = t
        .wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(new.starts_with("localhost:"), "new master named {new}");
    // The proxy follows the switch; the write lands on the new master.
    poll(
        "the proxy routing to the new master",
        Duration::from_secs(20),
        || async { (proxy.routes.current().master.as_deref() == Some(new.as_str())).then_some(()) },
    )
    .await;
    c.request_ok(&["SET", "after", "2"]).await.unwrap();
    for (k, v) in [("before", "1"), ("after", "2")] {
        let f = query(&new, &["GET", k], IO).await.unwrap();
        assert_eq!(f.as_text().as_deref(), Some(v), "{k} on the new master");
    }

    t.restart(&t.name_of(&old).unwrap()).await.unwrap();
    t.wait_healthy(Duration::from_secs(30)).await.unwrap();
    poll(
        "sentinels reporting hostnames after the failover",
        Duration::from_secs(15),
        || sentinels_use_names(&t, &new),
    )
    .await;
    let r = poll("status healthy", Duration::from_secs(15), || async {
        local_report(&t.opts, IO).await.ok().filter(|r| r.healthy)
    })
    .await;
    assert_eq!(r.master.as_deref(), Some(new.as_str()));
    assert!(r.sentinels_agree && !r.split_brain);

    // A planned switchover by name, as the Kubernetes preStop hook runs it.
    let mut a = SwitchoverArgs::new(vec![], t.opts.state_dir.clone());
    a.only_if_master = Some(new.clone());
    let s = switchover(&a).await.expect("switchover by hostname");
    let third = s.new_master.expect("switched");
    assert!(third.starts_with("localhost:") && third != new, "{third}");
    let role = query(&new, &["ROLE"], IO).await.unwrap();
    assert_eq!(
        role.as_array().unwrap()[0].as_text().as_deref(),
        Some("slave")
    );
}
