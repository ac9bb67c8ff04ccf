//! Shared set-up for the proxy tests: a real topology and a proxy on free
//! ports, plus small client helpers.

#![allow(dead_code)]

use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_proxy::server::{start, ProxyHandle};
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::tls::Tls;
use redis_ha_resp::{ConnError, Connection, Frame};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn setup(tweak: impl FnOnce(&mut ProxyConfig)) -> (Topology, ProxyHandle) {
    let t = Topology::start_test(1000).await.expect("topology");
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.backend_tls = backend_tls(&t);
    tweak(&mut cfg);
    let p = start(cfg).await.expect("proxy");
    p.wait_master(Duration::from_secs(10))
        .await
        .expect("master known");
    // Replicas join the read rotation after the first health check.
    poll("replicas in rotation", Duration::from_secs(10), || async {
        (p.routes.current().replicas.len() == 2).then_some(())
    })
    .await;
    (t, p)
}

/// The topology's names (redis-1...) of every Redis node but `master`.
pub fn replica_names(t: &Topology, master: &str) -> Vec<String> {
    t.redis_addrs()
        .iter()
        .filter(|a| *a != master)
        .map(|a| t.name_of(a).expect("a topology node"))
        .collect()
}

pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The TLS toward `t`'s nodes: `Some` when `REDIS_HA_TLS=1` started the
/// topology on TLS (the proxy's backend TLS, and the tests' own queries).
pub fn backend_tls(t: &Topology) -> Option<Arc<Tls>> {
    t.opts.client_tls().expect("the topology's TLS files")
}

/// One command straight to a Redis node of `t`, with its login and TLS.
pub async fn node_query(t: &Topology, node: &str, args: &[&str]) -> Result<Frame, ConnError> {
    query_auth(node, Some(t.redis_access()), args, Duration::from_secs(2)).await
}

/// One command straight to a sentinel of `t`.
pub async fn sentinel_query(t: &Topology, s: &str, args: &[&str]) -> Result<Frame, ConnError> {
    query_auth(s, Some(t.sentinel_access()), args, Duration::from_secs(2)).await
}

/// A connection straight to a Redis node of `t`.
pub async fn node_conn(t: &Topology, node: &str) -> Connection {
    let mut c = Connection::connect_auth(node, Some(t.redis_access()), Duration::from_secs(2))
        .await
        .expect("connect to the node");
    c.timeout = Duration::from_secs(15);
    c
}

/// `CLIENT LIST` lines on `node` of clients other than Sentinel, replication
/// and the asking connection itself: the proxy's connections, in these tests.
pub async fn client_connections(t: &Topology, node: &str) -> Vec<String> {
    let f = node_query(t, node, &["CLIENT", "LIST"]).await.unwrap();
    text(&f)
        .lines()
        .filter(|l| {
            l.contains("flags=N") && !l.contains("name=sentinel-") && !l.contains("cmd=client|list")
        })
        .map(str::to_string)
        .collect()
}

/// [`client_connections`] without the control plane's one-shot ROLE /
/// INFO probes, which come and go on every node (a demoted master too):
/// the connections requests travel on.
pub async fn data_connections(t: &Topology, node: &str) -> Vec<String> {
    let probe = |l: &String| {
        l.contains(" name= ")
            && ["cmd=NULL", "cmd=role", "cmd=info"]
                .iter()
                .any(|c| l.contains(&format!(" {c} ")))
    };
    let mut conns = client_connections(t, node).await;
    conns.retain(|l| !probe(l));
    conns
}

pub async fn conn(addr: impl ToString) -> Connection {
    let mut c = Connection::connect(&addr.to_string(), Duration::from_secs(2))
        .await
        .expect("connect");
    c.timeout = Duration::from_secs(15);
    c
}

pub async fn cmd(c: &mut Connection, args: &[&str]) -> Frame {
    c.request(args)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn text(f: &Frame) -> String {
    f.as_text().unwrap_or_else(|| format!("{f:?}"))
}

/// Minimal HTTP/1.0 GET: (status, headers+body text).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, "").await
}

/// [`http_get`] with extra request header lines (each ending in CRLF).
pub async fn http_get_with(addr: std::net::SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect admin");
    let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("http timeout")
        .unwrap();
    let t = String::from_utf8_lossy(&buf).into_owned();
    let code = t
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, t)
}

/// Runs each named `async fn(ConnMode)` as two tests, `dedicated::NAME` and
/// `multiplex::NAME`: the proxy's behaviour must not depend on the mode.
#[allow(unused_macros)]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod dedicated {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(redis_ha_proxy::config::ConnMode::Dedicated).await
                }
            )*
        }
        mod multiplex {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(redis_ha_proxy::config::ConnMode::Multiplex).await
                }
            )*
        }
    };
}
