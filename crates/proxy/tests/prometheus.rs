//! The monitoring, against a real Prometheus: a topology with the proxy and a
//! redis_exporter beside every Redis and Sentinel node, scraped every second
//! by Debian's Prometheus with the rendered alert rules
//! (`deploy/prometheus/rules.yml`). Under a little load and one failover,
//! every query of every Grafana panel (`deploy/grafana/redis-ha.json`, its
//! variables substituted as Grafana would) must return series carrying the
//! labels its legend names, and the failover must show in the failover
//! panels. Two sentinels frozen make `RedisHaSentinelsUnreachable` pending
//! then firing; thawed, it clears.

mod common;
use common::*;
use redis_ha_local::ports::free_port;
use redis_ha_topology::spec::Spec;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Child processes killed (and reaped) when the test ends, passed or not.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let f = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// The rendered rules with every `for:` shortened to 3 s: the promtool
/// tests (crates/k8s/tests/alerts.rs) prove the durations; this test proves
/// the expressions against real metrics through a real Prometheus.
fn fast_rules() -> String {
    let text = std::fs::read_to_string(repo("deploy/prometheus/rules.yml")).unwrap();
    text.lines()
        .map(|l| match l.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 3s"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn config(proxy_admin: &str, exporters: &[(String, String)]) -> String {
    let mut s = String::from(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\nscrape_configs:\n",
    );
    s.push_str(&format!(
        "  - job_name: redis-ha\n    static_configs:\n      - targets: ['{proxy_admin}']\n"
    ));
    s.push_str("  - job_name: redis\n    static_configs:\n");
    for (node, target) in exporters {
        s.push_str(&format!(
            "      - targets: ['{target}']\n        labels: {{node: '{node}'}}\n"
        ));
    }
    s
}

fn percent_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET on Prometheus's HTTP API; the JSON `data`.
async fn api(prom: std::net::SocketAddr, path: &str) -> Value {
    let (code, text) = http_get(prom, path).await;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(code, 200, "{path}: {text}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    assert_eq!(v["status"], "success", "{path}: {v}");
    v["data"].clone()
}

async fn query(prom: std::net::SocketAddr, q: &str) -> Vec<Value> {
    let data = api(prom, &format!("/api/v1/query?query={}", percent_encode(q))).await;
    data["result"].as_array().cloned().unwrap_or_default()
}

/// A panel query as Grafana sends it: every proxy and node selected, the
/// rate window four scrapes, the range the last five minutes.
fn as_grafana(expr: &str) -> String {
    expr.replace("$__rate_interval", "5s")
        .replace("$__range", "5m")
        .replace("$redis_instance", ".*")
        .replace("$instance", ".*")
}

/// `(title, expr, labels the legend names)` of every panel target, every
/// Prometheus annotation (the failover markers) and every template
/// variable (`label_values(METRIC, LABEL)`: METRIC must have LABEL).
fn panel_queries() -> Vec<(String, String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(repo("deploy/grafana/redis-ha.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        let inner = p["panels"].as_array().cloned().unwrap_or_default();
        for panel in std::iter::once(p).chain(inner.iter()) {
            for t in panel["targets"].as_array().into_iter().flatten() {
                let legend = t["legendFormat"].as_str().unwrap_or("");
                let labels = legend
                    .split("{{")
                    .skip(1)
                    .filter_map(|s| s.split_once("}}"))
                    .map(|(l, _)| l.trim().to_string())
                    .collect();
                let title = panel["title"].as_str().unwrap_or("").to_string();
                out.push((title, t["expr"].as_str().unwrap().to_string(), labels));
            }
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = a["expr"].as_str() {
            let title = format!("annotation {}", a["name"].as_str().unwrap_or(""));
            out.push((title, expr.to_string(), BTreeSet::new()));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let Some(def) = v["definition"].as_str() else {
            continue;
        };
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'));
        let (metric, label) = inner.and_then(|i| i.split_once(',')).expect(def);
        let title = format!("variable {}", v["name"].as_str().unwrap_or(""));
        out.push((
            title,
            metric.trim().to_string(),
            [label.trim().to_string()].into(),
        ));
    }
    out
}

/// The state (`pending`, `firing`) of `alert` in Prometheus, if active.
async fn alert_state(prom: std::net::SocketAddr, alert: &str) -> Option<String> {
    let data = api(prom, "/api/v1/alerts").await;
    data["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == alert)
        .map(|a| a["state"].as_str().unwrap_or("").to_string())
}

/// A writer and a reader through the proxy until `stop` is set.
fn load(
    p: &redis_ha_proxy::server::ProxyHandle,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (w, r, s) = (p.write_addr(), p.read_addr(), stop.clone());
    let task = tokio::spawn(async move {
        let mut wc = conn(w).await;
        let mut rc = conn(r).await;
        let mut i = 0u64;
        while !s.load(Ordering::Relaxed) {
            let _ = wc.request(&["INCR", "prom-counter"]).await;
            let _ = rc.request(&["GET", "prom-counter"]).await;
            i += 1;
            if i.is_multiple_of(50) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    (task, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_has_data_and_the_sentinel_alert_fires_and_clears() {
    let (Some(prometheus), Some(exporter)) = (
        redis_ha_testkit::program("prometheus"),
        redis_ha_testkit::program("prometheus-redis-exporter"),
    ) else {
        return;
    };
    let (t, p) = setup(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut children = Children(Vec::new());

    // A redis_exporter per Redis and Sentinel node.
    let mut exporters = Vec::new();
    let nodes: Vec<(String, String)> = t
        .redis_addrs()
        .into_iter()
        .enumerate()
        .map(|(i, a)| (Spec::redis_name(i), a))
        .chain(
            t.sentinel_addrs()
                .into_iter()
                .enumerate()
                .map(|(i, a)| (Spec::sentinel_name(i), a)),
        )
        .collect();
    for (name, addr) in &nodes {
        let target = format!("127.0.0.1:{}", free_port("127.0.0.1").unwrap());
        children.0.push(spawn(
            Command::new(&exporter).args([
                &format!("-redis.addr=redis://{addr}"),
                &format!("-web.listen-address={target}"),
                "-redis-only-metrics",
            ]),
            &dir.path().join(format!("exporter-{name}.log")),
        ));
        exporters.push((name.clone(), target));
    }

    std::fs::write(dir.path().join("rules.yml"), fast_rules()).unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config(&p.admin_addr.to_string(), &exporters)).unwrap();
    let prom: std::net::SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1").unwrap())
        .parse()
        .unwrap();
    children.0.push(spawn(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .arg("--storage.tsdb.retention.time=1h"),
        &dir.path().join("prometheus.log"),
    ));
    let up_targets = || async {
        let (code, text) = tokio::time::timeout(Duration::from_secs(2), async {
            match tokio::net::TcpStream::connect(prom).await {
                Ok(_) => http_get(prom, "/api/v1/query?query=up").await,
                Err(_) => (0, String::new()),
            }
        })
        .await
        .unwrap_or((0, String::new()));
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let up = v["data"]["result"]
            .as_array()
            .map(|r| r.iter().filter(|s| s["value"][1] == "1").count())
            .unwrap_or(0);
        (code == 200 && up == 1 + nodes.len()).then_some(())
    };
    poll(
        "Prometheus up, scraping the proxy and every exporter",
        Duration::from_secs(60),
        up_targets,
    )
    .await;

    // A little load, then a planned failover under it.
    let (loader, stop) = load(&p);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let old = t.master().await.unwrap();
    let r = sentinel_query(
        &t,
        &t.sentinel_addrs()[0],
        &["SENTINEL", "FAILOVER", &t.opts.spec.master_name],
    )
    .await;
    assert!(r.is_ok(), "SENTINEL FAILOVER: {r:?}");
    t.wait_new_master(&old, Duration::from_secs(30))
        .await
        .expect("a new master");
    poll(
        "the failover counted by Prometheus",
        Duration::from_secs(30),
        || async {
            let r = query(prom, "sum(redis_ha_failovers_total)").await;
            let n: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
            (n >= 1.0).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    // Every panel query returns series with the labels its legend uses.
    let mut empty = Vec::new();
    for (title, expr, legend) in panel_queries() {
        let q = as_grafana(&expr);
        let series = query(prom, &q).await;
        if series.is_empty() {
            empty.push(format!("{title}: {q}"));
            continue;
        }
        for s in &series {
            for l in &legend {
                assert!(
                    s["metric"].get(l).is_some(),
                    "{title}: {q}: no label {l} in {s}"
                );
            }
        }
    }
    assert!(
        empty.is_empty(),
        "panel queries without data:\n{}",
        empty.join("\n")
    );
    // The failover shows in the failover panels.
    let failovers = query(
        prom,
        &as_grafana("sum(increase(redis_ha_failovers_total{instance=~\"$instance\"}[$__range]))"),
    )
    .await;
    let n: f64 = failovers[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n >= 1.0, "Failovers (range) shows {n}");
    let took = query(prom, "sum(redis_ha_failover_seconds_count)").await;
    assert!(
        took[0]["value"][1] != "0",
        "no failover duration observed: {took:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    loader.await.unwrap();

    // Two of three sentinels frozen: below the quorum.
    assert_eq!(alert_state(prom, "RedisHaSentinelsUnreachable").await, None);
    let frozen = [Spec::sentinel_name(1), Spec::sentinel_name(2)];
    for s in &frozen {
        t.stop(s).unwrap();
    }
    let pending_or_firing = poll(
        "RedisHaSentinelsUnreachable pending",
        Duration::from_secs(45),
        || async { alert_state(prom, "RedisHaSentinelsUnreachable").await },
    )
    .await;
    assert!(
        matches!(pending_or_firing.as_str(), "pending" | "firing"),
        "{pending_or_firing}"
    );
    poll(
        "RedisHaSentinelsUnreachable firing",
        Duration::from_secs(30),
        || async {
            (alert_state(prom, "RedisHaSentinelsUnreachable")
                .await
                .as_deref()
                == Some("firing"))
            .then_some(())
        },
    )
    .await;
    for s in &frozen {
        t.cont(s).unwrap();
    }
    poll(
        "RedisHaSentinelsUnreachable cleared",
        Duration::from_secs(45),
        || async {
            alert_state(prom, "RedisHaSentinelsUnreachable")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
    drop(children);
}
