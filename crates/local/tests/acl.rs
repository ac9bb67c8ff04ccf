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
    secrets_stay_private(&t);
    status_healthy(&t).await;

    // The default user still needs its password; `proxy` runs application
    // commands but nothing @dangerous.
    let e = query_auth::<_, str>(&master, None, &["SET", "k", "v"], IO)
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

/// Files holding passwords are 0600 or in a 0700 node dir (Redis and
/// Sentinel rewrite their configs 0644), and no process shows one in its
/// command line.
fn secrets_stay_private(t: &Topology) {
    use std::os::unix::fs::PermissionsExt;
    let state = &t.opts.state_dir;
    let mut files = vec![state.join("topology.json")];
    for u in ["default", "sentinel", "replica", "proxy"] {
        files.push(redis_ha_local::secrets::password_file(state, u));
    }
    let node_dirs = (0..t.opts.spec.redis_nodes)
        .map(redis_ha_topology::Spec::redis_name)
        .chain((0..t.opts.spec.sentinels).map(redis_ha_topology::Spec::sentinel_name));
    for d in node_dirs {
        let meta = std::fs::metadata(state.join(&d)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{d}");
    }
    for f in &files {
        let meta = std::fs::metadata(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    let pw =
        std::fs::read_to_string(redis_ha_local::secrets::password_file(state, "proxy")).unwrap();
    assert_eq!(pw, "proxy-pw\n");
    let names = (0..t.opts.spec.redis_nodes)
        .map(redis_ha_topology::Spec::redis_name)
        .chain((0..t.opts.spec.sentinels).map(redis_ha_topology::Spec::sentinel_name));
    for name in names {
        let pid = t.pid(&name).expect("running");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline);
        for secret in [PW, "sentinel-pw", "replica-pw", "proxy-pw"] {
            assert!(!cmdline.contains(secret), "{name}: {cmdline}");
        }
    }
}

/// `status` as `redis-ha status` collects it, with the default user's
/// password the topology records.
async fn status_healthy(t: &Topology) {
    let names = (0..t.opts.spec.sentinels).map(redis_ha_topology::Spec::sentinel_name);
    let sentinels: Vec<(String, String)> = names.zip(t.sentinel_addrs()).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = redis_ha_topology::status::collect::<str, str>(
            &sentinels,
            &[],
            &t.opts.spec.master_name,
            t.opts.spec.password.as_deref(),
            None,
            IO,
        )
        .await;
        if r.healthy {
            return;
        }
        assert!(Instant::now() < deadline, "not healthy: {:?}", r.problems);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
