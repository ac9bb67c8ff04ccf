//! What clients see across a switch: state follows them, sessions that
//! cannot move are closed cleanly, and the old master is fenced.

#[macro_use]
mod common;
use common::*;
use redis_ha_proxy::config::ConnMode;
use std::time::Duration;

async fn planned_failover_moves_state_fences_old_master_and_closes_pinned_sessions(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let old = t.master().await.unwrap();
    let epoch0 = p.routes.current().epoch;

    // A session with state that must survive the switch.
    let mut s = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut s, &["SELECT", "3"]).await), "OK");
    assert_eq!(
        text(&cmd(&mut s, &["CLIENT", "SETNAME", "keeper"]).await),
        "OK"
    );
    assert_eq!(text(&cmd(&mut s, &["SET", "before", "1"]).await), "OK");
    // A session in the middle of a transaction cannot move.
    let mut m = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut m, &["MULTI"]).await), "OK");
    assert_eq!(text(&cmd(&mut m, &["SET", "tx", "1"]).await), "QUEUED");
    // A plain idle session must just keep working.
    let mut idle = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut idle, &["PING"]).await), "PONG");
    assert!(
        !client_connections(&t, &old).await.is_empty(),
        "the proxy should be connected to the master"
    );

    let f = sentinel_query(
        &t,
        &t.sentinel_addrs()[0],
        &["SENTINEL", "FAILOVER", &t.opts.spec.master_name],
    )
    .await
    .unwrap();
    assert!(!f.is_error(), "{f:?}");
    let new = poll(
        "the proxy to adopt a new master",
        Duration::from_secs(30),
        || async {
            let r = p.routes.current();
            (r.epoch > epoch0 && r.master.is_some()).then(|| r.master.clone().unwrap())
        },
    )
    .await;
    assert_ne!(new, old);

    // State replayed: same db, same name, on the new master.
    assert_eq!(text(&cmd(&mut s, &["SET", "after", "2"]).await), "OK");
    assert_eq!(text(&cmd(&mut s, &["CLIENT", "GETNAME"]).await), "keeper");
    let on_new = node_query(&t, &new, &["SELECT", "3"]).await.unwrap();
    assert_eq!(text(&on_new), "OK");
    let mut direct = node_conn(&t, &new).await;
    cmd(&mut direct, &["SELECT", "3"]).await;
    assert_eq!(
        text(&cmd(&mut direct, &["GET", "after"]).await),
        "2",
        "write must land in db 3 of the new master"
    );

    // The transaction's session gets a clear error and is closed.
    let r = m.request(&["EXEC"]).await;
    match r {
        Ok(f) => {
            let e = f.error_message().unwrap_or_default();
            assert!(e.contains("redis-ha") && e.contains("MULTI"), "{f:?}");
            assert!(
                m.read_frame().await.is_err(),
                "pinned session must be closed"
            );
        }
        Err(e) => panic!("expected an error reply before the close, got {e}"),
    }
    // Other sessions are untouched.
    assert_eq!(text(&cmd(&mut idle, &["PING"]).await), "PONG");

    // Fencing: no proxy connection is left on the old master.
    poll(
        "no proxy connection on the old master",
        Duration::from_secs(10),
        || async {
            let left = data_connections(&t, &old).await;
            left.is_empty().then_some(())
        },
    )
    .await;
    // Writes keep flowing to the new master only.
    for i in 0..50 {
        assert_eq!(
            text(&cmd(&mut idle, &["SET", &format!("f{i}"), "x"]).await),
            "OK"
        );
    }
    let left = data_connections(&t, &old).await;
    assert!(
        left.is_empty(),
        "a command reached the old master: {left:?}"
    );
}

async fn writes_are_held_through_a_kill_and_resume_on_the_same_connection(mode: ConnMode) {
    let (t, p) = setup(|c| c.mode = mode).await;
    let old = t.master().await.unwrap();
    let mut c = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut c, &["SET", "a", "1"]).await), "OK");
    t.kill(&t.name_of(&old).unwrap()).unwrap();
    // Once the node is gone (and the proxy has seen its connection close: a
    // write racing the kill onto the dying connection would get an unknown
    // outcome instead, correctly), a write waits for the new master.
    poll(
        "the old master to refuse connections",
        Duration::from_secs(5),
        || async {
            tokio::net::TcpStream::connect(&old)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Sent while there is no master: held, then answered by the new one.
    let started = std::time::Instant::now();
    let r = cmd(&mut c, &["INCR", "n"]).await;
    assert_eq!(r.as_int(), Some(1), "{r:?}");
    eprintln!("held write answered after {:?}", started.elapsed());
    // The proxy followed the failover leader; the other sentinels catch up.
    let new = t
        .wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(p.routes.current().master.as_deref(), Some(new.as_str()));
    assert!(
        p.metrics
            .ep(redis_ha_proxy::route::Endpoint::write)
            .held
            .get()
            >= 1
    );
    // The failover's duration is recorded once a write is served again.
    poll(
        "a failover in the duration histogram",
        Duration::from_secs(10),
        || async {
            let m = p.metrics.encode();
            let master = format!("redis_ha_master_info{{addr=\"{new}\"}} 1");
            (m.contains("redis_ha_failover_seconds_count 1") && m.contains(&master)).then_some(())
        },
    )
    .await;
    // Its record names both masters (writes were held before the +sdown
    // that started it) and times the steps in order.
    let f = p.control.snapshot().failovers.remove(0);
    assert_eq!(f.old_master.as_deref(), Some(old.as_str()), "{f:?}");
    assert_eq!(f.new_master.as_deref(), Some(new.as_str()), "{f:?}");
    let (promoted, adopted, first) = (
        f.promoted_ms.expect("promoted"),
        f.adopted_ms.expect("adopted"),
        f.first_write_ms.expect("first write: the held INCR"),
    );
    assert!(promoted <= adopted && adopted <= first, "{f:?}");
    assert!(f.odown_ms.is_some(), "{f:?}");
}

async fn hold_expires_with_a_clear_error(mode: ConnMode) {
    let (t, p) = setup(|c| {
        c.mode = mode;
        c.failover_hold = Duration::from_millis(500);
    })
    .await;
    let mut c = conn(p.write_addr()).await;
    // Every node frozen: no failover can happen. Once the proxy knows no
    // master, a write is held, then fails with TRYAGAIN. (A write sent while
    // the frozen master was still routed has an unknown outcome instead: the
    // node may run it when it resumes.)
    let names = t.opts.node_names();
    let redis: Vec<&String> = names.iter().filter(|n| n.starts_with("redis-")).collect();
    for n in &redis {
        t.stop(n).unwrap();
    }
    poll(
        "the proxy to drop the frozen master",
        Duration::from_secs(30),
        || async { p.routes.current().master.is_none().then_some(()) },
    )
    .await;
    let r = cmd(&mut c, &["SET", "x", "1"]).await;
    for n in &redis {
        t.cont(n).unwrap();
    }
    let e = r
        .error_message()
        .unwrap_or_else(|| panic!("expected an error, got {r:?}"));
    assert!(e.starts_with("TRYAGAIN") && e.contains("redis-ha"), "{e}");
}

/// After a kill -9 a subscriber's connection ends with an error (its
/// subscriptions were on the dead node); subscribing again reaches the new
/// master as soon as the proxy adopts it, not when the hold would expire.
async fn a_subscriber_resubscribes_as_soon_as_the_new_master_is_adopted(mode: ConnMode) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (t, p) = setup(|c| {
        c.mode = mode;
        c.failover_hold = Duration::from_secs(40);
    })
    .await;
    let old = t.master().await.unwrap();
    let mut sub = tokio::net::TcpStream::connect(p.write_addr())
        .await
        .unwrap();
    sub.write_all(b"SUBSCRIBE news\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(sub.read(&mut buf).await.unwrap() > 0);
    t.kill(&t.name_of(&old).unwrap()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sub.read_to_end(&mut rest))
        .await
        .expect("the subscriber's connection is closed")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("subscribed / MONITOR"), "{rest}");
    let killed = std::time::Instant::now();
    // Subscribe again once the proxy routes to the master the sentinels
    // agree on (before that a subscription may land on a promotion that is
    // then undone, and end with an error again).
    let new = t
        .wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    poll(
        "the proxy to route to the new master",
        Duration::from_secs(30),
        || async { (p.routes.current().master.as_deref() == Some(new.as_str())).then_some(()) },
    )
    .await;
    let mut sub = tokio::net::TcpStream::connect(p.write_addr())
        .await
        .unwrap();
    sub.write_all(b"SUBSCRIBE news\r\n").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(20), sub.read(&mut buf))
        .await
        .expect("subscribed before the 40 s hold ends")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("subscribe"));
    eprintln!(
        "subscribed again {:?} after the old master died",
        killed.elapsed()
    );
    let mut c = conn(p.write_addr()).await;
    let heard = cmd(&mut c, &["PUBLISH", "news", "hello"]).await;
    assert_eq!(
        heard.as_int(),
        Some(1),
        "the new subscription is on the new master"
    );
}

in_both_modes!(
    a_subscriber_resubscribes_as_soon_as_the_new_master_is_adopted,
    planned_failover_moves_state_fences_old_master_and_closes_pinned_sessions,
    writes_are_held_through_a_kill_and_resume_on_the_same_connection,
    hold_expires_with_a_clear_error
);
