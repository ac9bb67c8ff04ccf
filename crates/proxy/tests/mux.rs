//! Multiplex mode specifics: many clients share a few backend connections,
//! every reply reaches its own client in order, stateful clients move to a
//! dedicated connection, and a shared connection lost mid-stream is invisible.

mod common;
use bytes::BytesMut;
use common::*;
use redis_ha_local::Topology;
use redis_ha_proxy::config::ConnMode;
use redis_ha_proxy::data::REJOIN;
use redis_ha_proxy::route::Endpoint;
use redis_ha_resp::conn::Connection;
use redis_ha_resp::parse::parse_frame;
use redis_ha_resp::{encode, Frame};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Proxy connections on `node`: (name, id) of each.
async fn proxy_connections(t: &Topology, node: &str) -> Vec<(String, String)> {
    data_connections(t, node)
        .await
        .iter()
        .map(|l| {
            let field = |k: &str| {
                l.split(' ')
                    .find_map(|kv| kv.strip_prefix(k))
                    .unwrap_or_default()
                    .to_string()
            };
            (field("name="), field("id="))
        })
        .collect()
}

/// Writes all `cmds` in one write, then reads exactly one reply per command.
async fn pipeline(addr: SocketAddr, cmds: &[Vec<String>]) -> Vec<Frame> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    for c in cmds {
        encode::command(c, &mut out);
    }
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    while replies.len() < cmds.len() {
        while let Some(f) = parse_frame(&mut buf).unwrap() {
            replies.push(f);
        }
        if replies.len() == cmds.len() {
            break;
        }
        let n = tokio::time::timeout(Duration::from_secs(15), s.read_buf(&mut buf))
            .await
            .expect("replies within 15 s")
            .unwrap();
        assert!(n > 0, "proxy closed the connection");
    }
    replies
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_share_two_backend_connections_and_get_their_own_replies() {
    let (t, p) = setup(|c| c.mode = ConnMode::Multiplex).await;
    let master = t.master().await.unwrap();
    // 24 clients, each pipelining 300 commands on its own keys at once.
    let mut tasks = Vec::new();
    for client in 0..24 {
        let w = p.write_addr();
        tasks.push(tokio::spawn(async move {
            let mut cmds = Vec::new();
            for i in 0..100 {
                let key = format!("c{client}");
                cmds.push(args(&["INCR", &key]));
                cmds.push(args(&[
                    "SET",
                    &format!("c{client}:{i}"),
                    &format!("{client}/{i}"),
                ]));
                cmds.push(args(&["GET", &format!("c{client}:{i}")]));
            }
            let replies = pipeline(w, &cmds).await;
            for (i, r) in replies.chunks(3).enumerate() {
                assert_eq!(
                    r[0].as_int(),
                    Some(i as i64 + 1),
                    "client {client} INCR {i}"
                );
                assert_eq!(text(&r[1]), "OK");
                assert_eq!(
                    text(&r[2]),
                    format!("{client}/{i}"),
                    "client {client} GET {i}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let conns = proxy_connections(&t, &master).await;
    assert!(
        !conns.is_empty() && conns.len() <= 2,
        "expected at most 2 shared connections on the master, got {conns:?}"
    );
    assert!(
        conns.iter().all(|(name, _)| name == "redis-ha-mux"),
        "{conns:?}"
    );
    assert!(p.metrics.shared_backend_connections.get() >= 1);
    let ep = p.metrics.ep(redis_ha_proxy::route::Endpoint::write);
    assert_eq!(
        ep.backend_connections.get(),
        0,
        "no dedicated connection was needed"
    );
    assert_eq!(ep.commands.get(), 24 * 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_commands_move_the_client_to_a_dedicated_connection() {
    let (t, p) = setup(|c| c.mode = ConnMode::Multiplex).await;
    let master = t.master().await.unwrap();
    // Shared and stateful commands in one pipeline: replies stay in order
    // and SELECT applies exactly from where it was sent.
    let cmds: Vec<Vec<String>> = [
        &["SET", "a", "zero"][..],
        &["GET", "a"],
        &["SELECT", "2"],
        &["SET", "a", "two"],
        &["GET", "a"],
        &["MULTI"],
        &["INCR", "n"],
        &["EXEC"],
        &["SELECT", "0"],
        &["GET", "a"],
    ]
    .iter()
    .map(|a| args(a))
    .collect();
    let r = pipeline(p.write_addr(), &cmds).await;
    let got: Vec<String> = r.iter().map(text).collect();
    assert_eq!(got[..5], ["OK", "zero", "OK", "OK", "two"]);
    assert_eq!(got[5..7], ["OK", "QUEUED"]);
    assert_eq!(r[7].as_array().map(|a| a[0].as_int()), Some(Some(1)));
    assert_eq!(got[8..], ["OK", "zero"]);

    // A blocked client has its own connection: others are not held up.
    let mut blocked = conn(p.write_addr()).await;
    blocked.send(&["BLPOP", "jobs", "0"]).await.unwrap();
    let mut other = conn(p.write_addr()).await;
    poll(
        "the BLPOP to block on the master",
        Duration::from_secs(5),
        || async {
            let f = node_query(&t, &master, &["INFO", "clients"]).await.unwrap();
            text(&f).contains("blocked_clients:1").then_some(())
        },
    )
    .await;
    assert_eq!(text(&cmd(&mut other, &["PING"]).await), "PONG");
    assert_eq!(
        cmd(&mut other, &["RPUSH", "jobs", "j1"]).await.as_int(),
        Some(1)
    );
    let popped = tokio::time::timeout(Duration::from_secs(5), blocked.read_frame())
        .await
        .expect("BLPOP answered")
        .unwrap();
    assert_eq!(text(&popped.as_array().unwrap()[1]), "j1");
    let names: Vec<String> = proxy_connections(&t, &master)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.iter().filter(|n| n.is_empty()).count() >= 1,
        "the BLPOP client should have a dedicated connection: {names:?}"
    );
}

/// Sends GETs of `key` for longer than `REJOIN`, checking each reply: a
/// session that must stay on its dedicated connection has every chance to
/// (wrongly) return to a shared one.
async fn get_for_longer_than_rejoin(c: &mut Connection, key: &str, want: &str) {
    let until = Instant::now() + REJOIN + Duration::from_millis(500);
    while Instant::now() < until {
        assert_eq!(text(&cmd(c, &["GET", key]).await), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_returns_to_the_shared_connections_only_when_its_state_is_clean() {
    let (t, p) = setup(|c| c.mode = ConnMode::Multiplex).await;
    let master = t.master().await.unwrap();
    let ep = p.metrics.ep(Endpoint::write);
    let mut c = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut c, &["SET", "k", "db0"]).await), "OK");

    // SELECT 2: dedicated, and it stays so while the client is in db 2.
    assert_eq!(text(&cmd(&mut c, &["SELECT", "2"]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["SET", "k", "db2"]).await), "OK");
    assert_eq!(ep.backend_connections.get(), 1);
    get_for_longer_than_rejoin(&mut c, "k", "db2").await;
    assert_eq!(ep.backend_connections.get(), 1);

    // WATCH pins it too: the transaction must still see the other write.
    assert_eq!(text(&cmd(&mut c, &["WATCH", "k"]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["SELECT", "0"]).await), "OK");
    get_for_longer_than_rejoin(&mut c, "k", "db0").await;
    let mut other = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut other, &["SELECT", "2"]).await), "OK");
    assert_eq!(text(&cmd(&mut other, &["SET", "k", "changed"]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["MULTI"]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["SET", "k", "mine"]).await), "QUEUED");
    let exec = cmd(&mut c, &["EXEC"]).await;
    assert!(
        exec.as_array().is_none(),
        "EXEC after a watched key changed must abort, got {exec:?}"
    );
    drop(other);

    // Back in db 0 with no transaction: after a quiet REJOIN it returns to
    // the shared connections, and its dedicated connection is closed.
    until_shared(&mut c, ep).await;
    assert_eq!(text(&cmd(&mut c, &["GET", "k"]).await), "db0");
    poll(
        "only shared connections on the master",
        Duration::from_secs(10),
        || async {
            let conns = proxy_connections(&t, &master).await;
            conns
                .iter()
                .all(|(name, _)| name == "redis-ha-mux")
                .then_some(())
        },
    )
    .await;
    assert_eq!(cmd(&mut c, &["INCR", "n"]).await.as_int(), Some(1));

    // A name is only a label: the client returns to the shared connections,
    // and the name is given again to any dedicated connection it gets later.
    assert_eq!(
        text(&cmd(&mut c, &["CLIENT", "SETNAME", "app-1"]).await),
        "OK"
    );
    until_shared(&mut c, ep).await;
    assert_eq!(text(&cmd(&mut c, &["CLIENT", "GETNAME"]).await), "app-1");

    // CLIENT TRACKING changes the connection in ways the proxy does not
    // follow: that client keeps its connection.
    let mut tracked = conn(p.write_addr()).await;
    assert_eq!(
        text(&cmd(&mut tracked, &["CLIENT", "TRACKING", "ON", "BCAST"]).await),
        "OK"
    );
    // (`c` holds a dedicated connection too, since its GETNAME; it is idle.)
    let dedicated = ep.backend_connections.get();
    get_for_longer_than_rejoin(&mut tracked, "k", "db0").await;
    assert_eq!(ep.backend_connections.get(), dedicated);
}

/// Sends GETs until the write endpoint has no dedicated connection left.
async fn until_shared(c: &mut Connection, ep: &redis_ha_proxy::metrics::EndpointMetrics) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ep.backend_connections.get() != 0 {
        assert!(
            Instant::now() < deadline,
            "the client did not return to a shared connection within 10 s"
        );
        cmd(c, &["GET", "k"]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_clients_share_resp3_connections() {
    let (t, p) = setup(|c| c.mode = ConnMode::Multiplex).await;
    let master = t.master().await.unwrap();
    let ep = p.metrics.ep(Endpoint::write);
    let mut c3 = conn(p.write_addr()).await;
    let hello = cmd(&mut c3, &["HELLO", "3"]).await;
    assert!(matches!(hello, Frame::Map(_)), "HELLO 3 reply: {hello:?}");
    assert_eq!(
        cmd(&mut c3, &["HSET", "h", "f", "v"]).await.as_int(),
        Some(1)
    );
    until_shared(&mut c3, ep).await;
    // Replies keep each client's protocol: a map for the RESP3 client, a
    // flat array for a RESP2 one, both over shared connections.
    let m = cmd(&mut c3, &["HGETALL", "h"]).await;
    assert!(matches!(m, Frame::Map(_)), "RESP3 HGETALL: {m:?}");
    let mut c2 = conn(p.write_addr()).await;
    let a = cmd(&mut c2, &["HGETALL", "h"]).await;
    assert!(matches!(a, Frame::Array(_)), "RESP2 HGETALL: {a:?}");
    assert_eq!(ep.backend_connections.get(), 0);
    let conns = proxy_connections(&t, &master).await;
    assert!(
        conns.iter().all(|(name, _)| name == "redis-ha-mux") && conns.len() <= 4,
        "two shared connections per protocol at most: {conns:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_logging_in_as_the_proxy_does_share_its_connections() {
    let t = redis_ha_local::Topology::start_test_with(1000, |s| s.password = Some("s3cret".into()))
        .await
        .unwrap();
    let mut cfg =
        redis_ha_proxy::config::ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.mode = ConnMode::Multiplex;
    cfg.backend_tls = backend_tls(&t);
    cfg.login = Some(redis_ha_resp::Login::default_user("s3cret"));
    // Clients that send no AUTH are served too (tests/auth.rs has the rest).
    cfg.client_auth = false;
    let p = redis_ha_proxy::server::start(cfg).await.unwrap();
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    let ep = p.metrics.ep(Endpoint::write);

    // Without AUTH the proxy logs in for the client; with the same password
    // (either form, or in HELLO) the client returns to the shared ones.
    let mut plain = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut plain, &["SET", "k", "v"]).await), "OK");
    assert_eq!(ep.backend_connections.get(), 0);
    for login in [
        &["AUTH", "s3cret"][..],
        &["AUTH", "default", "s3cret"],
        &["HELLO", "3", "AUTH", "default", "s3cret"],
    ] {
        let mut c = conn(p.write_addr()).await;
        let r = cmd(&mut c, login).await;
        assert!(!matches!(r, Frame::Error(_)), "{login:?}: {r:?}");
        assert_eq!(ep.backend_connections.get(), 1, "{login:?}");
        until_shared(&mut c, ep).await;
        assert_eq!(text(&cmd(&mut c, &["GET", "k"]).await), "v");
    }
    // A wrong password is still Redis's to refuse.
    let mut wrong = conn(p.write_addr()).await;
    let r = cmd(&mut wrong, &["AUTH", "nope"]).await;
    assert!(matches!(r, Frame::Error(_)), "{r:?}");
}

/// Killing the shared connection mid-stream: reads in flight are sent
/// again (invisible to clients); a write in flight gets an unknown-outcome
/// error (sending it again could apply it twice); nothing else is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connection_killed_mid_stream_replays_reads_and_surfaces_writes() {
    let (t, p) = setup(|c| {
        c.mode = ConnMode::Multiplex;
        c.mux_connections = 1;
    })
    .await;
    let master = t.master().await.unwrap();
    let w = p.write_addr();
    let writer = tokio::spawn(async move {
        let mut c = conn(w).await;
        let mut unknown = 0;
        for i in 0..3000 {
            let r = text(&cmd(&mut c, &["SET", &format!("k{i}"), "v"]).await);
            if r.contains("unknown outcome") {
                unknown += 1;
            } else {
                assert_eq!(r, "OK", "SET k{i}");
            }
        }
        unknown
    });
    let reads = Arc::new(AtomicUsize::new(0));
    let done = reads.clone();
    let reader = tokio::spawn(async move {
        let mut c = conn(w).await;
        for _ in 0..3000 {
            let r = cmd(&mut c, &["GET", "k0"]).await;
            assert!(!r.is_error(), "a read saw the kill: {r:?}");
            done.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Kill the shared connection a few times while the clients run. Each
    // kill waits until the reads in flight at the previous one have been
    // answered: a read is sent again once, and one that lost its second
    // connection too is failed by design (replay.rs), so kills closer
    // together than a reconnect (slower over TLS) would test that instead.
    let mut killed = 0;
    while !writer.is_finished() && killed < 5 {
        let mux = proxy_connections(&t, &master).await;
        if let Some((_, id)) = mux.iter().find(|(name, _)| name == "redis-ha-mux") {
            let at_kill = reads.load(Ordering::Relaxed);
            let _ = node_query(&t, &master, &["CLIENT", "KILL", "ID", id]).await;
            killed += 1;
            poll(
                "reads answered after the kill",
                Duration::from_secs(10),
                || {
                    let n = reads.load(Ordering::Relaxed);
                    let past = n >= at_kill + 2 || reader.is_finished();
                    async move { past.then_some(()) }
                },
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unknown = writer.await.expect("only OK or unknown outcome");
    reader.await.expect("reads never see the kill");
    assert!(killed > 0, "the writer finished before any kill");
    let dbsize = node_query(&t, &master, &["DBSIZE"])
        .await
        .unwrap()
        .as_int()
        .unwrap();
    eprintln!("killed {killed}, unknown outcomes {unknown}, keys {dbsize}");
    assert!(
        (3000 - unknown..=3000).contains(&dbsize),
        "{dbsize} keys for 3000 SETs of which {unknown} unknown"
    );
}
