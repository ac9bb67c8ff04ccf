//! `redis-ha node restart proxy` under INCR load, as a user runs it: no
//! connection is refused while it runs (the new proxy listens beside the old
//! one before the old drains); writers that reconnect see no error; writers
//! that never retry see at most one closed connection, whose command did
//! not run (Redis's counter equals what they were acknowledged).

mod common;
use common::{run, text, up_with_proxy};
use redis_ha_resp::{Connection, Frame};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One writer's tally: acknowledged INCRs, closed connections, error
/// replies, and the longest time between two acknowledgements.
#[derive(Debug, Default)]
struct Tally {
    acked: u64,
    closed: u64,
    errors: Vec<String>,
    longest_gap: Duration,
}

async fn writer(
    addr: String,
    id: usize,
    retry: bool,
    stop: Arc<AtomicBool>,
    n: Arc<AtomicU64>,
) -> Tally {
    let key = format!("c:{id}");
    let mut t = Tally::default();
    let mut c = Connection::connect(&addr, Duration::from_secs(2))
        .await
        .expect("connect");
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match c.request(&["INCR", key.as_str()]).await {
            Ok(Frame::Error(e)) => {
                t.errors.push(String::from_utf8_lossy(&e).into_owned());
                return t;
            }
            Ok(_) => {
                t.acked += 1;
                n.fetch_add(1, Ordering::Relaxed);
                t.longest_gap = t.longest_gap.max(last.elapsed());
                last = Instant::now();
            }
            Err(redis_ha_resp::ConnError::Server(e)) => {
                t.errors.push(e);
                return t;
            }
            Err(_) => {
                // Closed between requests by the draining proxy: not run.
                t.closed += 1;
                if !retry {
                    return t;
                }
                c = Connection::connect(&addr, Duration::from_secs(2))
                    .await
                    .expect("reconnect: refused during the restart");
            }
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_proxy_refuses_no_one_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (state, ports, _down) = up_with_proxy(dir.path(), &[]);
    let write = format!("127.0.0.1:{}", ports[6]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut acks = Vec::new();
    for id in 0..8 {
        let n = Arc::new(AtomicU64::new(0));
        acks.push(n.clone());
        let w = writer(write.clone(), id, id % 2 == 0, stop.clone(), n);
        writers.push(tokio::spawn(w));
    }
    // New connections all through the restart: none may be refused.
    let dialer = {
        let (stop, write) = (stop.clone(), write.clone());
        tokio::spawn(async move {
            let (mut ok, mut refused) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match Connection::connect(&write, Duration::from_secs(2)).await {
                    Ok(mut c) => match c.request(&["PING"]).await {
                        Ok(_) => ok += 1,
                        Err(e) => refused.push(e.to_string()),
                    },
                    Err(e) => refused.push(e.to_string()),
                }
            }
            (ok, refused)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.iter().any(|n| n.load(Ordering::Relaxed) < 20) {
        assert!(Instant::now() < deadline, "writers never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = state.clone();
    let started = Instant::now();
    let o =
        tokio::task::spawn_blocking(move || run(&["node", "restart", "proxy", "--state-dir", &st]))
            .await
            .unwrap();
    assert!(o.status.success(), "node restart proxy: {}", text(&o));
    let took = started.elapsed();
    // The reconnecting writers go on through the new proxy.
    let after: Vec<u64> = acks.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..8)
        .step_by(2)
        .any(|i| acks[i].load(Ordering::Relaxed) < after[i] + 20)
    {
        assert!(Instant::now() < deadline, "reconnecting writers stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (dialed, refused) = dialer.await.unwrap();
    assert!(
        refused.is_empty(),
        "{} of {} connections failed: {:?}",
        refused.len(),
        dialed,
        &refused[..refused.len().min(5)]
    );
    let master = {
        let o = run(&["status", "--json", "--state-dir", &state]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
        v["master"].as_str().map(str::to_string).expect("a master")
    };
    let mut pause = Duration::ZERO;
    for (id, w) in writers.into_iter().enumerate() {
        let t = w.await.unwrap();
        assert!(t.errors.is_empty(), "writer {id}: {:?}", t.errors);
        assert!(t.closed <= 1, "writer {id}: {t:?}");
        if id % 2 == 0 {
            pause = pause.max(t.longest_gap);
        }
        let f = redis_ha_resp::conn::query(
            &master,
            &["GET", &format!("c:{id}")],
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let n: u64 = f.as_text().unwrap_or_default().parse().unwrap_or(0);
        assert_eq!(
            n, t.acked,
            "writer {id}: INCR ran exactly as acknowledged ({t:?})"
        );
    }
    eprintln!("restart took {took:?}; {dialed} connections, none refused; longest pause of a reconnecting writer {pause:?}");
}

/// SIGTERM to `redis-ha proxy`: `/readyz` turns 503 during the grace, an
/// idle client is closed, and the process exits 0 (the drain finished).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, ports, _down) = up_with_proxy(dir.path(), &[]);
    let p = redis_ha_local::ports::free_ports("127.0.0.1", 3).unwrap();
    let mut child = std::process::Command::new(common::BIN)
        .args(["proxy", "--sentinel", &format!("127.0.0.1:{}", ports[3])])
        .args([
            "--port",
            &p[0].to_string(),
            "--read-port",
            &p[1].to_string(),
        ])
        .args(["--admin-port", &p[2].to_string()])
        .args(["--drain-grace", "1s", "--drain-timeout", "5s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start redis-ha proxy");
    let write = format!("127.0.0.1:{}", p[0]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(mut c) = Connection::connect(&write, Duration::from_secs(1)).await {
            if matches!(c.request(&["SET", "k", "v"]).await, Ok(Frame::Simple(_))) {
                break c;
            }
        }
        assert!(Instant::now() < deadline, "the proxy never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pid = child.id().to_string();
    assert!(run_kill(&pid), "kill -TERM {pid}");
    let mut saw_503 = false;
    for _ in 0..10 {
        saw_503 |= readyz(p[2]).await.is_some_and(|b| b.contains(" 503 "));
        if saw_503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_503, "/readyz not ready during the grace");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "drain finished in time: exit 0");
    assert!(
        c.request(&["PING"]).await.is_err(),
        "the idle client was closed"
    );
}

/// `GET /readyz` on the admin port: the whole response.
async fn readyz(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await.ok()?;
    let mut b = String::new();
    s.read_to_string(&mut b).await.ok()?;
    Some(b)
}

fn run_kill(pid: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .is_ok_and(|s| s.success())
}
