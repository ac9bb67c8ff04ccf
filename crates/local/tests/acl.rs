//! ACL users per role with real processes: replicas replicate as `replica`,
//! sentinels talk to Redis as `sentinel` and can still fail over with only
//! its rights, and `proxy` can run application commands but not dangerous
//! ones.

use redis_ha_local::Topology;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::frame::Frame;
use redis_ha_topology::acl::AclPasswords;
use std::time::{Duration, Instant};

const IO: Duration = Duration::from_secs(2);
const PW: &str = "default-pw";

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

async fn client_list(addr: &str, kind: &str) -> String {
    let f = query_auth(addr, Some(PW), &["CLIENT", "LIST", "TYPE", kind], IO)
        .await
        .expect("CLIENT LIST");
    text(&f)
}

/// Polls until every Redis link the replicas hold to `master` is `replica`'s
/// and sentinels hold some as `sentinel`.
async fn users_on(master: &str, replicas: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let repl = client_list(master, "replica").await;
        let normal = client_list(master, "normal").await;
        let pubsub = client_list(master, "pubsub").await;
        let replica_links = repl.lines().filter(|l| l.contains("user=replica")).count();
        let ok = replica_links == replicas
            && repl.lines().all(|l| l.contains("user=replica"))
            && normal.contains("user=sentinel")
            && pubsub.contains("user=sentinel");
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "links to {master}:\nreplica:\n{repl}\nnormal:\n{normal}\npubsub:\n{pubsub}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_users_replicate_monitor_and_fail_over() {
    let t = Topology::start_test_with(1000, |s| {
        s.password = Some(PW.into());
        s.acl = Some(AclPasswords {
            sentinel: "sentinel-pw".into(),
            replica: "replica-pw".into(),
            proxy: "proxy-pw".into(),
        });
    })
    .await
    .expect("topology");
    let master = t.master().await.unwrap();
    users_on(&master, 2).await;

    // The default user still needs its password; `proxy` runs application
    // commands but nothing @dangerous.
    let e = query_auth(&master, None, &["SET", "k", "v"], IO)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    let mut c = redis_ha_resp::conn::Connection::connect(&master, IO)
        .await
        .unwrap();
    c.request_ok(&["AUTH", "proxy", "proxy-pw"]).await.unwrap();
    assert_eq!(
        text(&c.request_ok(&["ACL", "WHOAMI"]).await.unwrap()),
        "proxy"
    );
    c.request_ok(&["SET", "k", "v"]).await.unwrap();
    c.request_ok(&["ROLE"]).await.unwrap();
    c.request_ok(&["INFO", "replication"]).await.unwrap();
    c.request_ok(&["WAIT", "1", "100"]).await.unwrap();
    let e = c.request_ok(&["FLUSHALL"]).await.unwrap_err();
    assert!(e.to_string().contains("NOPERM"), "{e}");
    let mut r = redis_ha_resp::conn::Connection::connect(&master, IO)
        .await
        .unwrap();
    r.request_ok(&["AUTH", "replica", "replica-pw"])
        .await
        .unwrap();
    let e = r.request_ok(&["GET", "k"]).await.unwrap_err();
    assert!(e.to_string().contains("NOPERM"), "{e}");

    // Failover with only the sentinel user's rights: SLAVEOF, CONFIG
    // REWRITE, CLIENT KILL on the nodes.
    t.kill(&t.name_of(&master).unwrap()).unwrap();
    let new = t
        .wait_new_master(&master, Duration::from_secs(30))
        .await
        .expect("failover");
    users_on(&new, 1).await;
}
