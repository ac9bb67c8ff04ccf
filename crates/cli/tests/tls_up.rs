//! `redis-ha up --tls` as a user runs it: no plaintext port anywhere,
//! Redis and Sentinel on tls-port with TLS replication, the proxy's usual
//! ports speaking TLS to clients that trust only the generated CA, and
//! `status`, `bench` and a kill -9 `drill` working from the state dir alone, with
//! nothing lost or applied twice across the failover.

mod common;
use common::{run, text, up_with_proxy};
use redis_ha_resp::conn::{query_auth, Connection};
use redis_ha_resp::tls::{Tls, TlsSettings};
use redis_ha_resp::{Access, ConnError};
use redis_ha_topology::promotion::Promotion;
use redis_ha_topology::render::promotion_conf;
use std::sync::Arc;
use std::time::Duration;

const IO: Duration = Duration::from_secs(3);

fn text_of(f: redis_ha_resp::Frame) -> String {
    f.as_text().unwrap_or_else(|| format!("{f:?}"))
}

/// A client trusting `state/tls/ca.crt`, with or without the client cert.
fn client(state: &str, with_cert: bool) -> Access {
    let f = |n: &str| std::path::PathBuf::from(format!("{state}/tls/{n}"));
    let tls = Tls::new(&TlsSettings {
        server_name: None,
        cacert: Some(f("ca.crt")),
        cert: with_cert.then(|| f("client.crt")),
        key: with_cert.then(|| f("client.key")),
        skip_verify: false,
        flags: "",
    })
    .unwrap();
    Access {
        login: None,
        tls: Some(Arc::new(tls)),
    }
}

fn run_owned(args: &[String]) -> std::process::Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// [`run_owned`] off the runtime's threads (the topology's proxy and the
/// test's own connections keep running meanwhile).
async fn run_blocking(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || run_owned(&args))
        .await
        .unwrap()
}

async fn plain_ping(addr: &str) -> Result<redis_ha_resp::Frame, ConnError> {
    let mut c = Connection::connect(addr, IO).await?;
    c.request(&["PING"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_topology_has_no_plaintext_port_and_fails_over_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (state, p, _down) = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || up_with_proxy(&d, &["--tls", "--down-after-ms", "2000"])
    })
    .await
    .unwrap();
    let at = |i: usize| format!("127.0.0.1:{}", p[i]);
    let node = client(&state, true);

    // Redis (0-2), sentinels (3-5), proxy write and read (6, 7): TLS only.
    for i in 0..8 {
        let plain = plain_ping(&at(i)).await;
        assert!(
            !matches!(&plain, Ok(f) if f.as_text().as_deref() == Some("PONG")),
            "{} answers plaintext: {plain:?}",
            at(i)
        );
        let f = query_auth(&at(i), Some(&node), &["PING"], IO).await;
        assert_eq!(f.map(text_of).ok().as_deref(), Some("PONG"), "{}", at(i));
    }
    for i in 0..3 {
        let conf = |k: &str| {
            let a = at(i);
            let node = node.clone();
            let k = k.to_string();
            async move {
                let f = query_auth(&a, Some(&node), &["CONFIG", "GET", &k], IO).await;
                f.unwrap().into_pairs().into_iter().next().unwrap().1
            }
        };
        assert_eq!(conf("port").await, "0");
        assert_eq!(conf("tls-replication").await, "yes");
        assert_eq!(conf("tls-auth-clients").await, "yes");
    }

    // Applications trust the CA and need no certificate of their own at the
    // proxy; directly at a node, one is required.
    let app = client(&state, false);
    let f = query_auth(&at(6), Some(&app), &["INCR", "tls:n"], IO).await;
    assert_eq!(f.unwrap().as_int(), Some(1));
    let refused = query_auth(&at(0), Some(&app), &["PING"], IO).await;
    assert!(refused.is_err(), "a node served a client without a cert");

    let o = run(&["status", "--state-dir", &state]);
    assert!(o.status.success(), "status: {}", text(&o));
    assert!(text(&o).contains("healthy"), "{}", text(&o));

    // bench finds the CA in the state dir: no --tls flags.
    let out = format!("{state}/bench.json");
    let o = run(&[
        "bench",
        "--state-dir",
        &state,
        "-p",
        &p[6],
        "-t",
        "1",
        "-c",
        "2",
        "-n",
        "200",
        "--ratio",
        "1:1",
        "--json-out-file",
        &out,
    ]);
    assert!(o.status.success(), "bench: {}", text(&o));
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(b["Configuration"]["tls"], true, "{b}");
    assert_eq!(b["ALL STATS"]["Totals"]["Count"], 400, "{b}");
    assert_eq!(b["ALL STATS"]["Totals"]["Errors"], 0, "{b}");

    let args: Vec<String> = [
        "drill",
        "--state-dir",
        &state,
        "--fault",
        "kill",
        "--writers",
        "4",
        "--before",
        "1s",
        "--after",
        "1s",
        "--json",
    ]
    .map(String::from)
    .to_vec();
    let o = run_blocking(args).await;
    assert!(o.status.success(), "drill: {}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = if r.is_array() { r[0].clone() } else { r };
    assert!(r["writes_acked"].as_u64().unwrap() > 100, "{r}");
    assert_eq!(r["lost_writes"], 0, "{r}");
    assert_eq!(r["duplicated_writes"], 0, "{r}");
    assert_ne!(r["new_master"], r["old_master"], "{r}");

    // What the Kubernetes pods run, by address: init-role and switchover
    // with redis-cli's TLS flags.
    let tls_dir = format!("{state}/tls");
    let flags = |v: &mut Vec<String>| {
        for (k, f) in [
            ("--cacert", "ca.crt"),
            ("--cert", "client.crt"),
            ("--key", "client.key"),
        ] {
            v.extend([k.to_string(), format!("{tls_dir}/{f}")]);
        }
    };
    let ask = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"];
    let master: Vec<String> = query_auth(&at(3), Some(&node), &ask, IO)
        .await
        .unwrap()
        .into_array()
        .unwrap()
        .into_iter()
        .map(text_of)
        .collect();
    let master = master.join(":");
    let replica = (0..3).map(at).find(|a| *a != master).unwrap();
    let include = format!("{state}/role.conf");
    let mut args: Vec<String> = ["init-role", "--sentinel", &at(3), "--sentinel", &at(4)]
        .map(String::from)
        .to_vec();
    args.extend(
        [
            "--announce",
            &replica,
            "--first-master",
            &at(0),
            "--output",
            &include,
            "--max-wait",
            "3s",
        ]
        .map(String::from),
    );
    // Without --tls it never decides: it waits (here up to --max-wait),
    // saying what to check.
    let plain = run_owned(&args);
    assert!(
        !plain.status.success() && text(&plain).contains("pass --tls"),
        "init-role without --tls decided: {}",
        text(&plain)
    );
    args.push("--tls".into());
    flags(&mut args);
    let o = run_owned(&args);
    assert!(o.status.success(), "init-role --tls: {}", text(&o));
    let (h, port) = master.split_once(':').unwrap();
    // A restart (not a first boot): not promotable until synced.
    let after_sync = promotion_conf(Promotion::AfterSync);
    assert_eq!(
        std::fs::read_to_string(&include).unwrap(),
        format!("replicaof {h} {port}\n{after_sync}")
    );

    let mut args: Vec<String> = ["switchover", "--sentinel", &at(3), "--json", "--tls"]
        .map(String::from)
        .to_vec();
    flags(&mut args);
    let o = run_blocking(args).await;
    assert!(o.status.success(), "switchover --tls: {}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["switched"], true, "{s}");
    assert_eq!(s["old_master"], master.as_str(), "{s}");
}
