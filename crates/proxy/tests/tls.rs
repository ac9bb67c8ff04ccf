//! The proxy's TLS endpoints (`--tls-port`, `--tls-read-port`) with real
//! Redis and Sentinel behind them and rustls clients in front: writes,
//! reads and a kill -9 failover through TLS with client certificates, in
//! both connection modes; the refusals (a client trusting another CA, no
//! client certificate where one is required, an expired server
//! certificate) each a clear error; certificates reloaded on SIGHUP while
//! an open connection keeps working. Backends stay plain TCP here.

#[macro_use]
mod common;
mod pki;

use bytes::BytesMut;
use common::*;
use pki::Pki;
use redis_ha_proxy::config::{ConnMode, TlsEndpoints};
use redis_ha_proxy::data::tls::{AuthClients, TlsFiles};
use redis_ha_resp::tls::Tls;
use redis_ha_resp::Frame;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// TLS write and read endpoints on free ports.
fn endpoints(files: TlsFiles) -> Option<TlsEndpoints> {
    Some(TlsEndpoints {
        files,
        write_listen: Some("127.0.0.1:0".into()),
        read_listen: Some("127.0.0.1:0".into()),
    })
}

/// A RESP client over one TLS connection.
struct Client {
    s: TlsStream<TcpStream>,
    buf: BytesMut,
}

impl Client {
    async fn connect(tls: &Tls, addr: SocketAddr) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        let s = tls.handshake("localhost:0", tcp).await?;
        Ok(Client {
            s,
            buf: BytesMut::new(),
        })
    }

    async fn cmd(&mut self, args: &[&str]) -> std::io::Result<Frame> {
        let mut out = BytesMut::new();
        redis_ha_resp::encode::command(args, &mut out);
        self.s.write_all(&out).await?;
        self.s.flush().await?; // TLS may hold back records until flushed
        loop {
            if let Some(f) = redis_ha_resp::parse::parse_frame(&mut self.buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?
            {
                return Ok(f);
            }
            let n = tokio::time::timeout(Duration::from_secs(20), self.s.read_buf(&mut self.buf))
                .await
                .map_err(|_| std::io::Error::other("no reply in 20 s"))??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The certificate the server presented.
    fn server_cert(&self) -> Vec<u8> {
        let (_, conn) = self.s.get_ref();
        conn.peer_certificates().unwrap()[0].to_vec()
    }
}

async fn through_tls_writes_reads_and_a_failover(mode: ConnMode) {
    let pki = Pki::new();
    let files = pki.files("server", AuthClients::Yes);
    let (t, p) = setup(|c| {
        c.mode = mode;
        c.tls = endpoints(files);
    })
    .await;
    let tls = pki.client("ca.pem", true);
    let (w, r) = (p.tls_write_addr.unwrap(), p.tls_read_addr.unwrap());
    let mut c = Client::connect(&tls, w).await.expect("TLS client");
    assert_eq!(text(&c.cmd(&["PING"]).await.unwrap()), "PONG");
    let big = "x".repeat(200_000); // many TLS records each way
    assert_eq!(text(&c.cmd(&["SET", "big", &big]).await.unwrap()), "OK");
    assert_eq!(text(&c.cmd(&["GET", "big"]).await.unwrap()), big);
    for i in 1..=50 {
        assert_eq!(c.cmd(&["INCR", "n"]).await.unwrap().as_int(), Some(i));
    }
    let mut rc = Client::connect(&tls, r).await.expect("TLS read client");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while text(&rc.cmd(&["GET", "n"]).await.unwrap()) != "50" {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never had n"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text(&rc.cmd(&["SET", "k", "v"]).await.unwrap()).contains("READONLY"));

    // kill -9 of the master: the same TLS connection is held, not broken.
    let old = t.master().await.unwrap();
    t.kill(&t.name_of(&old).unwrap()).unwrap();
    let (mut acked, mut unknown) = (50, 0);
    for _ in 0..20 {
        match c.cmd(&["INCR", "n"]).await {
            Ok(f) if !f.is_error() => acked += 1,
            Ok(f) => {
                let e = f.error_message().unwrap_or_default();
                assert!(e.contains("unknown outcome"), "{e}");
                unknown += 1;
            }
            Err(e) => panic!("the TLS connection broke in the failover: {e}"),
        }
    }
    t.wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    let n: u64 = text(&c.cmd(&["GET", "n"]).await.unwrap()).parse().unwrap();
    assert!(
        (acked..=acked + unknown).contains(&n),
        "{n} not in {acked}..={}: a write lost or doubled",
        acked + unknown
    );
    // The plain endpoints still serve beside the TLS ones.
    let mut plain = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut plain, &["GET", "n"]).await), n.to_string());
}

in_both_modes!(through_tls_writes_reads_and_a_failover);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_errors() {
    let pki = Pki::new();
    let (_t, p) = setup(|c| c.tls = endpoints(pki.files("server", AuthClients::Yes))).await;
    let w = p.tls_write_addr.unwrap();
    let addr = w.to_string();

    // The client trusts another CA: it refuses the proxy's certificate.
    let other = pki.client("other-ca.pem", true);
    let e = Client::connect(&other, w).await.err().expect("must fail");
    let why = other.explain(&addr, &e).expect("a TLS error");
    assert!(why.contains("certificate verification failed"), "{why}");

    // No client certificate where one is required (TLS 1.3 reports it on
    // the first exchange after the handshake).
    let anon = pki.client("ca.pem", false);
    let e = match Client::connect(&anon, w).await {
        Err(e) => e,
        Ok(mut c) => c.cmd(&["PING"]).await.expect_err("must be refused"),
    };
    let why = anon.explain(&addr, &e).expect("a TLS error");
    assert!(why.contains("wants a client certificate"), "{why}");
    poll(
        "handshake failures counted",
        Duration::from_secs(5),
        || async { (p.metrics.tls_handshake_failures_total.get() >= 2).then_some(()) },
    )
    .await;
    // Plain RESP on the TLS port gets no reply and a closed connection.
    let mut raw = TcpStream::connect(w).await.unwrap();
    raw.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(15), raw.read(&mut b))
        .await
        .expect("closed, not hung")
        .unwrap_or(0);
    assert!(
        !b[..n].starts_with(b"+PONG"),
        "plain text served on a TLS port"
    );

    // An expired server certificate.
    let (_t2, p2) = setup(|c| c.tls = endpoints(pki.files("expired", AuthClients::No))).await;
    let tls = pki.client("ca.pem", false);
    let w2 = p2.tls_write_addr.unwrap();
    let e = Client::connect(&tls, w2).await.err().expect("must fail");
    let why = tls.explain(&w2.to_string(), &e).expect("a TLS error");
    assert!(why.to_lowercase().contains("expired"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_are_clear_start_up_errors() {
    let pki = Pki::new();
    let t = redis_ha_local::Topology::start_test(1000)
        .await
        .expect("topology");
    let start = |files: TlsFiles| {
        let mut cfg = redis_ha_proxy::config::ProxyConfig::for_test(
            t.sentinel_addrs(),
            &t.opts.spec.master_name,
        );
        cfg.tls = endpoints(files);
        redis_ha_proxy::server::start(cfg)
    };
    let mut missing = pki.files("server", AuthClients::Yes);
    missing.cert = pki.path("nope.pem");
    let e = format!("{:#}", start(missing).await.err().unwrap());
    assert!(
        e.contains("--tls-cert-file") && e.contains("nope.pem"),
        "{e}"
    );
    let mut not_a_key = pki.files("server", AuthClients::Yes);
    not_a_key.key = pki.path("ca.pem");
    let e = format!("{:#}", start(not_a_key).await.err().unwrap());
    assert!(e.contains("--tls-key-file"), "{e}");
    let mut no_ca = pki.files("server", AuthClients::Yes);
    no_ca.ca = None;
    let e = format!("{:#}", start(no_ca).await.err().unwrap());
    assert!(e.contains("needs --tls-ca-cert-file"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_certificates_and_open_connections_stay() {
    let pki = Pki::new();
    let (_t, p) = setup(|c| c.tls = endpoints(pki.files("server", AuthClients::Optional))).await;
    let tls = pki.client("ca.pem", false);
    let w = p.tls_write_addr.unwrap();
    let mut before = Client::connect(&tls, w).await.unwrap();
    let first = before.server_cert();
    // A new certificate in the same files, then SIGHUP.
    pki.issue(
        "server",
        &[rcgen::ExtendedKeyUsagePurpose::ServerAuth],
        false,
    );
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
    poll(
        "the new certificate served",
        Duration::from_secs(10),
        || async {
            let c = Client::connect(&tls, w).await.ok()?;
            (c.server_cert() != first).then_some(())
        },
    )
    .await;
    assert_eq!(text(&before.cmd(&["PING"]).await.unwrap()), "PONG");
    assert_eq!(before.server_cert(), first);
}
