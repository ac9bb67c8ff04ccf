//! The admin endpoint, including the dashboard as a browser renders it.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_dashboard() {
    let (t, p) = setup(|_| {}).await;
    let master = t.master().await.unwrap();
    let mut c = conn(p.write_addr).await;
    for _ in 0..10 {
        cmd(&mut c, &["SET", "a", "b"]).await;
    }
    let (code, body) = http_get(p.admin_addr, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(p.admin_addr, "/readyz").await;
    assert_eq!(code, 200);
    assert!(body.contains(&master), "{body}");
    let (code, body) = http_get(p.admin_addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    for name in [
        "redis_ha_commands_total{endpoint=\"write\"}",
        "redis_ha_client_connections",
        "redis_ha_master_known 1",
        "redis_ha_failovers_total",
        "redis_ha_hold_seconds_bucket",
    ] {
        assert!(body.contains(name), "missing {name} in:\n{body}");
    }
    let (code, body) = http_get(p.admin_addr, "/api/status").await;
    assert_eq!(code, 200);
    let json: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["status"]["master"], master.as_str());
    assert_eq!(json["status"]["read_rotation"].as_array().unwrap().len(), 2);
    assert_eq!(json["status"]["sentinels"].as_array().unwrap().len(), 3);
    assert!(json["counters"]["write_commands"].as_u64().unwrap() >= 10);

    // The page as Chromium renders it (after its script refreshed it).
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok())
        .expect("chromium is not installed: `apt-get install -y chromium` (scripts/install-deps.sh --test does)");
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", p.admin_addr);
    let out = tokio::task::spawn_blocking(move || {
        // `timeout`: a browser that hangs fails the test instead of CI.
        std::process::Command::new("timeout")
            .args([
                "60",
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.path().display()),
                "--virtual-time-budget=2500",
                "--dump-dom",
                &url,
            ])
            .output()
            .expect("run chromium")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("redis-ha proxy"),
        "no dashboard in DOM: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains(&master), "master {master} not shown: {dom}");
    for r in t.redis_addrs().iter().filter(|a| **a != master) {
        assert!(dom.contains(r.as_str()), "replica {r} not shown");
    }
    assert!(
        dom.contains("in rotation") && dom.contains("subscribed"),
        "{dom}"
    );
}
