//! `redis-ha switchover` against a real topology (3 redis-server, 3
//! redis-sentinel) with the proxy in front: under INCR and RPUSH load the
//! master changes, the sentinels agree on the new one, every acknowledged
//! write is on the new master exactly once and no writer sees an error;
//! `--only-if-master` naming a replica does nothing; a second switchover
//! right after the first waits for it and switches again; with no replica
//! to promote it refuses without pausing anything.

use redis_ha_local::switchover::{switchover, SwitchoverArgs};
use redis_ha_local::Topology;
use redis_ha_proxy::config::{ConnMode, ProxyConfig};
use redis_ha_resp::conn::query;
use redis_ha_resp::{Connection, Frame};
use redis_ha_topology::role;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WRITERS: usize = 4;

fn args(t: &Topology) -> SwitchoverArgs {
    // No --sentinel: the local topology is found through its state dir.
    SwitchoverArgs::new(vec![], t.opts.state_dir.clone())
}

/// What one writer sent and what came back.
#[derive(Default, Debug)]
struct WriterLog {
    /// INCR replies, in order (each must be the previous + 1).
    incr_replies: Vec<i64>,
    /// RPUSH values acknowledged.
    pushed: Vec<String>,
    /// Requests answered with an error or with no answer (outcome unknown).
    errors: Vec<String>,
    /// The longest a request waited for its reply.
    max_wait: Duration,
}

/// INCR `counter:{w}` and RPUSH `list:{w}` unique values through `proxy`
/// until `stop`; a broken connection is re-opened.
async fn writer(proxy: String, w: usize, stop: Arc<AtomicBool>) -> WriterLog {
    let mut log = WriterLog::default();
    let (counter, list) = (format!("counter:{w}"), format!("list:{w}"));
    let mut conn: Option<Connection> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Connection::connect(&proxy, Duration::from_secs(2)).await {
                Ok(mut c) => {
                    c.timeout = Duration::from_secs(20);
                    conn.insert(c)
                }
                Err(e) => {
                    log.errors.push(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        i += 1;
        let value = format!("{w}-{i}");
        // Odd requests push, even ones count.
        let (cmd, arg) = if i % 2 == 1 {
            ("RPUSH", Some(value.as_str()))
        } else {
            ("INCR", None)
        };
        let key = if arg.is_some() {
            list.as_str()
        } else {
            counter.as_str()
        };
        let mut req = vec![cmd, key];
        req.extend(arg);
        let sent = Instant::now();
        let reply = c.request(&req).await;
        log.max_wait = log.max_wait.max(sent.elapsed());
        match reply {
            Ok(Frame::Integer(n)) if cmd == "INCR" => log.incr_replies.push(n),
            Ok(Frame::Integer(_)) => log.pushed.push(value),
            Ok(other) => log.errors.push(format!("{cmd}: {other:?}")),
            Err(e) => {
                log.errors.push(format!("{cmd}: {e}"));
                conn = None;
            }
        }
    }
    log
}

async fn text(node: &str, args: &[&str]) -> Frame {
    query(node, args, Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("{args:?} on {node}: {e}"))
}

/// Polls until a majority of all sentinels names one master; returns it.
async fn agreed_master(t: &Topology) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = t.sentinel_addrs().len();
        let v = role::ask::<str>(
            &t.sentinel_addrs(),
            None,
            "mymaster",
            Duration::from_secs(1),
        )
        .await;
        if let Some(m) = v.agreement.most_named().filter(|m| v.votes_for(m) * 2 > n) {
            return m.clone();
        }
        assert!(Instant::now() < deadline, "sentinels never agreed: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_load_through_the_proxy_loses_and_repeats_nothing() {
    under_load(ConnMode::Dedicated).await
}

/// Kubernetes runs the proxy multiplexed: held writes share backend
/// connections with other clients' requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_load_through_a_multiplexing_proxy_loses_and_repeats_nothing() {
    under_load(ConnMode::Multiplex).await
}

async fn under_load(mode: ConnMode) {
    let t = Topology::start_test(1000).await.expect("topology");
    let old = t.master().await.unwrap();
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.mode = mode;
    let proxy = redis_ha_proxy::server::start(cfg).await.expect("proxy");
    proxy.wait_master(Duration::from_secs(10)).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(proxy.write_addr().to_string(), w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let summary = switchover(&args(&t)).await.expect("switchover");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }
    let new = agreed_master(&t).await;
    eprintln!("summary: {summary:?}");
    assert!(summary.switched);
    assert_eq!(summary.old_master, old);
    assert_eq!(summary.new_master.as_deref(), Some(new.as_str()));
    assert_ne!(new, old, "the master did not change");
    let pause = summary.pause_ms.expect("unpaused");
    assert!(pause < 10_000, "writes paused {pause} ms");
    assert!(t.redis_addrs().contains(&new));

    for (w, log) in logs.iter().enumerate() {
        eprintln!(
            "writer {w}: {} INCR, {} RPUSH acknowledged, {} errors, longest wait {:?}",
            log.incr_replies.len(),
            log.pushed.len(),
            log.errors.len(),
            log.max_wait
        );
        assert!(
            log.errors.is_empty(),
            "writer {w} got errors: {:?}",
            log.errors
        );
        assert!(log.pushed.len() > 20, "writer {w} barely wrote");
        // Each acknowledged INCR ran once: the replies count 1, 2, 3...
        let want: Vec<i64> = (1..=log.incr_replies.len() as i64).collect();
        assert_eq!(
            log.incr_replies, want,
            "writer {w}: INCR replies skip or repeat"
        );
        let count = text(&new, &["GET", &format!("counter:{w}")]).await;
        assert_eq!(
            count.as_text().and_then(|c| c.parse::<usize>().ok()),
            Some(log.incr_replies.len()),
            "writer {w}: counter on the new master"
        );
        let list = text(&new, &["LRANGE", &format!("list:{w}"), "0", "-1"]).await;
        let on_master: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_text())
            .collect();
        let distinct: HashSet<&String> = on_master.iter().collect();
        assert_eq!(
            distinct.len(),
            on_master.len(),
            "writer {w}: duplicated pushes"
        );
        // No error: what is there is exactly what was acknowledged, in order.
        assert_eq!(on_master, log.pushed, "writer {w}: pushes lost or extra");
    }
    // The old master follows the new one.
    let role = text(&old, &["ROLE"]).await;
    assert_eq!(
        role.as_array().unwrap()[0].as_text().as_deref(),
        Some("slave")
    );
}

/// The second switchover starts while the sentinels still finish the
/// first one's failover: it waits for them instead of racing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_switchovers_both_switch() {
    let t = Topology::start_test(1000).await.expect("topology");
    let first = switchover(&args(&t)).await.expect("first switchover");
    let second = switchover(&args(&t)).await.expect("second switchover");
    assert_eq!(second.old_master, first.new_master.clone().unwrap());
    let last = second.new_master.unwrap();
    assert_ne!(last, second.old_master);
    assert_eq!(agreed_master(&t).await, last);
    t.wait_healthy(Duration::from_secs(30))
        .await
        .expect("healthy after two switches");
    assert_eq!(t.master().await.unwrap(), last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_if_master_naming_a_replica_does_nothing() {
    let t = Topology::start_test(1000).await.expect("topology");
    let old = t.master().await.unwrap();
    let replica = t.redis_addrs().into_iter().find(|a| *a != old).unwrap();
    let mut a = args(&t);
    a.only_if_master = Some(replica.clone());
    let s = switchover(&a).await.expect("a no-op is a success");
    assert!(!s.switched);
    assert_eq!(s.pause_ms, None);
    assert_eq!(s.old_master, old);
    assert!(s.note.unwrap().contains("is not the master"));
    assert_eq!(agreed_master(&t).await, old, "the master changed");
    // Nothing was paused: a write goes through at once.
    let f = query(&old, &["SET", "k", "v"], Duration::from_millis(500))
        .await
        .expect("write on the master");
    assert_eq!(f.as_text().as_deref(), Some("OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_replica_to_promote_it_refuses_and_pauses_nothing() {
    let t = Topology::start_test(1000).await.expect("topology");
    let old = t.master().await.unwrap();
    // Without replicas min-replicas-to-write would refuse the write below
    // for a reason of its own: this test is about what switchover pauses.
    let off = ["CONFIG", "SET", "min-replicas-to-write", "0"];
    query(&old, &off, Duration::from_secs(2)).await.unwrap();
    for a in t.redis_addrs().into_iter().filter(|a| *a != old) {
        t.kill(&t.name_of(&a).unwrap()).unwrap();
    }
    let mut a = args(&t);
    // It waits for a replica to come back linked until --timeout.
    a.timeout = Duration::from_secs(3);
    let err = switchover(&a).await.expect_err("nothing to promote");
    let msg = format!("{err:#}");
    assert!(msg.contains("no replica Sentinel could promote"), "{msg}");
    assert!(msg.contains("nothing was paused"), "{msg}");
    let f = query(&old, &["SET", "k", "v"], Duration::from_millis(500))
        .await
        .expect("write on the master");
    assert_eq!(f.as_text().as_deref(), Some("OK"));
    assert_eq!(agreed_master(&t).await, old);
}
