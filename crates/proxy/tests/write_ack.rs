//! `--write-ack`: a write is acknowledged only once a replica has it, so a
//! master lost right after acknowledging cannot take it along. The replicas
//! are frozen (SIGSTOP) and a 32 MB value written to the master directly
//! fills the replication sockets, so what follows stays in the master's
//! memory; INCRs continue, then the master is killed (-9) and the replicas
//! resumed. Without write-ack the INCRs acknowledged in that window are lost
//! (asynchronous replication; the test must be able to see it); with it
//! each got -NOREPLICAS instead, and every acknowledged INCR survives the
//! failover, none applied twice. Both modes, with a transaction (its EXEC
//! waits once) before the fault.

#[macro_use]
mod common;

use common::*;
use redis_ha_proxy::config::ConnMode;
use redis_ha_proxy::data::ack::WriteAck;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::Frame;
use std::time::Duration;

/// What the client saw, and the counter after the failover.
#[derive(Debug)]
struct Window {
    acked: i64,
    not_replicated: i64,
    after: i64,
}

async fn window(mode: ConnMode, ack: Option<&str>) -> Window {
    let (t, p) = setup(|c| {
        c.mode = mode;
        c.write_ack = ack.map(|a| WriteAck::parse(a).unwrap());
    })
    .await;
    let mut c = conn(p.write_addr()).await;
    let mut acked = 0;
    for i in 1..=20 {
        assert_eq!(cmd(&mut c, &["INCR", "w"]).await.as_int(), Some(i));
        acked += 1;
    }
    // A transaction: +QUEUED replies pass, EXEC's reply waits for the ack.
    assert_eq!(text(&cmd(&mut c, &["MULTI"]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["INCR", "w"]).await), "QUEUED");
    let exec = cmd(&mut c, &["EXEC"]).await;
    assert!(
        matches!(&exec, Frame::Array(v) if v[0].as_int() == Some(21)),
        "{exec:?}"
    );
    acked += 1;

    let master = t.master().await.unwrap();
    let replicas = replica_names(&t, &master);
    for r in &replicas {
        t.stop(r).unwrap();
    }
    // Frozen replicas still take data into their kernel buffers: fill them.
    let ballast = "x".repeat(32 << 20);
    let r = query_auth(
        &master,
        Some(t.redis_access()),
        &["SET", "ballast", &ballast],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.ok().and_then(|f| f.as_text()).as_deref(), Some("OK"));
    let mut not_replicated = 0;
    for _ in 0..10 {
        let r = cmd(&mut c, &["INCR", "w"]).await;
        match r.error_message() {
            None => acked += 1,
            Some(e) => {
                assert!(
                    e.starts_with("NOREPLICAS redis-ha: the write ran on the master"),
                    "{e}"
                );
                assert!(
                    e.contains("only 0 of 1 replicas confirmed it within 100 ms"),
                    "{e}"
                );
                not_replicated += 1;
            }
        }
    }
    t.kill(&t.name_of(&master).unwrap()).unwrap();
    for r in &replicas {
        t.cont(r).unwrap();
    }
    t.wait_new_master(&master, Duration::from_secs(30))
        .await
        .expect("failover");
    let after = poll("writes served again", Duration::from_secs(30), || async {
        let mut c = conn(p.write_addr()).await;
        let r = c.request(&["GET", "w"]).await.ok()?;
        r.as_text()?.parse::<i64>().ok()
    })
    .await;
    Window {
        acked,
        not_replicated,
        after,
    }
}

async fn acknowledged_writes_survive(mode: ConnMode) {
    let w = window(mode, Some("replicas=1,timeout=100")).await;
    eprintln!("{mode:?} with --write-ack: {w:?}");
    assert_eq!(
        w.not_replicated, 10,
        "{w:?}: every write in the window is refused"
    );
    assert!(w.after >= w.acked, "{w:?}: an acknowledged write was lost");
    assert!(
        w.after <= w.acked + w.not_replicated,
        "{w:?}: applied twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_write_ack_nothing_acknowledged_is_lost_multiplex() {
    acknowledged_writes_survive(ConnMode::Multiplex).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_write_ack_nothing_acknowledged_is_lost_dedicated() {
    acknowledged_writes_survive(ConnMode::Dedicated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_write_ack_the_window_loses_acknowledged_writes() {
    let w = window(ConnMode::Multiplex, None).await;
    eprintln!("without --write-ack: {w:?}");
    assert_eq!(w.not_replicated, 0, "{w:?}");
    assert_eq!(w.acked, 31, "{w:?}");
    assert!(
        w.after < w.acked,
        "{w:?}: the window should lose writes; the test sees nothing"
    );
}
