//! The dashboard through a failover: its history and failover records as
//! JSON, the page without JavaScript, and the charts as headless Chromium
//! draws them, with the failover marked on them and listed with its steps.

mod common;
use common::*;
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_proxy::server::start;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body.split("\r\n\r\n").nth(1).expect("http body")).expect("json")
}

/// `chromium --dump-dom` of `url` after its scripts ran for a few seconds
/// of virtual time; `None` (the test then says it skipped) without Chromium.
async fn chromium_dom(url: String) -> Option<String> {
    let out = tokio::task::spawn_blocking(move || redis_ha_testkit::chromium::dump_dom(&url, 3000))
        .await
        .unwrap()?;
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("redis-ha proxy"),
        "no dashboard in Chromium's DOM: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dom)
}

/// The markup of one chart's `<svg>`.
fn svg<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in {dom}"));
    let len = dom[start..].find("</svg>").expect("</svg>");
    &dom[start..start + len]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_shows_on_the_charts_and_in_the_table() {
    let t = Topology::start_test(1000).await.expect("topology");
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.node_names = t.opts.named_addrs();
    let p = start(cfg).await.expect("proxy");
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    let old = t.master().await.unwrap();

    // Traffic through the failover, so every chart has something to draw.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, addr) = (stop.clone(), p.write_addr());
        tokio::spawn(async move {
            let mut c = conn(addr).await;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = c.request(&["SET", "k", &n.to_string()]).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let f = redis_ha_resp::conn::query(
        &t.sentinel_addrs()[0],
        &["SENTINEL", "FAILOVER", &t.opts.spec.master_name],
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert!(!f.is_error(), "{f:?}");
    // The failover's record, once it ended and writes were served again.
    let rec = poll("the failover recorded", Duration::from_secs(30), || async {
        let v = json(&http_get(p.admin_addr, "/api/history").await.1);
        let f = v["failovers"].get(0)?.clone();
        (f["outcome"] != "in progress" && !f["first_write_ms"].is_null()).then_some(f)
    })
    .await;
    // A few more samples after it, then stop the traffic.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    assert!(writer.await.unwrap() > 100);

    let new = t.master().await.unwrap();
    assert_ne!(new, old);
    let new_name = t.name_of(&new).unwrap();
    assert_eq!(rec["old_master"], old.as_str(), "{rec}");
    assert_eq!(rec["new_master"], new.as_str(), "{rec}");
    let step = |k: &str| rec[k].as_f64().unwrap_or_else(|| panic!("no {k} in {rec}"));
    // Each step is timed from the fault first seen, in order.
    let (promoted, adopted, first) = (
        step("promoted_ms"),
        step("adopted_ms"),
        step("first_write_ms"),
    );
    assert!(promoted <= adopted && adopted <= first, "{rec}");
    step("switch_master_ms");
    step("ended_ms");
    eprintln!("failover record: {rec}");

    let v = json(&http_get(p.admin_addr, "/api/history").await.1);
    let samples = v["samples"].as_array().unwrap();
    assert!(samples.len() >= 5, "{v}");
    assert!(samples.iter().any(|s| s["write_ops"].as_f64() > Some(10.0)));
    assert!(samples.iter().any(|s| s["write_p99_ms"].is_number()));
    let status = json(&http_get(p.admin_addr, "/api/status").await.1);
    assert_eq!(status["names"][&new], new_name.as_str(), "{status}");

    // Without JavaScript: the server's own tables, names beside addresses.
    let (code, page) = http_get(p.admin_addr, "/").await;
    assert_eq!(code, 200);
    assert!(page.contains(&format!("<b class=\"name\">{new_name}</b> {new}")));
    assert!(page.contains("<tr class=\"failover\">") && page.contains("+switch-master"));
    assert!(page.contains("<b class=\"name\">sentinel-0</b>"));

    let Some(dom) = chromium_dom(format!("http://{}/", p.admin_addr)).await else {
        return;
    };
    for id in ["chart-ops", "chart-latency", "chart-held"] {
        let s = svg(&dom, id);
        assert!(s.contains("<polyline"), "{id} has no line: {s}");
        assert!(
            s.contains("class=\"failover-marker\""),
            "{id}: no marker: {s}"
        );
    }
    assert!(svg(&dom, "chart-errors").contains("class=\"failover-band\""));
    let ops = svg(&dom, "chart-ops");
    assert!(ops.contains("data-series=\"write\"") && ops.contains("-15 min"));
    let rows = &dom[dom.find("id=\"failovers\"").unwrap()..];
    let row = &rows[..rows.find("</tr>").unwrap()];
    assert!(
        row.contains("class=\"failover\"") && row.contains(&new_name) && row.contains(" ms"),
        "{row}"
    );
    assert!(
        dom.contains(&format!("<b class=\"name\">{new_name}</b> {new}")),
        "{dom}"
    );
}

/// With `--admin-token-file`, the dashboard opened as `/?token=TOKEN` gets
/// its data (the script sends the token on) and its links carry the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protected_dashboard_passes_its_token_on() {
    let t = Topology::start_test(1000).await.expect("topology");
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.admin_token = Some("t0k+en".into());
    let p = start(cfg).await.expect("proxy");
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    let master = t.master().await.unwrap();
    let url = format!("http://{}/?token=t0k%2Ben", p.admin_addr);
    let Some(dom) = chromium_dom(url).await else {
        return;
    };
    assert!(
        !dom.contains("proxy unreachable"),
        "the script's fetches failed: {dom}"
    );
    assert!(dom.contains(&master), "no master in {dom}");
    for path in ["/metrics", "/api/status", "/api/history"] {
        let link = format!("href=\"http://{}{path}?token=t0k%2Ben\"", p.admin_addr);
        let relative = format!("href=\"{path}?token=t0k%2Ben\"");
        assert!(
            dom.contains(&link) || dom.contains(&relative),
            "{path}: {dom}"
        );
    }
}
