//! Client logins through the proxy when Redis has a password: clients must
//! log in as they would with Redis (nothing is served before), the answers
//! are Redis's own, and a login survives a new backend connection.

#[macro_use]
mod common;
use common::*;
use redis_ha_local::Topology;
use redis_ha_proxy::config::{ConnMode, ProxyConfig};
use redis_ha_proxy::route::Endpoint;
use redis_ha_proxy::server::{start, ProxyHandle};
use redis_ha_resp::{Connection, Frame};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PW: &str = "s3cret";

async fn setup_pw(mode: ConnMode, client_auth: bool) -> (Topology, ProxyHandle) {
    let t = Topology::start_test_with(1000, |s| s.password = Some(PW.into()))
        .await
        .expect("topology");
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.mode = mode;
    cfg.backend_tls = backend_tls(&t);
    cfg.login = Some(redis_ha_resp::Login::default_user(PW));
    cfg.client_auth = client_auth;
    let p = start(cfg).await.expect("proxy");
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    poll("replicas in rotation", Duration::from_secs(10), || async {
        (p.routes.current().replicas.len() == 2).then_some(())
    })
    .await;
    (t, p)
}

/// Writes `cmds` in one TCP write (so the proxy parses them from one read)
/// and returns the replies.
async fn pipelined(addr: impl ToString, cmds: &[&[&str]]) -> Vec<Frame> {
    let addr = addr.to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    for c in cmds {
        redis_ha_resp::encode::command(c, &mut buf);
    }
    s.write_all(&buf).await.unwrap();
    let mut c = Connection::from_stream(s, &addr, Duration::from_secs(15));
    let mut out = vec![];
    for _ in cmds {
        let f = tokio::time::timeout(Duration::from_secs(15), c.read_frame())
            .await
            .expect("reply in time")
            .expect("reply");
        out.push(f);
    }
    out
}

fn err(f: &Frame) -> String {
    match f {
        Frame::Error(e) => String::from_utf8_lossy(e).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn clients_must_log_in(mode: ConnMode) {
    let (t, p) = setup_pw(mode, true).await;
    let master = t.master().await.unwrap();
    // An ACL user of the master's own, for a login only Redis can judge.
    let mut admin = node_conn(&t, &master).await;
    let r = cmd(
        &mut admin,
        &["ACL", "SETUSER", "alice", "on", ">apw", "~*", "+@all"],
    )
    .await;
    assert_eq!(text(&r), "OK");

    // Nothing before a login, and nothing that follows a failed one, even
    // pipelined behind it in the same read.
    let r = pipelined(
        p.write_addr(),
        &[
            &["SET", "k", "early"],
            &["AUTH", "wrong"],
            &["SET", "k", "sneaky"],
            &["HELLO", "3"],
            &["AUTH", "alice", "wrong"],
            &["SET", "k", "sneaky"],
            &["AUTH", PW],
            &["SET", "k", "v"],
            &["GET", "k"],
        ],
    )
    .await;
    assert!(err(&r[0]).starts_with("NOAUTH"), "{r:?}");
    assert!(err(&r[1]).starts_with("WRONGPASS"), "{r:?}");
    assert!(err(&r[2]).starts_with("NOAUTH"), "{r:?}");
    assert!(err(&r[3]).starts_with("NOAUTH HELLO"), "{r:?}");
    assert!(
        err(&r[4]).starts_with("WRONGPASS"),
        "Redis refuses alice: {r:?}"
    );
    assert!(err(&r[5]).starts_with("NOAUTH"), "{r:?}");
    assert_eq!(text(&r[6]), "OK");
    assert_eq!(text(&r[7]), "OK");
    assert_eq!(text(&r[8]), "v");
    let mut direct = node_conn(&t, &master).await;
    assert_eq!(text(&cmd(&mut direct, &["GET", "k"]).await), "v");
    let refused = p
        .metrics
        .ep(Endpoint::write)
        .error(redis_ha_proxy::data::ErrorKind::Auth)
        .get();
    assert_eq!(refused, 5, "refused commands are counted");

    // Every form of login Redis takes; an ACL user is Redis's to accept.
    for login in [
        &["AUTH", "default", PW][..],
        &["HELLO", "3", "AUTH", "default", PW],
        &["HELLO", "2", "AUTH", "alice", "apw", "SETNAME", "app"],
        &["AUTH", "alice", "apw"],
    ] {
        let r = pipelined(p.write_addr(), &[login, &["GET", "k"]]).await;
        assert!(!matches!(r[0], Frame::Error(_)), "{login:?}: {r:?}");
        assert_eq!(text(&r[1]), "v", "{login:?}");
    }
    let r = pipelined(p.write_addr(), &[&["HELLO", "3", "AUTH", "default", "no"]]).await;
    assert!(err(&r[0]).starts_with("WRONGPASS"), "{r:?}");

    // The read endpoint asks for a login too.
    let r = pipelined(p.read_addr(), &[&["GET", "k"], &["AUTH", PW], &["PING"]]).await;
    assert!(err(&r[0]).starts_with("NOAUTH"), "{r:?}");
    assert_eq!(text(&r[2]), "PONG");

    // RESET logs the client out, as Redis does with a password.
    let mut c = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut c, &["AUTH", PW]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["RESET"]).await), "RESET");
    assert!(err(&cmd(&mut c, &["GET", "k"]).await).starts_with("NOAUTH"));
    assert_eq!(text(&cmd(&mut c, &["AUTH", PW]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["GET", "k"]).await), "v");
}

/// A client that logged in and then switched to RESP3 without AUTH in its
/// HELLO keeps working on a new backend connection: the login is replayed
/// before the HELLO (a HELLO first fails with NOAUTH), then the name and
/// the database.
async fn a_login_is_replayed_before_hello(mode: ConnMode) {
    let (t, p) = setup_pw(mode, true).await;
    let master = t.master().await.unwrap();
    let mut c = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut c, &["AUTH", PW]).await), "OK");
    let r = cmd(&mut c, &["HELLO", "3"]).await;
    assert!(matches!(r, Frame::Map(_)), "{r:?}");
    assert_eq!(
        text(&cmd(&mut c, &["CLIENT", "SETNAME", "replayed"]).await),
        "OK"
    );
    // SELECT 1 keeps the session on a connection of its own in both modes.
    assert_eq!(text(&cmd(&mut c, &["SELECT", "1"]).await), "OK");
    // Drop the session's backend connection under it.
    let id = poll(
        "the session's connection on the master",
        Duration::from_secs(5),
        || async {
            let list = node_query(&t, &master, &["CLIENT", "LIST"]).await.unwrap();
            text(&list)
                .lines()
                .find(|l| l.contains(" name=replayed "))
                .and_then(|l| l.split(' ').find_map(|kv| kv.strip_prefix("id=")))
                .map(str::to_string)
        },
    )
    .await;
    let mut admin = node_conn(&t, &master).await;
    assert_eq!(
        text(&cmd(&mut admin, &["CLIENT", "KILL", "ID", &id]).await),
        "1"
    );
    let r = cmd(&mut c, &["SET", "after", "kill"]).await;
    assert_eq!(text(&r), "OK");
    let r = cmd(&mut c, &["HGETALL", "nohash"]).await;
    assert!(matches!(r, Frame::Map(_)), "still RESP3: {r:?}");
    assert_eq!(text(&cmd(&mut c, &["CLIENT", "GETNAME"]).await), "replayed");
    assert_eq!(text(&cmd(&mut admin, &["SELECT", "1"]).await), "OK");
    assert_eq!(text(&cmd(&mut admin, &["GET", "after"]).await), "kill");
}

/// `--client-auth none`: the proxy logs in for clients that do not.
async fn client_auth_none_serves_without_login(mode: ConnMode) {
    let (_t, p) = setup_pw(mode, false).await;
    let mut c = conn(p.write_addr()).await;
    assert_eq!(text(&cmd(&mut c, &["SET", "k", "v"]).await), "OK");
    let mut r = conn(p.read_addr()).await;
    assert_eq!(text(&cmd(&mut r, &["PING"]).await), "PONG");
    // A wrong password is still refused, by Redis.
    assert!(err(&cmd(&mut c, &["AUTH", "nope"]).await).starts_with("WRONGPASS"));
    // RESET logs a connection out on Redis; the client, which needs no
    // login, carries on (even pipelined right behind it).
    let r = pipelined(
        p.write_addr(),
        &[
            &["SELECT", "1"],
            &["RESET"],
            &["GET", "k"],
            &["SET", "k2", "v"],
        ],
    )
    .await;
    assert_eq!(text(&r[1]), "RESET", "{r:?}");
    assert_eq!(text(&r[2]), "v", "db 0 again, logged in: {r:?}");
    assert_eq!(text(&r[3]), "OK", "{r:?}");
}

in_both_modes!(
    clients_must_log_in,
    a_login_is_replayed_before_hello,
    client_auth_none_serves_without_login
);
