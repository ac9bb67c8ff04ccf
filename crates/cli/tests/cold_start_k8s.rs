//! The Kubernetes cold starts of issue 27, with real processes.
//! `redis-ha init-role` runs for each node exactly as the rendered Redis
//! StatefulSet calls it (its addresses mapped to this machine's ports):
//! - the master moved to redis-2 by a switchover, redis-0 then down while
//!   500 more keys were written, then every process stopped; the inits run
//!   while the sentinels are not answering yet: they wait, and once the
//!   sentinels start, name redis-2 master;
//! - the same stale redis-0, and the sentinels' volumes lost too: they come
//!   back naming the first boot's master (redis-0) with no history, as
//!   their init step renders them, and no Redis pod runs. The inits compare
//!   their disks through each other's port (each sees only its own volume),
//!   choose the newest, and its init points the sentinels at it.
//!
//! Started that way, every acknowledged key is kept.

mod common;

use redis_ha_k8s::options::RenderOptions;
use redis_ha_k8s::render::{self, Object};
use redis_ha_local::boot::Role;
use redis_ha_local::switchover::{switchover, SwitchoverArgs};
use redis_ha_local::Topology;
use redis_ha_resp::conn::query;
use redis_ha_resp::Frame;
use redis_ha_topology::promotion::Promotion;
use redis_ha_topology::render::{sentinel_conf, SentinelNode};
use redis_ha_topology::split_addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IO: Duration = Duration::from_secs(2);

/// Reads init-role's include file as Redis would: `replicaof HOST PORT`
/// or nothing, and `replica-priority 0` on a restart.
fn role_file(conf: &str) -> (Role, Promotion) {
    let lines: Vec<Vec<&str>> = conf
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut role = Role::Master;
    let mut promotion = Promotion::Now;
    for l in &lines {
        match l[..] {
            ["replicaof", h, p] => role = Role::ReplicaOf(format!("{h}:{p}")),
            ["replica-priority", "0"] => promotion = Promotion::AfterSync,
            _ => panic!("role file {conf:?}"),
        }
    }
    (role, promotion)
}

/// The init-role container's command in the rendered Redis StatefulSet.
fn rendered_init_role() -> Vec<String> {
    let o = RenderOptions::default();
    let all = render::manifests(&o).expect("render");
    let redis = all
        .iter()
        .flat_map(|m| &m.objects)
        .find_map(|obj| match obj {
            Object::StatefulSet(s) if s.metadata.name.as_deref() == Some("redis") => Some(s),
            _ => None,
        })
        .expect("the redis StatefulSet");
    let pod = redis.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let init = pod
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name == "init-role")
        .expect("the init-role container");
    init.command.clone().unwrap()
}

/// The rendered command for pod `redis-i`, with the pod's DNS names and
/// volume paths mapped to this machine's topology.
fn command_for(t: &Topology, i: usize) -> Vec<String> {
    let o = RenderOptions::default();
    let mut map: Vec<(String, String)> = Vec::new();
    for (j, a) in t.redis_addrs().into_iter().enumerate() {
        map.push((format!("{}:6379", o.redis_host(j)), a));
    }
    for (j, a) in t.sentinel_addrs().into_iter().enumerate() {
        let host = o.pod_host(&format!("sentinel-{j}"), "sentinel-headless");
        map.push((format!("{host}:26379"), a));
    }
    let node_dir = t.opts.node_dir(&format!("redis-{i}"));
    rendered_init_role()
        .into_iter()
        .map(|w| w.replace("$(POD_NAME)", &format!("redis-{i}")))
        .map(|w| {
            if let Some((_, to)) = map.iter().find(|(from, _)| *from == w) {
                return to.clone();
            }
            match w.as_str() {
                "/data" => t.data_dir(i).display().to_string(),
                "/data/role.conf" => node_dir.join("role.conf").display().to_string(),
                _ => w,
            }
        })
        .collect()
}

async fn write_keys(at: &str, prefix: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..n {
        let k = format!("{prefix}:{i}");
        while !matches!(query(at, &["SET", &k, &k], IO).await, Ok(Frame::Simple(ref s)) if s == "OK")
        {
            assert!(Instant::now() < deadline, "SET {k} refused");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn wait_acked(master: &str, replicas: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let n = replicas.to_string();
    while query(master, &["WAIT", &n, "1000"], IO)
        .await
        .ok()
        .and_then(|f| f.as_int())
        < Some(replicas)
    {
        assert!(Instant::now() < deadline, "WAIT {n}");
    }
}

async fn count_present(node: &str, prefix: &str, n: usize) -> usize {
    let mut c = 0;
    for i in 0..n {
        let k = format!("{prefix}:{i}");
        if query(node, &["EXISTS", &k], IO)
            .await
            .ok()
            .and_then(|f| f.as_int())
            == Some(1)
        {
            c += 1;
        }
    }
    c
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_cold_start_after_a_switchover_keeps_the_newest_writes() {
    // appendfsync always: see local/tests/restart.rs.
    let t = Topology::start_test_with(2000, |s| s.appendfsync = "always".into())
        .await
        .expect("topology");
    let addrs = t.redis_addrs();
    assert_eq!(t.master().await.unwrap(), addrs[0]);
    write_keys(&addrs[0], "a", 500).await;
    wait_acked(&addrs[0], 2).await;

    // The switchover (Sentinel picks redis-1 or redis-2: the issue's
    // redis-2, called `newest` here).
    let s = switchover(&SwitchoverArgs::new(vec![], t.opts.state_dir.clone()))
        .await
        .expect("switchover");
    let newest = addrs
        .iter()
        .position(|a| Some(a) == s.new_master.as_ref())
        .expect("a new master");
    assert_ne!(newest, 0);
    t.wait_healthy(Duration::from_secs(30)).await.unwrap();

    // redis-0 goes down; 500 more keys, acknowledged and on redis-1.
    t.kill("redis-0").unwrap();
    write_keys(&addrs[newest], "b", 500).await;
    wait_acked(&addrs[newest], 1).await;
    t.kill_all();

    // Every pod's init container at once, before any sentinel answers.
    let (mut inits, outs) = spawn_inits(&t);
    // They wait, and say so.
    let deadline = Instant::now() + Duration::from_secs(20);
    for out in &outs {
        loop {
            let text = std::fs::read_to_string(out).unwrap_or_default();
            if text.contains("waiting for the sentinels: 0 of 3 answer") {
                break;
            }
            assert!(Instant::now() < deadline, "no wait line: {text:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for c in &mut inits.0 {
        assert!(
            c.try_wait().unwrap().is_none(),
            "init-role ended before the sentinels answered"
        );
    }

    // The sentinels' pods come up (with their volumes: their own files).
    for i in 0..3 {
        t.restart(&format!("sentinel-{i}")).await.expect("sentinel");
    }
    wait_inits_done(&mut inits, &outs, Duration::from_secs(60)).await;
    let (h2, p2) = addrs[newest].rsplit_once(':').unwrap();
    for i in 0..3 {
        let dir = t.opts.node_dir(&format!("redis-{i}"));
        let conf = std::fs::read_to_string(dir.join("role.conf")).unwrap();
        let (role, promotion) = role_file(&conf);
        if i == newest {
            assert_eq!(role, Role::Master, "redis-{i} (the newest) must be master");
        } else {
            assert_eq!(role, Role::ReplicaOf(format!("{h2}:{p2}")), "redis-{i}");
            // A restart: not promotable until synced (the pod's replica-guard).
            assert_eq!(promotion, Promotion::AfterSync, "redis-{i}: {conf:?}");
        }
        t.start_redis_in_role(i, &role, promotion)
            .await
            .expect("redis");
    }
    t.wait_healthy(Duration::from_secs(60)).await.unwrap();
    assert_eq!(t.master().await.unwrap(), addrs[newest]);
    for a in &addrs {
        assert_eq!(count_present(a, "a", 500).await, 500, "a on {a}");
        assert_eq!(count_present(a, "b", 500).await, 500, "b on {a}");
    }
}

/// Every pod's init container at once; their output files.
fn spawn_inits(t: &Topology) -> (Killed, Vec<PathBuf>) {
    let mut inits = Killed(Vec::new());
    let mut outs = Vec::new();
    for i in 0..3 {
        let cmd = command_for(t, i);
        assert_eq!(cmd[..2], ["redis-ha", "init-role"]);
        let out = t.opts.node_dir(&format!("redis-{i}")).join("init-role.out");
        let child = Command::new(common::BIN)
            .args(&cmd[1..])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("init-role");
        inits.0.push(child);
        outs.push(out);
    }
    (inits, outs)
}

/// Each init ended well within `within`; their outputs on failure.
async fn wait_inits_done(inits: &mut Killed, outs: &[PathBuf], within: Duration) {
    let deadline = Instant::now() + within;
    for c in &mut inits.0 {
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            let said: Vec<String> = outs
                .iter()
                .map(|o| std::fs::read_to_string(o).unwrap_or_default())
                .collect();
            assert!(
                Instant::now() < deadline,
                "init-role still waiting: {said:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_cold_start_with_the_sentinels_state_lost_chooses_by_data() {
    // appendfsync always: see local/tests/restart.rs.
    let t = Topology::start_test_with(2000, |s| s.appendfsync = "always".into())
        .await
        .expect("topology");
    let addrs = t.redis_addrs();
    assert_eq!(t.master().await.unwrap(), addrs[0]);
    write_keys(&addrs[0], "a", 300).await;
    wait_acked(&addrs[0], 2).await;
    // redis-0 (the master) goes down: a failover, then 300 more keys on
    // the new master and its one replica. redis-0 is stale.
    t.kill("redis-0").unwrap();
    let newest = t
        .wait_new_master(&addrs[0], Duration::from_secs(30))
        .await
        .expect("a failover");
    write_keys(&newest, "b", 300).await;
    wait_acked(&newest, 1).await;
    t.kill_all();

    // The sentinels' volumes are new: each comes back as its init step
    // renders it without a peer to copy, monitoring redis-0, no history.
    t.forget_sentinel_state().unwrap();
    let (h0, p0) = split_addr(&addrs[0]).unwrap();
    for i in 0..3 {
        let name = format!("sentinel-{i}");
        let dir = t.opts.node_dir(&name);
        let node = SentinelNode {
            bind: t.opts.host.clone(),
            port: t.opts.sentinel_ports[i],
            dir: dir.display().to_string(),
            master: (h0.clone(), p0),
            known_replicas: vec![],
            announce: None,
            logfile: None,
            pidfile: None,
        };
        std::fs::write(
            dir.join("sentinel.conf"),
            sentinel_conf(&t.opts.spec, &node),
        )
        .unwrap();
        t.restart(&name).await.expect("sentinel");
    }

    // No Redis pod runs; every init at once, and as on Kubernetes each
    // node's Redis starts as soon as its own init is done (the chosen
    // master's init sees its peers again once they run).
    let (mut inits, outs) = spawn_inits(&t);
    let mut started = [false; 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.contains(&false) {
        let said: Vec<String> = outs
            .iter()
            .map(|o| std::fs::read_to_string(o).unwrap_or_default())
            .collect();
        assert!(
            Instant::now() < deadline,
            "init-role still waiting: {said:#?}"
        );
        for i in 0..3 {
            if started[i] {
                continue;
            }
            let Some(status) = inits.0[i].try_wait().unwrap() else {
                continue;
            };
            assert!(status.success(), "redis-{i}: {}", said[i]);
            let conf =
                std::fs::read_to_string(t.opts.node_dir(&format!("redis-{i}")).join("role.conf"))
                    .unwrap();
            let (role, promotion) = role_file(&conf);
            t.start_redis_in_role(i, &role, promotion)
                .await
                .expect("redis");
            started[i] = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let said: Vec<String> = outs
        .iter()
        .map(|o| std::fs::read_to_string(o).unwrap())
        .collect();
    let chosen = (0..3)
        .find(|i| said[*i].contains(": master ("))
        .unwrap_or_else(|| panic!("no node chose master: {said:#?}"));
    assert_ne!(chosen, 0, "the stale node leads: {said:#?}");
    assert!(
        said[chosen].contains("now monitors"),
        "the chosen node did not point the sentinels at itself: {}",
        said[chosen]
    );
    for (i, text) in said.iter().enumerate().filter(|(i, _)| *i != chosen) {
        assert!(
            text.contains(&format!("replica of {}", addrs[chosen])),
            "redis-{i}: {text}"
        );
    }
    t.wait_healthy(Duration::from_secs(60)).await.unwrap();
    assert_eq!(t.master().await.unwrap(), addrs[chosen]);
    for a in &addrs {
        assert_eq!(count_present(a, "a", 300).await, 300, "a on {a}");
        assert_eq!(count_present(a, "b", 300).await, 300, "b on {a}");
    }
}
