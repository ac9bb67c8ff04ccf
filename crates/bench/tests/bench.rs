//! `redis-ha bench` against a real redis-server on a free port: counts,
//! key patterns, request limits, rate limiting, value sizes, reconnecting
//! through a server restart, bad input, and TLS (certificates made here with
//! rcgen; the server also listens in plain text, for checking its stats).

use clap::Parser;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis_ha_bench::cli::{run as cli_run, BenchArgs};
use redis_ha_bench::report::Report;
use redis_ha_bench::run::run;
use redis_ha_local::{
    ports::{free_port, free_ports},
    process,
};
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
    /// With TLS: its TLS port (the plain `port` stays open for checks).
    tls_port: u16,
    extra: Vec<String>,
    pid: u32,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let port = free_port("127.0.0.1").unwrap();
        Server::start_with(port, 0, Vec::new()).await
    }

    /// Plain and TLS ports; `auth_clients` is tls-auth-clients (yes, no,
    /// optional), with `pki`'s CA as the clients' CA.
    async fn start_tls(pki: &Pki, auth_clients: &str) -> Server {
        let ports = free_ports("127.0.0.1", 2).unwrap();
        let extra = [
            "--tls-port",
            &ports[1].to_string(),
            "--tls-cert-file",
            &pki.path("server.pem"),
            "--tls-key-file",
            &pki.path("server.key"),
            "--tls-ca-cert-file",
            &pki.path("ca.pem"),
            "--tls-auth-clients",
            auth_clients,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Server::start_with(ports[0], ports[1], extra).await
    }

    async fn start_with(port: u16, tls_port: u16, extra: Vec<String>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server {
            port,
            tls_port,
            extra,
            pid: 0,
            dir,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let bin = process::require_binary("redis-server").unwrap();
        let mut args: Vec<String> = [
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
        args.extend(self.extra.iter().cloned());
        self.pid =
            process::spawn_args(&bin, &args, &[], &self.dir.path().join("log"), true).unwrap();
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

    /// Polls until the server has run `cmd` at least `n` times (10 s).
    async fn wait_calls(&self, cmd: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.calls(cmd).await < n {
            assert!(Instant::now() < deadline, "no load reached the server");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
    run(a.run_options(a.port, "test", a.tls()?), w).await
}

/// `bench`, failing the test if the run does not end within 30 s.
async fn bench_within(a: &BenchArgs) -> anyhow::Result<Report> {
    tokio::time::timeout(Duration::from_secs(30), bench(a))
        .await
        .expect("the run hung")
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
    s.wait_calls("set", 1000).await;
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

/// A CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate, and a second CA that signed nothing of the server's; PEM
/// files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let (ca_pem, ca) = Pki::ca("redis-ha test CA");
        write("ca.pem", ca_pem);
        let (other_pem, _) = Pki::ca("some other CA");
        write("other-ca.pem", other_pem);
        for (name, sans, usage) in [
            (
                "server",
                vec!["localhost".to_string(), "127.0.0.1".to_string()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            p.use_authority_key_identifier_extension = true;
            p.key_usages.push(KeyUsagePurpose::DigitalSignature);
            p.extended_key_usages.push(usage);
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &ca).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages.push(KeyUsagePurpose::KeyCertSign);
        p.key_usages.push(KeyUsagePurpose::DigitalSignature);
        let key = KeyPair::generate().unwrap();
        let pem = p.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(p, key))
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// `args` for the TLS port with `--tls --cacert ca.pem` and `extra`.
fn tls_args(s: &Server, pki: &Pki, extra: &[&str]) -> BenchArgs {
    let ca = pki.path("ca.pem");
    let mut v = vec!["--tls", "--cacert", ca.as_str()];
    v.extend_from_slice(extra);
    args(s.tls_port, &v)
}

fn small(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec!["-t", "1", "-c", "2", "-n", "20"];
    v.extend_from_slice(extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_counts_add_up() {
    let pki = Pki::new();
    let s = Server::start_tls(&pki, "optional").await;
    let a = tls_args(
        &s,
        &pki,
        &[
            "-t",
            "2",
            "-c",
            "3",
            "-n",
            "300",
            "--ratio",
            "1:2",
            "--pipeline",
            "8",
            "-d",
            "1000",
        ],
    );
    let r = bench_within(&a).await.unwrap();
    let total = 2 * 3 * 300;
    assert_eq!(r.sent, total);
    assert_eq!(r.replies, total);
    assert_eq!(r.error_count(), 0);
    assert_eq!(r.reconnects, 0);
    let (sets, gets) = (r.types[0].1.ops, r.types[1].1.ops);
    assert_eq!(sets, total / 3, "ratio 1:2");
    // Counted by the server itself, over its plain port.
    assert_eq!(s.calls("set").await, sets);
    assert_eq!(s.calls("get").await, gets);
    let j = r.to_json();
    assert_eq!(j["ALL STATS"]["Totals"]["Count"], total);
    // The certificate is checked against the name given with --sni too.
    let r = bench_within(&tls_args(&s, &pki, &small(&["--sni", "localhost"])))
        .await
        .unwrap();
    assert_eq!(r.totals.ops, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_seed_scenario_uses_tls_in_both_phases() {
    let pki = Pki::new();
    let s = Server::start_tls(&pki, "no").await;
    let port = s.tls_port.to_string();
    let mut a = tls_args(
        &s,
        &pki,
        &[
            "--scenario",
            "seed",
            "-t",
            "1",
            "-c",
            "2",
            "-n",
            "50",
            "--key-prefix",
            "seed:",
            "--read-port",
            &port,
        ],
    );
    a.json = true;
    let code = tokio::time::timeout(Duration::from_secs(30), cli_run(a))
        .await
        .expect("the seed scenario hung")
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(s.calls("set").await, 100);
    assert_eq!(s.calls("get").await, 100);
    assert_eq!(s.int(&["DBSIZE"]).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_needs_the_client_certificate() {
    let pki = Pki::new();
    let s = Server::start_tls(&pki, "yes").await;
    // No client certificate: one clear error, no retrying.
    let t = Instant::now();
    let e = bench_within(&tls_args(&s, &pki, &small(&[])))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("client certificate") && e.contains("--cert FILE --key FILE"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let with_cert = |extra: &[&str]| {
        let mut v = vec!["--cert", cert.as_str(), "--key", key.as_str()];
        v.extend_from_slice(extra);
        tls_args(&s, &pki, &v)
    };
    let r = bench_within(&with_cert(&[
        "-t", "1", "-c", "2", "-n", "100", "--ratio", "1:0",
    ]))
    .await
    .unwrap();
    assert_eq!(r.totals.ops, 200);
    assert_eq!(s.calls("set").await, 200);

    // The server stops trusting the client's CA during a run: the
    // connections that reconnect are refused, and the run fails with that
    // reason instead of retrying until --test-time.
    let a = with_cert(&[
        "-t",
        "1",
        "-c",
        "2",
        "--test-time",
        "60",
        "--reconnect-interval",
        "20",
    ]);
    let run = tokio::spawn(async move { bench_within(&a).await });
    s.wait_calls("get", 100).await;
    s.q(&[
        "CONFIG",
        "SET",
        "tls-ca-cert-file",
        &pki.path("other-ca.pem"),
    ])
    .await;
    let t = Instant::now();
    let e = run.await.unwrap().unwrap_err().to_string();
    assert!(
        e.contains("refused the TLS connection") && e.contains("--cert"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_wrong_ca_or_name_is_a_clear_error() {
    let pki = Pki::new();
    let s = Server::start_tls(&pki, "no").await;
    let other = pki.path("other-ca.pem");
    let t = Instant::now();
    let e = bench_within(&args(
        s.tls_port,
        &["--tls", "--cacert", &other, "--test-time", "60"],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("certificate verification failed") && e.contains("--cacert"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let e = bench_within(&tls_args(&s, &pki, &small(&["--sni", "redis.example.com"])))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("certificate verification failed") && e.contains("--sni"),
        "{e}"
    );
    // Skipping verification accepts any certificate.
    let r = bench_within(&args(
        s.tls_port,
        &[
            "--tls",
            "--tls-skip-verify",
            "-t",
            "1",
            "-c",
            "2",
            "-n",
            "50",
        ],
    ))
    .await
    .unwrap();
    assert_eq!(r.totals.ops, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_auth() {
    let pki = Pki::new();
    let s = Server::start_tls(&pki, "no").await;
    s.q(&["CONFIG", "SET", "requirepass", "sekret"]).await;
    let r = bench_within(&tls_args(
        &s,
        &pki,
        &small(&["-a", "sekret", "--pipeline", "4"]),
    ))
    .await
    .unwrap();
    assert_eq!(r.totals.ops, 40);
    assert_eq!(r.error_count(), 0);
    let e = bench_within(&tls_args(&s, &pki, &small(&[])))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("-a/--authenticate"), "{e}");
    let e = bench_within(&tls_args(&s, &pki, &small(&["-a", "wrong"])))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("WRONGPASS"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_bad_flags_and_files() {
    // clap: TLS options need --tls; --cert and --key go together.
    for flags in [
        &["--cert", "c.pem", "--key", "k.pem"][..],
        &["--cacert", "ca.pem"][..],
        &["--sni", "x"][..],
        &["--tls-skip-verify"][..],
        &["--tls", "--cert", "c.pem"][..],
        &["--tls", "--key", "k.pem"][..],
        &["--tls", "--tls-skip-verify", "--cacert", "ca.pem"][..],
    ] {
        let mut v = vec!["bench"];
        v.extend_from_slice(flags);
        let e = Cli::try_parse_from(v).err().expect("refused").to_string();
        assert!(e.contains("--"), "{flags:?}: {e}");
    }
    let e = Cli::try_parse_from(["bench", "--cert", "c.pem", "--key", "k.pem"])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--tls"), "{e}");

    let pki = Pki::new();
    let missing = pki.dir.path().join("nope.pem").display().to_string();
    let not_pem = pki.dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let not_pem = not_pem.display().to_string();
    let (ca, cert, key, server_key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
        pki.path("server.key"),
    );
    let cases: [(Vec<&str>, Vec<&str>); 6] = [
        (
            vec!["--cacert", &missing],
            vec!["--cacert", &missing, "cannot read"],
        ),
        (
            vec!["--cacert", &not_pem],
            vec!["--cacert", &not_pem, "no certificate"],
        ),
        (vec!["--cacert", &key], vec!["no certificate"]),
        (
            vec!["--cacert", &ca, "--cert", &missing, "--key", &key],
            vec!["--cert", &missing, "cannot read"],
        ),
        (
            vec!["--cacert", &ca, "--cert", &cert, "--key", &cert],
            vec!["--key", &cert, "no private key"],
        ),
        (
            vec!["--cacert", &ca, "--cert", &cert, "--key", &server_key],
            vec!["cannot use this certificate and key"],
        ),
    ];
    for (flags, want) in cases {
        let mut v = vec!["--tls"];
        v.extend_from_slice(&flags);
        let e = args(6379, &v).tls().unwrap_err().to_string();
        for w in want {
            assert!(e.contains(w), "{flags:?}: want {w:?} in: {e}");
        }
    }

    // TLS to a plain port, and plain text to a TLS port.
    let s = Server::start_tls(&pki, "no").await;
    let e = bench_within(&args(s.port, &["--tls", "--tls-skip-verify", "-n", "1"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("TLS port") && e.contains("--tls"), "{e}");
    let e = bench_within(&args(s.tls_port, &["-n", "1"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--tls"), "{e}");
}

/// The seed scenario runs from a plain config (no command-line struct):
/// the write phase's SETs, then GETs over exactly the keys written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_takes_a_plain_config() {
    use redis_ha_bench::run::RunOptions;
    use redis_ha_bench::scenario::{seed, SeedConfig};
    use redis_ha_bench::worker::ConnConfig;
    let s = Server::start().await;
    let conn = ConnConfig {
        addr: format!("127.0.0.1:{}", s.port),
        tls: None,
        auth: None,
        pipeline: 1,
        rate: 0,
        requests: 30,
        reconnect_interval: 0,
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        backoff_max: Duration::from_millis(500),
    };
    let phase = |title: &str| RunOptions {
        conn: conn.clone(),
        threads: 1,
        clients: 2,
        test_time: None,
        progress: false,
        stall: Duration::from_secs(1),
        title: title.into(),
    };
    let cfg = SeedConfig {
        write: phase("write"),
        read: phase("read"),
        data_size: (16, 16),
        key_prefix: "plain:".into(),
        key_min: 1,
        key_max: 1000,
        seed: 7,
        distinct_client_seed: false,
        percentiles: vec![50.0, 99.0],
        write_config: serde_json::json!({"phase": "write"}),
        read_config: serde_json::json!({"phase": "read"}),
    };
    let r = tokio::time::timeout(Duration::from_secs(30), seed(cfg))
        .await
        .expect("the seed scenario hung")
        .unwrap();
    assert_eq!(r.keys_written, 60);
    assert_eq!(s.calls("set").await, 60);
    assert_eq!(s.calls("get").await, 60);
    let j = r.to_json();
    assert_eq!(j["summary"][1]["hit_ratio"].as_f64(), Some(1.0), "{j}");
    assert!(r.table().to_string().contains("read"));
}
