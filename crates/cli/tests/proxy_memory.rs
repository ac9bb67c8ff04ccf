//! Big values through `redis-ha proxy` (the real process, so its memory is
//! its own): 100 MB and 500 MB SETs and GETs arrive intact in both
//! connection modes and over TLS, and the proxy's peak RSS (`VmHWM`, reset
//! before each value) stays within [`BOUND_KIB`] of what it was before:
//! values stream through in pieces (README, "Big values"). Afterwards its
//! memory is back near where it started. And a backend connection killed
//! in the middle of a big value gives the client an error or a closed
//! connection, never a wrong value.

mod common;
use common::up_with_proxy;
use redis_ha_resp::tls::{Stream, Tls, TlsSettings};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MB: usize = 1_000_000;

/// The bound: the proxy's peak RSS while a value of any size passes is at
/// most this much above its RSS before (a session holds at most about
/// 1 MiB of a value each way, 2 MiB from a shared connection, plus read
/// buffers; the rest is allocator slack). Measured: 0 to 7 MiB.
const BOUND_KIB: u64 = 16 * 1024;

/// The value's bytes: a pattern with a prime period, so a piece out of
/// place or missing shows.
const PERIOD: usize = 251;
const CHUNK: usize = PERIOD * 4177;

fn pattern() -> Vec<u8> {
    (0..CHUNK).map(|i| b'0' + (i % PERIOD) as u8 % 75).collect()
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts `VmHWM` over from the current RSS.
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

struct Proxy {
    state: String,
    ports: Vec<String>,
    pid: u32,
    tls: Option<Tls>,
    _down: common::Down,
    _dir: tempfile::TempDir,
}

fn up(extra: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    // A 500 MB write overflows the replicas' output buffer limit (256 MB):
    // they resync, and meanwhile min-replicas-to-write would refuse writes.
    // Writing it to the AOF can block the master for seconds on a busy
    // disk: no failover (to a replica without the value) meanwhile.
    let mut args = vec![
        "--maxmemory",
        "2gb",
        "--min-replicas-to-write",
        "0",
        "--down-after-ms",
        "60000",
    ];
    args.extend(extra);
    let (state, ports, down) = up_with_proxy(dir.path(), &args);
    let pid: u32 = std::fs::read_to_string(std::path::Path::new(&state).join("proxy/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let tls = extra.contains(&"--tls").then(|| {
        Tls::new(&TlsSettings {
            server_name: None,
            cacert: Some(format!("{state}/tls/ca.crt").into()),
            cert: None,
            key: None,
            skip_verify: false,
            flags: "",
        })
        .unwrap()
    });
    Proxy {
        state,
        ports,
        pid,
        tls,
        _down: down,
        _dir: dir,
    }
}

impl Proxy {
    async fn client(&self) -> Stream {
        let addr = format!("127.0.0.1:{}", self.ports[6]);
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        match &self.tls {
            None => Stream::Plain(tcp),
            Some(t) => t.connect(&addr, tcp, Duration::from_secs(5)).await.unwrap(),
        }
    }

    /// The master's port (a direct connection, for CLIENT KILL), plain only.
    async fn master(&self) -> String {
        for p in &self.ports[0..3] {
            let a = format!("127.0.0.1:{p}");
            let mut c = tokio::net::TcpStream::connect(&a).await.unwrap();
            c.write_all(b"ROLE\r\n").await.unwrap();
            let mut b = [0u8; 64];
            let n = c.read(&mut b).await.unwrap();
            if b[..n].windows(6).any(|w| w == b"master") {
                return a;
            }
        }
        panic!("no master in {}", self.state);
    }
}

/// Writes `SET key <size bytes>` in pieces (the test holds no value).
async fn send_set(s: &mut Stream, key: &str, size: usize, upto: usize) {
    let head = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${size}\r\n", key.len());
    s.write_all(head.as_bytes()).await.unwrap();
    let p = pattern();
    let mut sent = 0;
    while sent < upto.min(size) {
        let n = CHUNK.min(upto.min(size) - sent);
        s.write_all(&p[..n]).await.unwrap();
        sent += n;
    }
    if upto >= size {
        s.write_all(b"\r\n").await.unwrap();
    }
    // TLS: the last records can sit in the session until flushed, and a
    // read does not send them (a 100 MB SET waited for its last 22 KB).
    s.flush().await.unwrap();
}

/// Writes one whole request and flushes it (see `send_set`).
async fn send(s: &mut Stream, req: &[u8]) {
    s.write_all(req).await.unwrap();
    s.flush().await.unwrap();
}

/// Reads one line (a reply header).
async fn line(s: &mut Stream) -> String {
    let mut l = Vec::new();
    loop {
        let b = s.read_u8().await.unwrap();
        l.push(b);
        if l.ends_with(b"\r\n") {
            return String::from_utf8_lossy(&l).trim_end().to_string();
        }
    }
}

/// How a GET's reply ended: whole and right, or cut (`Err`: bytes seen).
/// A wrong byte or a wrong length panics.
async fn read_value(s: &mut Stream, size: usize, mut pause: Option<Duration>) -> Result<(), usize> {
    let head = match tokio::time::timeout(Duration::from_secs(60), line(s)).await {
        Ok(h) => h,
        Err(_) => panic!("no reply header in 60 s"),
    };
    assert_eq!(head, format!("${size}"), "the reply header");
    let p = pattern();
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0;
    while at < size + 2 {
        let n = match tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(at),
            Ok(Ok(n)) => n,
            Err(_) => panic!("the value stalled at {at} of {size}"),
        };
        assert!(at + n <= size + 2, "more bytes than the value");
        let mut got = &buf[..n];
        while !got.is_empty() && at < size {
            let off = at % CHUNK;
            let k = got.len().min(CHUNK - off).min(size - at);
            assert!(got[..k] == p[off..off + k], "value bytes wrong at {at}");
            got = &got[k..];
            at += k;
        }
        if !got.is_empty() {
            assert_eq!(got, &b"\r\n"[..got.len()], "the value's CRLF");
            at += got.len();
        }
        if at > 4 * MB {
            if let Some(d) = pause.take() {
                tokio::time::sleep(d).await; // the client stops reading a while
            }
        }
    }
    Ok(())
}

/// SET then GET of `size` bytes (the GET on `get_conn`, or the same
/// connection), checking the bound on the proxy's peak RSS; returns it.
async fn round_trip(p: &Proxy, size: usize, fresh_get: bool) -> u64 {
    let (before, _) = memory_kib(p.pid);
    reset_peak(p.pid);
    let t = Instant::now();
    let key = format!("big:{size}");
    let mut s = p.client().await;
    send_set(&mut s, &key, size, size).await;
    let ok = tokio::time::timeout(Duration::from_secs(120), line(&mut s))
        .await
        .expect("SET answered within 120 s");
    assert_eq!(ok, "+OK");
    let set_s = t.elapsed();
    let mut g = if fresh_get { p.client().await } else { s };
    let get = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    send(&mut g, get.as_bytes()).await;
    read_value(&mut g, size, None)
        .await
        .expect("the whole value back");
    let (after, peak) = memory_kib(p.pid);
    eprintln!(
        "{} MB: proxy RSS {before} KiB before, peak {peak} KiB (+{} KiB), {after} KiB after; SET {set_s:?}, SET+GET {:?}",
        size / MB,
        peak.saturating_sub(before),
        t.elapsed()
    );
    assert!(
        peak <= before + BOUND_KIB,
        "{} MB: proxy peak RSS {peak} KiB, more than {BOUND_KIB} KiB over {before} KiB",
        size / MB
    );
    assert!(
        after < before + BOUND_KIB,
        "the value's memory stayed: {before} KiB before, {after} KiB after"
    );
    // Redis keeps it: free it for the next value.
    let mut d = p.client().await;
    let del = format!("*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n", key.len());
    send(&mut d, del.as_bytes()).await;
    assert_eq!(line(&mut d).await, ":1");
    peak.saturating_sub(before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplex_100_and_500_mb_stay_within_the_bound() {
    let p = tokio::task::spawn_blocking(|| up(&["--proxy-arg=--mode", "--proxy-arg=multiplex"]))
        .await
        .unwrap();
    // The SET streams over a dedicated connection; the GET, on a fresh
    // client, over a shared one.
    round_trip(&p, 100 * MB, true).await;
    // On the same connection, the GET follows on the dedicated one.
    round_trip(&p, 100 * MB, false).await;
    round_trip(&p, 500 * MB, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_100_and_500_mb_stay_within_the_bound() {
    let p = tokio::task::spawn_blocking(|| up(&["--proxy-arg=--mode", "--proxy-arg=dedicated"]))
        .await
        .unwrap();
    round_trip(&p, 100 * MB, false).await;
    round_trip(&p, 500 * MB, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_100_mb_stays_within_the_bound() {
    // Clients and Redis both over TLS; multiplex (the default).
    let p = tokio::task::spawn_blocking(|| up(&["--tls"]))
        .await
        .unwrap();
    round_trip(&p, 100 * MB, true).await;
    round_trip(&p, 100 * MB, false).await;
}

/// Kills every client connection on the master (the proxy's).
async fn kill_backend(p: &Proxy) {
    let m = p.master().await;
    let mut c = tokio::net::TcpStream::connect(&m).await.unwrap();
    c.write_all(b"CLIENT KILL TYPE normal SKIPME yes\r\n")
        .await
        .unwrap();
    let mut b = [0u8; 64];
    let n = c.read(&mut b).await.unwrap();
    assert!(
        b[..n].starts_with(b":"),
        "{:?}",
        String::from_utf8_lossy(&b[..n])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_value_never_gives_a_wrong_value() {
    for mode in ["multiplex", "dedicated"] {
        let mode_arg = format!("--proxy-arg={mode}");
        let p = tokio::task::spawn_blocking(move || up(&["--proxy-arg=--mode", &mode_arg]))
            .await
            .unwrap();
        let size = 100 * MB;
        // A value to read.
        let mut s = p.client().await;
        send_set(&mut s, "big", size, size).await;
        assert_eq!(line(&mut s).await, "+OK");
        drop(s);

        // GET: the client reads 4 MB, stops while the master's connections
        // are killed, then reads on: the value's end never comes.
        let mut g = p.client().await;
        send(&mut g, b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n").await;
        let reading = read_value(&mut g, size, Some(Duration::from_millis(1500)));
        let killing = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            kill_backend(&p).await;
        };
        let (got, ()) = tokio::join!(reading, killing);
        // Redis held most of the value when its connection was killed.
        let at = got.expect_err("the value cannot have arrived whole");
        eprintln!("{mode}: GET cut at {at} of {size} bytes: the connection closed");

        // SET: half the value, the kill, then the rest: an error that says
        // it did not run, and the old value is still there.
        let mut s = p.client().await;
        send(&mut s, b"*3\r\n$3\r\nSET\r\n$4\r\nkept\r\n$3\r\nold\r\n").await;
        assert_eq!(line(&mut s).await, "+OK");
        send_set(&mut s, "kept", size, size / 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill_backend(&p).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pat = pattern();
        let mut sent = size / 2;
        let rest = async {
            while sent < size {
                let n = CHUNK.min(size - sent);
                let off = sent % CHUNK;
                let n = n.min(CHUNK - off);
                if s.write_all(&pat[off..off + n]).await.is_err() {
                    return false;
                }
                sent += n;
            }
            s.write_all(b"\r\n").await.is_ok() && s.flush().await.is_ok()
        };
        let wrote = tokio::time::timeout(Duration::from_secs(60), rest)
            .await
            .expect("the rest written within 60 s");
        if wrote {
            let reply = tokio::time::timeout(Duration::from_secs(30), line(&mut s))
                .await
                .expect("an answer");
            assert!(
                reply.starts_with("-ERR") && reply.contains("did not run"),
                "{mode}: {reply}"
            );
            eprintln!("{mode}: SET cut: {reply}");
        }
        let mut c = p.client().await;
        send(&mut c, b"*2\r\n$6\r\nSTRLEN\r\n$4\r\nkept\r\n").await;
        let len = tokio::time::timeout(Duration::from_secs(30), line(&mut c))
            .await
            .expect("STRLEN answered");
        assert_eq!(len, ":3", "{mode}: the old value is still there");
    }
}
