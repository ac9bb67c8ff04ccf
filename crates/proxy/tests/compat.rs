//! Client compatibility through both endpoints, with real clients.

#[macro_use]
mod common;
use common::*;
use redis::AsyncCommands;
use redis_ha_proxy::config::ConnMode;
use redis_ha_resp::Frame;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn clients_work_through_both_endpoints(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let w = p.write_addr();
    let r = p.read_addr();

    // redis-rs: writes, pipelining, MULTI/EXEC, reads from a replica.
    let client = redis::Client::open(format!("redis://{w}/")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = c.set("k", "v").await.unwrap();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.set(format!("p{i}"), i).ignore();
    }
    pipe.get("p199");
    let (last,): (i64,) = pipe.query_async(&mut c).await.unwrap();
    assert_eq!(last, 199);
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("ctr", 1)
        .incr("ctr", 2)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((a, b), (1, 3));
    let _: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(2000)
        .query_async(&mut c)
        .await
        .unwrap();
    let rc = redis::Client::open(format!("redis://{r}/")).unwrap();
    let mut rcon = rc.get_multiplexed_async_connection().await.unwrap();
    let v: String = rcon.get("k").await.unwrap();
    assert_eq!(v, "v");
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut rcon).await.unwrap();
    assert!(
        format!("{:?}", role[0]).contains("slave"),
        "read endpoint must reach a replica: {role:?}"
    );
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut c).await.unwrap();
    assert!(
        format!("{:?}", role[0]).contains("master"),
        "write endpoint must reach the master: {role:?}"
    );
    // Writes on the read endpoint get Redis's own READONLY, unchanged.
    let err = rcon.set::<_, _, ()>("x", "y").await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("read only"),
        "{err}"
    );

    // redis-cli.
    let Some(redis_cli) = redis_ha_testkit::program("redis-cli") else {
        return;
    };
    let out = std::process::Command::new(&redis_cli)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &w.port().to_string(),
            "SET",
            "cli",
            "ok",
        ])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let out = std::process::Command::new(&redis_cli)
        .args(["-h", "127.0.0.1", "-p", &w.port().to_string(), "GET", "cli"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    // redis-py with defaults (sends HELLO? and CLIENT SETINFO on connect).
    let script = format!(
        "import redis\nw = redis.Redis(host='127.0.0.1', port={})\nr = redis.Redis(host='127.0.0.1', port={})\n\
         w.set('py', 'hello')\nw.execute_command('WAIT', 2, 2000)\nassert r.get('py') == b'hello', r.get('py')\n\
         p = w.pipeline(transaction=True)\np.incr('pyc')\np.incr('pyc')\nassert p.execute() == [1, 2]\nprint('py-ok')\n",
        w.port(),
        r.port()
    );
    let Some(python) = redis_ha_testkit::program("redis") else {
        return;
    };
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("python3");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("py-ok"),
        "redis-py through the proxy failed: {all}"
    );
}

async fn resp3_pubsub_big_values_quit_and_garbage(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let w = p.write_addr();

    // HELLO 3: RESP3 replies (a map), then normal commands.
    let mut c = conn(w).await;
    let hello = cmd(&mut c, &["HELLO", "3"]).await;
    assert!(matches!(hello, Frame::Map(_)), "{hello:?}");
    assert_eq!(text(&cmd(&mut c, &["SET", "r3", "x"]).await), "OK");
    assert_eq!(text(&cmd(&mut c, &["GET", "r3"]).await), "x");
    let _ = cmd(&mut c, &["CLIENT", "SETNAME", "resp3-client"]).await;

    // Pub/Sub on both endpoints (PUBLISH on the master reaches replicas too).
    for ep in [p.write_addr(), p.read_addr()] {
        let mut sub = conn(ep).await;
        sub.send(&["SUBSCRIBE", "news"]).await.unwrap();
        let confirm = sub.read_frame().await.unwrap();
        assert_eq!(text(&confirm.as_array().unwrap()[0]), "subscribe");
        let mut publ = conn(w).await;
        // A replica's subscriber count is not visible to PUBLISH on the
        // master, so publish until the message arrives.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let msg = loop {
            cmd(&mut publ, &["PUBLISH", "news", "hi"]).await;
            if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), sub.read_frame()).await
            {
                break m.unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "no message on {ep}");
        };
        let v = msg.as_array().unwrap();
        assert_eq!(
            (text(&v[0]).as_str(), text(&v[2]).as_str()),
            ("message", "hi"),
            "on {ep}"
        );
    }

    // A 20 MB value round trip.
    let big = "x".repeat(20 * 1024 * 1024);
    assert_eq!(text(&cmd(&mut c, &["SET", "big", &big]).await), "OK");
    assert_eq!(
        cmd(&mut c, &["GET", "big"])
            .await
            .as_bytes()
            .map(|b| b.len()),
        Some(big.len())
    );

    // Unknown commands get Redis's own error.
    let e = cmd(&mut c, &["NOSUCHCMD", "a"]).await;
    assert!(
        e.error_message().unwrap().contains("unknown command"),
        "{e:?}"
    );

    // QUIT: +OK then closed.
    assert_eq!(text(&cmd(&mut c, &["QUIT"]).await), "OK");
    assert!(
        c.read_frame().await.is_err(),
        "connection must be closed after QUIT"
    );

    // Garbage: Redis-worded protocol error, then closed; no panic, proxy lives.
    for bad in [
        &b"*x\r\n"[..],
        b"*1\r\n$600000000\r\n",
        b"*1\r\n+PING\r\n",
        b"SET \"unbalanced\r\n",
    ] {
        let mut s = tokio::net::TcpStream::connect(w).await.unwrap();
        s.write_all(bad).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let reply = String::from_utf8_lossy(&buf);
        assert!(
            reply.starts_with("-ERR Protocol error: "),
            "{reply:?} for {:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Inline commands work as in Redis.
    let mut s = tokio::net::TcpStream::connect(w).await.unwrap();
    s.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    let mut c = conn(w).await;
    assert_eq!(text(&cmd(&mut c, &["PING"]).await), "PONG");
}

/// Found by the `session` fuzz target: without subscriptions Redis answers
/// (P|S)UNSUBSCRIBE once per channel, in RESP3 with pushes; each is part of
/// its reply, so the next request still gets its own and EOF closes
/// (Valkey 8 answers each such command with one -NOSUB error).
async fn unsubscribe_without_subscriptions(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    let unsub = |kind: &str, ch: &str, nil: &str| {
        let ch = match ch {
            "" => nil.to_string(),
            c => format!("${}\r\n{c}\r\n", c.len()),
        };
        format!("${}\r\n{kind}\r\n{ch}:0\r\n", kind.len())
    };
    for (hello, head, nil) in [
        ("", "*3\r\n", "$-1\r\n"),
        ("HELLO 3\r\n", ">3\r\n", "_\r\n"),
    ] {
        let mut s = tokio::net::TcpStream::connect(p.write_addr())
            .await
            .unwrap();
        let req = format!("{hello}UNSUBSCRIBE a b\r\nPUNSUBSCRIBE\r\nPING\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("answered and closed")
            .unwrap();
        let got = String::from_utf8_lossy(&buf);
        // Valkey 8 answers each command once, with an error, instead.
        let want = if got.contains("-NOSUB") {
            let nosub =
                |c: &str| format!("-NOSUB '{c}' command executed not in subscribed mode\r\n");
            nosub("unsubscribe") + &nosub("punsubscribe") + "+PONG\r\n"
        } else {
            [
                unsub("unsubscribe", "a", nil),
                unsub("unsubscribe", "b", nil),
                unsub("punsubscribe", "", nil),
            ]
            .map(|u| format!("{head}{u}"))
            .concat()
                + "+PONG\r\n"
        };
        assert!(got.ends_with(&want), "{got:?}, wanted the end {want:?}");
    }
}

in_both_modes!(
    clients_work_through_both_endpoints,
    resp3_pubsub_big_values_quit_and_garbage,
    unsubscribe_without_subscriptions
);
