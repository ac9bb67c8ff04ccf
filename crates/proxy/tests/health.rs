//! Read rotation health and failing closed.

#[macro_use]
mod common;
use common::*;
use redis_ha_proxy::config::ConnMode;
use redis_ha_proxy::config::ReadFallback;
use std::time::Duration;

async fn stopped_or_dead_replicas_leave_the_rotation_and_come_back(mode: ConnMode) {
    let (t, p) = setup(|c| {
        c.mode = mode;
        c.read_fallback = ReadFallback::Error;
    })
    .await;
    let master = t.master().await.unwrap();
    let reps: Vec<String> = t
        .redis_addrs()
        .into_iter()
        .filter(|a| *a != master)
        .collect();
    let (frozen, dead) = (&reps[0], &reps[1]);
    // SIGSTOP: it stops answering (and acking replication).
    t.stop(&t.name_of(frozen).unwrap()).unwrap();
    poll(
        "frozen replica out of rotation",
        Duration::from_secs(20),
        || async { (!p.routes.current().replicas.contains(frozen)).then_some(()) },
    )
    .await;
    t.kill(&t.name_of(dead).unwrap()).unwrap();
    poll(
        "dead replica out of rotation",
        Duration::from_secs(20),
        || async { p.routes.current().replicas.is_empty().then_some(()) },
    )
    .await;
    // No healthy replica and --read-fallback error: a clear error.
    let mut r = conn(p.read_addr()).await;
    let e = cmd(&mut r, &["GET", "k"]).await;
    assert!(
        e.error_message()
            .unwrap_or_default()
            .starts_with("NOREPLICAS"),
        "{e:?}"
    );
    // Both come back.
    t.cont(&t.name_of(frozen).unwrap()).unwrap();
    t.restart(&t.name_of(dead).unwrap()).await.unwrap();
    poll(
        "replicas back in rotation",
        Duration::from_secs(30),
        || async { (p.routes.current().replicas.len() == 2).then_some(()) },
    )
    .await;
    let mut r = conn(p.read_addr()).await;
    assert!(!cmd(&mut r, &["GET", "k"]).await.is_error());
}

async fn without_sentinels_and_master_the_proxy_fails_closed(mode: ConnMode) {
    let (t, p) = setup(|c| {
        c.mode = mode;
        c.quorum_timeout = Duration::from_secs(2);
        c.failover_hold = Duration::from_secs(1);
    })
    .await;
    let master = t.master().await.unwrap();
    for s in ["sentinel-0", "sentinel-1", "sentinel-2"] {
        t.stop(s).unwrap();
    }
    t.stop(&t.name_of(&master).unwrap()).unwrap();
    let closed = poll("fail closed", Duration::from_secs(20), || async {
        p.routes.current().closed.clone()
    })
    .await;
    assert!(closed.contains("sentinels reachable"), "{closed}");
    assert_eq!(p.routes.current().master, None);
    let mut c = conn(p.write_addr()).await;
    let e = cmd(&mut c, &["SET", "x", "1"]).await;
    let msg = e.error_message().unwrap_or_default();
    assert!(
        msg.starts_with("TRYAGAIN") && msg.contains("failing closed"),
        "{e:?}"
    );
    let (code, body) = http_get(p.admin_addr, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    // Everything back: routing resumes.
    t.cont(&t.name_of(&master).unwrap()).unwrap();
    for s in ["sentinel-0", "sentinel-1", "sentinel-2"] {
        t.cont(s).unwrap();
    }
    p.wait_master(Duration::from_secs(20)).await.unwrap();
    let mut c = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut c, &["SET", "x", "1"]).await), "OK");
}

in_both_modes!(
    stopped_or_dead_replicas_leave_the_rotation_and_come_back,
    without_sentinels_and_master_the_proxy_fails_closed
);
