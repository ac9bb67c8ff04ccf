//! `--backend-tls`: the proxy speaks TLS to Redis and Sentinel. A small
//! TLS-only topology (a master, a replica and one sentinel, `port 0`,
//! `tls-replication yes`, `tls-auth-clients yes`) of real processes:
//! writes and reads through the proxy in both connection modes (nothing
//! plain listens, so anything that works went over TLS), and the refusals
//! (a CA that did not sign the nodes' certificates, no client certificate,
//! a node's expired certificate) each a clear error naming the flag to fix;
//! and TLS on every hop, the proxy's plain ports off.

#[macro_use]
mod common;
mod pki;

use common::*;
use pki::Pki;
use redis_ha_proxy::config::{ConnMode, ProxyConfig};
use redis_ha_proxy::data::tls::AuthClients;
use redis_ha_proxy::server::ProxyHandle;
use redis_ha_resp::tls::{Tls, TlsSettings};
use redis_ha_resp::{Access, Connection};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The processes, killed when the test ends however it ends.
struct TlsTopology {
    pki: Pki,
    procs: Vec<Child>,
    master: String,
    replica: String,
    sentinel: String,
}

impl Drop for TlsTopology {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// The `tls-*` settings every node and the sentinel run with; `cert` is the
/// pki name of the certificate they present.
fn tls_args(pki: &Pki, port: u16, cert: &str) -> Vec<String> {
    let p = |f: &str| pki.path(f).display().to_string();
    [
        ("port", "0".to_string()),
        ("tls-port", port.to_string()),
        ("tls-cert-file", p(&format!("{cert}.pem"))),
        ("tls-key-file", p(&format!("{cert}.key"))),
        ("tls-ca-cert-file", p("ca.pem")),
        ("tls-auth-clients", "yes".into()),
        ("tls-replication", "yes".into()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [format!("--{k}"), v])
    .collect()
}

fn spawn(bin: &str, args: &[String]) -> Child {
    Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
}

impl TlsTopology {
    /// Starts it with the nodes presenting `cert` and waits until the
    /// sentinel sees the replica (so replication and Sentinel both spoke TLS).
    async fn start(cert: &str) -> TlsTopology {
        let pki = Pki::new();
        let ports = redis_ha_local::ports::free_ports("127.0.0.1", 3).unwrap();
        let addr = |p: u16| format!("127.0.0.1:{p}");
        let mut t = TlsTopology {
            master: addr(ports[0]),
            replica: addr(ports[1]),
            sentinel: addr(ports[2]),
            procs: vec![],
            pki,
        };
        let base = ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"].map(String::from);
        let dir = |n: &str| {
            let d = t.pki.path(n);
            std::fs::create_dir_all(&d).unwrap();
            ["--dir".to_string(), d.display().to_string()]
        };
        let mut m = tls_args(&t.pki, ports[0], cert);
        m.extend(base.clone());
        m.extend(dir("master"));
        t.procs.push(spawn("redis-server", &m));
        let mut r = tls_args(&t.pki, ports[1], cert);
        r.extend(base);
        r.extend(dir("replica"));
        r.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            ports[0].to_string(),
        ]);
        t.procs.push(spawn("redis-server", &r));
        let conf = t.pki.path("sentinel.conf");
        let monitor = format!(
            "sentinel monitor mymaster 127.0.0.1 {} 1\nsentinel down-after-milliseconds mymaster 1000\n",
            ports[0]
        );
        std::fs::write(&conf, monitor).unwrap();
        let mut s = vec![conf.display().to_string(), "--sentinel".into()];
        s.extend(tls_args(&t.pki, ports[2], cert));
        s.extend(["--bind".into(), "127.0.0.1".into()]);
        t.procs.push(spawn("redis-sentinel", &s));
        t
    }

    /// The access a well-configured client has: the CA and the client cert.
    fn access(&self) -> Access {
        Access {
            login: None,
            tls: Some(Arc::new(self.pki.client("ca.pem", true))),
        }
    }

    async fn wait_replicated(&self) {
        let a = self.access();
        poll(
            "the sentinel to see the replica over TLS",
            Duration::from_secs(20),
            || {
                let a = &a;
                async move {
                    let c =
                        Connection::connect_auth(&self.sentinel, Some(a), Duration::from_secs(1));
                    let mut c = c.await.ok()?;
                    let f = c
                        .request(&["SENTINEL", "REPLICAS", "mymaster"])
                        .await
                        .ok()?;
                    let t = format!("{f:?}");
                    (t.contains(&self.replica.replace("127.0.0.1:", ""))
                        && !t.contains("disconnected"))
                    .then_some(())
                }
            },
        )
        .await;
    }

    fn proxy_config(&self, mode: ConnMode, backend: Tls) -> ProxyConfig {
        let mut cfg = ProxyConfig::for_test(vec![self.sentinel.clone()], "mymaster");
        cfg.mode = mode;
        cfg.backend_tls = Some(Arc::new(backend));
        cfg.failover_hold = Duration::from_millis(500);
        cfg
    }
}

/// A backend client config as `--backend-tls` builds it: the name verified
/// is each address's host.
fn backend(pki: &Pki, ca: &str, with_cert: bool) -> Tls {
    Tls::new(&TlsSettings {
        server_name: None,
        cacert: Some(pki.path(ca)),
        cert: with_cert.then(|| pki.path("client.pem")),
        key: with_cert.then(|| pki.path("client.key")),
        skip_verify: false,
        flags: "backend-",
    })
    .unwrap()
}

async fn serves_over_tls(mode: ConnMode) {
    let t = TlsTopology::start("node").await;
    t.wait_replicated().await;
    let p = redis_ha_proxy::server::start(t.proxy_config(mode, backend(&t.pki, "ca.pem", true)))
        .await
        .unwrap();
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        p.routes.current().master.as_deref(),
        Some(t.master.as_str())
    );
    let mut c = conn(p.write_addr()).await;
    for i in 1..=50 {
        assert_eq!(
            cmd(&mut c, &["INCR", "tls:n"]).await,
            redis_ha_resp::Frame::Integer(i)
        );
    }
    // The read endpoint reaches the replica over TLS, once its health
    // check (INFO over TLS) took it into rotation.
    poll(
        "the replica in rotation",
        Duration::from_secs(10),
        || async { (p.routes.current().replicas == [t.replica.clone()]).then_some(()) },
    )
    .await;
    poll(
        "the write replicated to the read endpoint",
        Duration::from_secs(10),
        || async {
            let mut r = conn(p.read_addr()).await;
            (text(&cmd(&mut r, &["GET", "tls:n"]).await) == "50").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_topology_serves_writes_and_reads_dedicated() {
    serves_over_tls(ConnMode::Dedicated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_topology_serves_writes_and_reads_multiplex() {
    serves_over_tls(ConnMode::Multiplex).await;
}

/// TLS on every hop: clients to the proxy (its plain ports off, as `port 0`
/// turns Redis's off), the proxy to Redis and Sentinel, replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_on_every_hop() {
    let t = TlsTopology::start("node").await;
    t.wait_replicated().await;
    let mut cfg = t.proxy_config(ConnMode::Multiplex, backend(&t.pki, "ca.pem", true));
    cfg.write_listen = None;
    cfg.read_listen = None;
    cfg.tls = Some(redis_ha_proxy::config::TlsEndpoints {
        files: t.pki.files("server", AuthClients::Yes),
        write_listen: Some("127.0.0.1:0".into()),
        read_listen: Some("127.0.0.1:0".into()),
    });
    let p = redis_ha_proxy::server::start(cfg).await.unwrap();
    assert_eq!((p.plain_write_addr, p.plain_read_addr), (None, None));
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    let client = t.access();
    let w = p.tls_write_addr.unwrap().to_string();
    let mut c = Connection::connect_auth(&w, Some(&client), Duration::from_secs(5))
        .await
        .unwrap();
    for i in 1..=20 {
        assert_eq!(
            c.request(&["INCR", "tls:all"]).await.unwrap(),
            redis_ha_resp::Frame::Integer(i)
        );
    }
}

/// With no write endpoint at all the proxy does not start, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_endpoint_is_a_clear_start_up_error() {
    let mut cfg = ProxyConfig::for_test(vec!["127.0.0.1:1".into()], "mymaster");
    cfg.write_listen = None;
    let e = format!(
        "{:#}",
        redis_ha_proxy::server::start(cfg).await.err().unwrap()
    );
    assert!(e.contains("--port 0") && e.contains("--tls-port"), "{e}");
}

/// What `/api/status` says while the proxy cannot reach the sentinel.
async fn status_while_refused(p: &ProxyHandle, needle: &str) -> String {
    poll(
        &format!("{needle:?} in /api/status"),
        Duration::from_secs(10),
        || async {
            let (_, body) = http_get(p.admin_addr, "/api/status").await;
            body.contains(needle).then_some(body)
        },
    )
    .await
}

/// A write through a proxy that reaches no master fails with the reason.
async fn write_error(p: &ProxyHandle) -> String {
    let mut c = conn(p.write_addr()).await;
    text(&cmd(&mut c, &["INCR", "tls:n"]).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusting_another_ca_is_a_clear_error() {
    let t = TlsTopology::start("node").await;
    let cfg = t.proxy_config(ConnMode::Dedicated, backend(&t.pki, "other-ca.pem", true));
    let p = redis_ha_proxy::server::start(cfg).await.unwrap();
    let body = status_while_refused(&p, "certificate verification failed").await;
    assert!(body.contains("--backend-cacert"), "{body}");
    assert!(p.routes.current().master.is_none());
    let e = write_error(&p).await;
    assert!(
        e.starts_with("TRYAGAIN") || e.starts_with("MASTERDOWN"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_certificate_where_one_is_required_is_a_clear_error() {
    let t = TlsTopology::start("node").await;
    let cfg = t.proxy_config(ConnMode::Multiplex, backend(&t.pki, "ca.pem", false));
    let p = redis_ha_proxy::server::start(cfg).await.unwrap();
    let body = status_while_refused(&p, "wants a client certificate").await;
    assert!(
        body.contains("--backend-cert FILE --backend-key FILE"),
        "{body}"
    );
    assert!(p.routes.current().master.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_expired_certificate_is_a_clear_error() {
    let t = TlsTopology::start("node-expired").await;
    let cfg = t.proxy_config(ConnMode::Dedicated, backend(&t.pki, "ca.pem", true));
    let p = redis_ha_proxy::server::start(cfg).await.unwrap();
    let body = status_while_refused(&p, "certificate verification failed").await;
    assert!(body.to_lowercase().contains("expired"), "{body}");
}

/// The flags build the same client config, and a bad file names its flag.
#[test]
fn backend_tls_flags_name_themselves_in_errors() {
    use clap::Parser;
    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: redis_ha_proxy::cli::ProxyArgs,
    }
    let args = |extra: &[&str]| {
        let mut v = vec!["x", "--sentinel", "127.0.0.1:1"];
        v.extend(extra);
        P::try_parse_from(v).map(|p| p.a.config())
    };
    let pki = Pki::new();
    let ca = pki.path("ca.pem").display().to_string();
    let cfg = args(&["--backend-tls", "--backend-cacert", &ca])
        .unwrap()
        .unwrap();
    assert!(cfg.backend_tls.is_some());
    let e = args(&["--backend-tls", "--backend-cacert", "/nonexistent.pem"])
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--backend-cacert /nonexistent.pem: cannot read"),
        "{e}"
    );
    // Without --backend-tls the other flags are refused by clap.
    assert!(args(&["--backend-cacert", &ca]).is_err());
}
