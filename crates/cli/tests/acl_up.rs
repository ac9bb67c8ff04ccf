//! `redis-ha up --acl` as a user runs it, proxy included: the proxy logs in
//! to Redis as its own `proxy` user (password from its file, never on a
//! command line), clients that log in as `proxy` share its connections, a
//! login as `default` is judged by Redis, and no login gets NOAUTH.

mod common;
use common::up_with_proxy;
use redis_ha_resp::conn::Connection;
use redis_ha_resp::Frame;
use std::time::{Duration, Instant};

const IO: Duration = Duration::from_secs(2);

fn secret(state: &str, user: &str) -> String {
    let f = format!("{state}/secrets/{user}.password");
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{f}: {e}"))
        .trim_end()
        .to_string()
}

fn text(f: Frame) -> String {
    f.as_text().unwrap_or_else(|| format!("{f:?}"))
}

async fn logged_in(addr: &str, auth: &[&str]) -> Connection {
    let mut c = Connection::connect(addr, IO).await.unwrap();
    c.request_ok(auth).await.unwrap();
    c
}

/// Polls the master's CLIENT LIST (as `default`) until the proxy's shared
/// connections show up, and returns their lines.
async fn mux_links(master: &str, default_pw: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = logged_in(master, &["AUTH", default_pw]).await;
        let list = text(c.request_ok(&["CLIENT", "LIST"]).await.unwrap());
        let mux: Vec<String> = list
            .lines()
            .filter(|l| l.contains("name=redis-ha-mux"))
            .map(str::to_string)
            .collect();
        if !mux.is_empty() {
            return mux;
        }
        assert!(Instant::now() < deadline, "no shared connections:\n{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_proxy_logs_in_as_its_own_user() {
    let dir = tempfile::tempdir().unwrap();
    let (state, p, _down) = up_with_proxy(dir.path(), &["--acl"]);
    let (default_pw, proxy_pw) = (secret(&state, "default"), secret(&state, "proxy"));
    let proxy = format!("127.0.0.1:{}", p[6]);
    let master = format!("127.0.0.1:{}", p[0]);

    let pid = std::fs::read_to_string(format!("{state}/proxy/pid")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("--user proxy --password-file"),
        "{cmdline}"
    );
    assert!(!cmdline.contains(&proxy_pw) && !cmdline.contains(&default_pw));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // As `proxy`: shared connections, which Redis knows as `proxy` (a
        // session returns to them 1 s after its last stateful command: AUTH).
        let mut c = logged_in(&proxy, &["AUTH", "proxy", &proxy_pw]).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(text(c.request_ok(&["INCR", "n"]).await.unwrap()), "1");
        let who = text(c.request_ok(&["ACL", "WHOAMI"]).await.unwrap());
        assert_eq!(who, "proxy");
        for l in mux_links(&master, &default_pw).await {
            assert!(l.contains(" user=proxy "), "{l}");
        }
        let e = c.request_ok(&["FLUSHALL"]).await.unwrap_err().to_string();
        assert!(e.contains("NOPERM") || e.contains("denied"), "{e}");

        // As `default`: Redis judges the password, the client keeps its rights.
        let mut d = logged_in(&proxy, &["AUTH", &default_pw]).await;
        let who = text(d.request_ok(&["ACL", "WHOAMI"]).await.unwrap());
        assert_eq!(who, "default");
        assert_eq!(text(d.request_ok(&["INCR", "n"]).await.unwrap()), "2");
        let mut bad = Connection::connect(&proxy, IO).await.unwrap();
        let e = bad.request_ok(&["AUTH", "wrong"]).await.unwrap_err();
        assert!(e.to_string().contains("WRONGPASS"), "{e}");
        let e = bad
            .request_ok(&["AUTH", "proxy", "wrong"])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("WRONGPASS"), "{e}");

        // No login: NOAUTH, as from Redis.
        let mut n = Connection::connect(&proxy, IO).await.unwrap();
        let e = n.request_ok(&["GET", "n"]).await.unwrap_err().to_string();
        assert!(e.contains("NOAUTH"), "{e}");
    });
}
