//! `redis-ha bench` against a real redis-server on a free port: counts,
//! key patterns, request limits, rate limiting, value sizes, reconnecting
//! through a server restart, and bad input.

use clap::Parser;
use redis_ha_bench::cli::{run as cli_run, BenchArgs};
use redis_ha_bench::report::Report;
use redis_ha_bench::run::run;
use redis_ha_local::{ports::free_port, process};
use redis_ha_resp::conn::query;
use redis_ha_resp::Frame;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    a: BenchArgs,
}

/// A redis-server without persistence; killed on drop.
struct Server {
    port: u16,
    pid: u32,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port("127.0.0.1").unwrap();
        let mut s = Server { port, pid: 0, dir };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let bin = process::require_binary("redis-server").unwrap();
        let args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &self.dir.path().display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.pid = process::spawn_args(&bin, &args, &self.dir.path().join("log"), true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while query(&self.addr(), &["PING"], Duration::from_millis(200))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn q(&self, args: &[&str]) -> Frame {
        query(&self.addr(), args, Duration::from_secs(2))
            .await
            .unwrap()
    }

    async fn int(&self, args: &[&str]) -> i64 {
        self.q(args).await.as_int().unwrap()
    }

    async fn calls(&self, cmd: &str) -> u64 {
        let info = self.q(&["INFO", "commandstats"]).await.as_text().unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .map(|r| r.split(',').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        process::terminate(self.pid, Duration::from_secs(2));
    }
}

fn args(port: u16, extra: &[&str]) -> BenchArgs {
    let p = port.to_string();
    let mut v = vec!["bench", "-p", p.as_str(), "--hide-histogram"];
    v.extend_from_slice(extra);
    Cli::try_parse_from(v).unwrap().a
}

async fn bench(a: &BenchArgs) -> anyhow::Result<Report> {
    let w = Arc::new(a.workload(a.key_minimum, a.key_maximum())?);
    run(a.run_options(a.port, "test"), w).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_add_up_and_requests_stop_exactly() {
    let s = Server::start().await;
    let a = args(
        s.port,
        &[
            "-t",
            "2",
            "-c",
            "3",
            "-n",
            "500",
            "--ratio",
            "1:3",
            "--pipeline",
            "4",
        ],
    );
    let r = bench(&a).await.unwrap();
    let total = 2 * 3 * 500;
    assert_eq!(r.sent, total);
    assert_eq!(r.replies, total);
    assert_eq!(r.totals.ops, total);
    assert_eq!(r.error_count(), 0);
    let (sets, gets) = (r.types[0].1.ops, r.types[1].1.ops);
    assert_eq!(sets + gets, total);
    assert_eq!(sets, total / 4, "ratio 1:3");
    assert_eq!(s.calls("set").await, sets);
    assert_eq!(s.calls("get").await, gets);
    let g = &r.types[1].1;
    assert_eq!(g.hits + g.misses, gets);
    assert_eq!(r.totals.hist.len(), total);
    let j = r.to_json();
    assert_eq!(j["ALL STATS"]["Totals"]["Count"], total);
    assert!(j["ALL STATS"]["Totals"]["Ops/sec"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_patterns_cover_the_range() {
    let s = Server::start().await;
    for (pattern, prefix) in [("S:S", "s:"), ("P:P", "p:")] {
        // 4 connections × 25 requests = 100 keys in [1, 100].
        let a = args(
            s.port,
            &[
                "-t",
                "1",
                "-c",
                "4",
                "-n",
                "25",
                "--ratio",
                "1:0",
                "--key-pattern",
                pattern,
                "--key-prefix",
                prefix,
                "--key-minimum",
                "1",
                "--key-maximum",
                "100",
            ],
        );
        bench(&a).await.unwrap();
        let keys = s
            .q(&["KEYS", &format!("{prefix}*")])
            .await
            .into_array()
            .unwrap();
        let mut n: Vec<u64> = keys
            .iter()
            .map(|k| k.as_text().unwrap()[prefix.len()..].parse().unwrap())
            .collect();
        n.sort();
        assert_eq!(n, (1..=100).collect::<Vec<u64>>(), "{pattern}");
    }
    // R and G stay inside the range.
    for pattern in ["R:R", "G:G"] {
        let a = args(
            s.port,
            &[
                "-t",
                "1",
                "-c",
                "2",
                "-n",
                "300",
                "--ratio",
                "1:0",
                "--key-pattern",
                pattern,
                "--key-prefix",
                "rg:",
                "--key-minimum",
                "1000",
                "--key-maximum",
                "1099",
            ],
        );
        bench(&a).await.unwrap();
    }
    let keys = s.q(&["KEYS", "rg:*"]).await.into_array().unwrap();
    assert!(keys.len() > 50, "only {} distinct keys", keys.len());
    for k in keys {
        let n: u64 = k.as_text().unwrap()[3..].parse().unwrap();
        assert!((1000..=1099).contains(&n), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sizes_as_asked() {
    let s = Server::start().await;
    let a = args(
        s.port,
        &[
            "-t",
            "1",
            "-c",
            "1",
            "-n",
            "20",
            "--ratio",
            "1:0",
            "-d",
            "100",
            "--key-pattern",
            "S:S",
            "--key-prefix",
            "d:",
            "--key-minimum",
            "1",
            "--key-maximum",
            "20",
        ],
    );
    bench(&a).await.unwrap();
    for i in 1..=20 {
        assert_eq!(s.int(&["STRLEN", &format!("d:{i}")]).await, 100);
    }
    let a = args(
        s.port,
        &[
            "-t",
            "1",
            "-c",
            "1",
            "-n",
            "200",
            "--ratio",
            "1:0",
            "--data-size-range",
            "10-20",
            "--key-pattern",
            "S:S",
            "--key-prefix",
            "r:",
            "--key-minimum",
            "1",
            "--key-maximum",
            "200",
        ],
    );
    bench(&a).await.unwrap();
    let mut sizes = std::collections::BTreeSet::new();
    for i in 1..=200 {
        let l = s.int(&["STRLEN", &format!("r:{i}")]).await;
        assert!((10..=20).contains(&l), "{l}");
        sizes.insert(l);
    }
    assert!(sizes.len() > 5, "sizes vary: {sizes:?}");
    // Arbitrary commands with placeholders.
    let a = args(
        s.port,
        &[
            "-t",
            "1",
            "-c",
            "2",
            "-n",
            "50",
            "--command",
            "RPUSH __key__ __data__",
            "--command-key-pattern",
            "S",
            "--key-prefix",
            "l:",
            "--key-minimum",
            "1",
            "--key-maximum",
            "1",
            "-d",
            "7",
        ],
    );
    let r = bench(&a).await.unwrap();
    assert_eq!(r.types[0].0, "RPUSH");
    assert_eq!(s.int(&["LLEN", "l:1"]).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting_holds_the_rate() {
    let s = Server::start().await;
    // 4 connections × 250 req/s for 3 s = 3000 requests.
    let a = args(
        s.port,
        &[
            "-t",
            "1",
            "-c",
            "4",
            "--rate-limiting",
            "250",
            "--test-time",
            "3",
            "--ratio",
            "1:1",
        ],
    );
    let r = bench(&a).await.unwrap();
    let rate = r.totals.ops as f64 / r.secs();
    assert!(
        (rate - 1000.0).abs() < 50.0,
        "rate {rate:.0}/s, want 1000/s ±5%"
    );
    assert_eq!(r.error_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_going_through_a_server_restart() {
    let mut s = Server::start().await;
    let a = args(
        s.port,
        &[
            "-t",
            "1",
            "-c",
            "4",
            "--test-time",
            "4",
            "--ratio",
            "1:1",
            "--reconnect-backoff-max",
            "100",
        ],
    );
    let run = tokio::spawn(async move { bench(&a).await });
    // Let it run, then kill -9 the server and bring it back on the same port.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.calls("set").await < 1000 {
        assert!(Instant::now() < deadline, "no load reached the server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process::signal(s.pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(process::wait_exit(s.pid, Duration::from_secs(5)));
    let down_at = Instant::now();
    while down_at.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.spawn().await;
    let r = run.await.unwrap().unwrap();
    assert!(r.errors[0] > 0, "refused/reset errors counted");
    assert!(r.reconnects > 0);
    assert!(!r.outages.is_empty(), "outage reported");
    let o = &r.outages[0];
    assert!(o.length_ms >= 400.0 && o.length_ms < 3000.0, "{o:?}");
    assert!(o.kinds.contains(&"refused/reset"), "{o:?}");
    // Work resumed after the restart.
    assert!(s.calls("set").await > 0, "writes on the restarted server");
    assert_eq!(r.sent, r.replies + r.unanswered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error() {
    // Nothing listens on this port.
    let port = free_port("127.0.0.1").unwrap();
    let e = bench(&args(port, &["-n", "1"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot reach") && e.contains("--port"), "{e}");
    let s = Server::start().await;
    for (flags, want) in [
        (&["--ratio", "x"][..], "--ratio"),
        (&["--key-pattern", "Q:R"][..], "key pattern"),
        (&["--data-size-range", "9-3"][..], "--data-size-range"),
        (
            &["--key-minimum", "5", "--key-maximum", "4"][..],
            "--key-maximum",
        ),
        (&["--ratio", "0:0"][..], "ratio"),
    ] {
        let e = bench(&args(s.port, flags)).await.unwrap_err().to_string();
        assert!(e.contains(want), "{flags:?}: {e}");
    }
    let e = bench(&args(s.port, &["-c", "0", "-n", "1"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--clients"), "{e}");
    let e = cli_run(args(s.port, &["--tls"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--tls"), "{e}");
    assert!(Cli::try_parse_from(["bench", "--pipeline", "many"]).is_err());
    // A password the server does not need is refused by it: one error.
    s.q(&["CONFIG", "SET", "requirepass", "sekret"]).await;
    let e = bench(&args(s.port, &["-n", "1"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("-a/--authenticate"), "{e}");
    let r = bench(&args(
        s.port,
        &["-n", "5", "-c", "1", "-t", "1", "-a", "sekret"],
    ))
    .await
    .unwrap();
    assert_eq!(r.totals.ops, 5);
}
