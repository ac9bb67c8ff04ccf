//! End-to-end tests of `redis-ha up / status / node / down` as a user runs
//! them: the real binary, real redis-server and redis-sentinel processes, a
//! temporary state dir and free ports.

mod common;
use common::{assert_fails_with, run, text, BIN};
use redis_ha_local::ports::free_ports;
use redis_ha_resp::conn::query;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A detached topology in a temp dir; `down` on drop so nothing outlives a
/// failing test.
struct Up {
    dir: tempfile::TempDir,
    redis: Vec<u16>,
    sentinels: Vec<u16>,
}

impl Up {
    fn start(extra: &[&str]) -> Up {
        let dir = tempfile::tempdir().unwrap();
        let p = free_ports("127.0.0.1", 6).unwrap();
        let up = Up {
            dir,
            redis: p[..3].to_vec(),
            sentinels: p[3..].to_vec(),
        };
        let o = up.cmd(
            &[
                "up",
                "--detach",
                "--no-proxy",
                "--down-after-ms",
                "2000",
                "--failover-timeout-ms",
                "10000",
            ],
            extra,
        );
        assert!(o.status.success(), "up failed: {}", text(&o));
        up
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str], extra: &[&str]) -> Output {
        let join = |v: &[u16]| {
            v.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--state-dir".into(), self.state().display().to_string()]);
        if args[0] == "up" {
            all.extend([
                "--redis-ports".into(),
                join(&self.redis),
                "--sentinel-ports".into(),
                join(&self.sentinels),
            ]);
        }
        all.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&refs)
    }

    fn status_json(&self) -> (bool, serde_json::Value) {
        let o = self.cmd(&["status", "--json"], &[]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&o)));
        (o.status.success(), v)
    }

    fn pids(&self) -> Vec<u32> {
        [
            "redis-0",
            "redis-1",
            "redis-2",
            "sentinel-0",
            "sentinel-1",
            "sentinel-2",
        ]
        .iter()
        .filter_map(|n| std::fs::read_to_string(self.state().join(n).join("pid")).ok())
        .filter_map(|s| s.trim().parse().ok())
        .collect()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.cmd(&["down"], &[]);
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn role_of(v: &serde_json::Value, name: &str) -> String {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .map(|n| n["role"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn up_status_kill_restart_down() {
    let up = Up::start(&[]);
    let (ok, v) = up.status_json();
    assert!(ok, "status not healthy after up: {v}");
    assert_eq!(role_of(&v, "redis-0"), "master");
    assert_eq!(role_of(&v, "redis-1"), "replica");
    assert_eq!(v["sentinels"].as_array().unwrap().len(), 3);
    assert!(v["sentinels_agree"].as_bool().unwrap());
    for n in v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["sentinels"].as_array().unwrap())
    {
        assert!(
            n["name"].is_string()
                && n["addr"].as_str().unwrap().contains(':')
                && n["role"].is_string(),
            "{n}"
        );
    }
    let human = up.cmd(&["status"], &[]);
    assert!(text(&human).contains("healthy"), "{}", text(&human));

    // A second `up` on a running topology refuses.
    let again = up.cmd(&["up", "--detach", "--no-proxy"], &[]);
    assert!(
        !again.status.success() && text(&again).contains("already running"),
        "{}",
        text(&again)
    );

    // Kill the master: within down-after + a few seconds a new master.
    let o = up.cmd(&["node", "kill", "redis-0"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let new_master = poll("a new master", Duration::from_secs(30), || {
        let (_, v) = up.status_json();
        let m = v["master"].as_str()?.to_string();
        (m != format!("127.0.0.1:{}", up.redis[0])).then_some(m)
    });
    // The old master restarted rejoins as a replica of the new one.
    let o = up.cmd(&["node", "restart", "redis-0"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    poll(
        "redis-0 back as a replica and healthy",
        // Sentinel reconfigures a returning master lazily; generous under
        // a loaded test machine.
        Duration::from_secs(60),
        || {
            let (ok, v) = up.status_json();
            (ok && role_of(&v, "redis-0") == "replica" && v["master"] == new_master.as_str())
                .then_some(())
        },
    );

    // down: no process left.
    let pids = up.pids();
    assert_eq!(pids.len(), 6);
    let o = up.cmd(&["down"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(pids.iter().all(|p| !alive(*p)), "processes left after down");
    let o = up.cmd(&["down"], &[]);
    assert_fails_with(&o, "nothing is running");
}

#[test]
fn status_catches_a_split_brain() {
    let up = Up::start(&[]);
    let replica = format!("127.0.0.1:{}", up.redis[1]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(query(
        &replica,
        &["REPLICAOF", "NO", "ONE"],
        Duration::from_secs(2),
    ))
    .unwrap();
    let o = up.cmd(&["status"], &[]);
    assert!(!o.status.success(), "status must fail on a split brain");
    assert!(text(&o).contains("SPLIT BRAIN"), "{}", text(&o));
    let (ok, v) = up.status_json();
    assert!(!ok && v["split_brain"].as_bool().unwrap(), "{v}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().display().to_string();
    // Unknown node, no topology.
    let o = run(&["node", "kill", "redis-9", "--state-dir", &sd]);
    assert_fails_with(&o, "redis-ha up");
    // down with nothing running.
    let o = run(&["down", "--state-dir", &sd]);
    assert_fails_with(&o, "redis-ha up");
    // Port in use: nothing is left half-started.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bp = busy.local_addr().unwrap().port().to_string();
    let p = free_ports("127.0.0.1", 5).unwrap();
    let ports = format!("{},{},{}", p[0], p[1], bp);
    let sports = format!("{},{},{}", p[2], p[3], p[4]);
    // `up --detach --no-proxy` in this state dir, with `extra` flags.
    let up = |extra: &[&str]| {
        let mut args = vec!["up", "--detach", "--no-proxy", "--state-dir", &sd];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = up(&["--redis-ports", &ports, "--sentinel-ports", &sports]);
    assert_fails_with(&o, "already in use");
    assert!(
        !PathBuf::from(&sd).join("redis-0").join("pid").exists(),
        "half-started"
    );
    // Bad settings.
    let o = up(&["--quorum", "5"]);
    assert_fails_with(&o, "quorum");
    let o = up(&["--min-replicas-to-write", "3"]);
    assert_fails_with(&o, "min_replicas_to_write 3 needs at least 4 Redis nodes");
    // Unknown flag: clap's error, non-zero.
    let o = run(&["up", "--bogus"]);
    assert!(!o.status.success());
    // Missing redis-server on PATH.
    let o = Command::new(BIN)
        .args([
            "up",
            "--detach",
            "--no-proxy",
            "--state-dir",
            &sd,
            "--redis-ports",
            &format!("{},{},{}", p[0], p[1], p[2]),
        ])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_fails_with(&o, "apt-get install");
}

#[test]
fn a_state_dir_of_another_topology_is_refused() {
    let up = Up::start(&[]);
    let o = up.cmd(&["down"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    // Same dir, other settings.
    let o = up.cmd(&["up", "--detach", "--no-proxy", "--quorum", "3"], &[]);
    assert_fails_with(&o, "another topology");
}

/// `up --min-replicas-to-write N` reaches every node's config (more than
/// the replicas there are: `bad_input_gets_a_clear_error`).
#[test]
fn min_replicas_to_write_is_a_flag_of_up() {
    let up = Up::start(&["--min-replicas-to-write", "2"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for p in &up.redis {
        let addr = format!("127.0.0.1:{p}");
        let ask = ["CONFIG", "GET", "min-replicas-to-write"];
        let f = rt
            .block_on(query(&addr, &ask, Duration::from_secs(2)))
            .unwrap();
        let v = f.into_pairs().into_iter().next().unwrap().1;
        assert_eq!(v, "2", "{addr}");
    }
}

/// `curl http://addr/metrics`, or `None` when nothing answers.
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn up_metrics_runs_an_exporter_per_node_and_down_stops_them() {
    if redis_ha_testkit::program("prometheus-redis-exporter").is_none() {
        return;
    }
    let ports = free_ports("127.0.0.1", 6).unwrap();
    let list = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let up = Up::start(&["--metrics", "--exporter-ports", &list]);
    for (i, p) in ports.iter().enumerate() {
        let addr = format!("127.0.0.1:{p}");
        let body = poll(
            &format!("exporter {i} on {addr}"),
            Duration::from_secs(20),
            || scrape(&addr).filter(|b| b.contains("\nredis_up 1")),
        );
        // Redis nodes report their role; sentinels their masters.
        let want = if i < 3 {
            "redis_instance_info{"
        } else {
            "redis_sentinel_masters"
        };
        assert!(
            body.contains(want),
            "exporter {i}: no {want} in its metrics"
        );
    }
    // A node killed: its exporter says so (what RedisNodeDown alerts on).
    let o = up.cmd(&["node", "kill", "redis-2"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let addr = format!("127.0.0.1:{}", ports[2]);
    poll(
        "redis_up 0 for the killed node",
        Duration::from_secs(20),
        || scrape(&addr).filter(|b| b.contains("\nredis_up 0")),
    );
    let o = up.cmd(&["down"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    for p in &ports {
        let addr = format!("127.0.0.1:{p}");
        poll(
            &format!("exporter on {addr} stopped"),
            Duration::from_secs(10),
            || scrape(&addr).is_none().then_some(()),
        );
    }
}

#[test]
fn exporter_ports_must_name_one_port_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().display().to_string();
    let o = run(&[
        "up",
        "--detach",
        "--no-proxy",
        "--state-dir",
        &sd,
        "--metrics",
        "--exporter-ports",
        "9300,9301",
    ]);
    assert_fails_with(&o, "--exporter-ports names 2 ports for 6 nodes");
}
