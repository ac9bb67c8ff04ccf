//! The admin HTTP endpoint: dashboard, Prometheus metrics, JSON status,
//! liveness and readiness. Reads control state and metrics; never touches
//! the data path.

mod listen;

use crate::config::ProxyConfig;
use crate::control::ControlState;
use crate::metrics::Metrics;
use crate::route::Endpoint;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct AdminState {
    pub control: Arc<ControlState>,
    pub metrics: Arc<Metrics>,
    pub config: ProxyConfig,
}

#[derive(Clone)]
struct App {
    s: AdminState,
    rates: Arc<Mutex<Rates>>,
}

#[derive(Clone, Default, Serialize)]
struct Rates {
    write_ops_per_sec: f64,
    read_ops_per_sec: f64,
}

#[derive(Serialize)]
struct Counters {
    write_clients: i64,
    read_clients: i64,
    write_commands: u64,
    read_commands: u64,
    write_ops_per_sec: f64,
    read_ops_per_sec: f64,
    errors: u64,
    retried: u64,
    held: u64,
    failovers: u64,
}

fn counters(app: &App) -> Counters {
    let m = &app.s.metrics;
    let (w, r) = (m.ep(Endpoint::write), m.ep(Endpoint::read));
    let rates = app.rates.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Counters {
        write_clients: w.client_connections.get(),
        read_clients: r.client_connections.get(),
        write_commands: w.commands.get(),
        read_commands: r.commands.get(),
        write_ops_per_sec: rates.write_ops_per_sec,
        read_ops_per_sec: rates.read_ops_per_sec,
        errors: w.errors_total() + r.errors_total(),
        retried: w.retried.get() + r.retried.get(),
        held: w.held.get() + r.held.get(),
        failovers: m.failovers_total.get(),
    }
}

pub async fn serve(listener: tokio::net::TcpListener, state: AdminState) -> std::io::Result<()> {
    let app = App {
        s: state,
        rates: Arc::new(Mutex::new(Rates::default())),
    };
    // ops/s sampled once a second here, not counted on the data path.
    let sampler = {
        let app = app.clone();
        tokio::spawn(async move {
            let m = app.s.metrics.clone();
            let get = |ep| m.ep(ep).commands.get();
            let (mut w0, mut r0) = (get(Endpoint::write), get(Endpoint::read));
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let (w1, r1) = (get(Endpoint::write), get(Endpoint::read));
                *app.rates.lock().unwrap_or_else(|e| e.into_inner()) = Rates {
                    write_ops_per_sec: (w1 - w0) as f64,
                    read_ops_per_sec: (r1 - r0) as f64,
                };
                (w0, r0) = (w1, r1);
            }
        })
    };
    let router = Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(app);
    let r = listen::serve(listener, router).await;
    sampler.abort();
    r
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.s.metrics.encode(),
    )
        .into_response()
}

fn status_json(app: &App) -> serde_json::Value {
    let snap = app.s.control.snapshot();
    let c = &app.s.config;
    serde_json::json!({
        "status": snap,
        "counters": counters(app),
        "config": {
            "sentinels": c.sentinels,
            "master_name": c.master_name,
            "write": c.write_listen,
            "read": c.read_listen,
            "failover_hold_ms": c.failover_hold.as_millis() as u64,
            "max_replica_lag_s": c.max_replica_lag.as_secs(),
            "read_fallback": c.read_fallback,
            "read_balance": c.read_balance,
            "mode": c.mode,
        }
    })
}

async fn status(State(app): State<App>) -> Json<serde_json::Value> {
    Json(status_json(&app))
}

async fn readyz(State(app): State<App>) -> Response {
    let snap = app.s.control.snapshot();
    match snap.master {
        Some(m) => (StatusCode::OK, format!("ready: master {m}\n")).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {}\n",
                snap.closed
                    .unwrap_or_else(|| "no master known (failover in progress?)".into())
            ),
        )
            .into_response(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn dashboard(State(app): State<App>) -> Html<String> {
    let v = status_json(&app);
    let s = &v["status"];
    let c = &v["counters"];
    let mut rows = String::new();
    for r in s["replicas"].as_array().into_iter().flatten() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(r["addr"].as_str().unwrap_or("")),
            if r["healthy"].as_bool() == Some(true) {
                "ok"
            } else {
                "bad"
            },
            if r["healthy"].as_bool() == Some(true) {
                "in rotation".to_string()
            } else {
                esc(r["reason"].as_str().unwrap_or("out"))
            },
            r["lag_seconds"]
                .as_i64()
                .map(|l| format!("{l} s"))
                .unwrap_or_default(),
            r["lag_bytes"]
                .as_i64()
                .map(|l| format!("{l} B"))
                .unwrap_or_default(),
        ));
    }
    let mut sents = String::new();
    for x in s["sentinels"].as_array().into_iter().flatten() {
        sents.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(x["addr"].as_str().unwrap_or("")),
            esc(x["master"].as_str().unwrap_or("-")),
            esc(x["flags"].as_str().unwrap_or("")),
            x["config_epoch"],
            if x["error"].is_null() { "ok" } else { "bad" },
            if x["error"].is_null() {
                if x["subscribed"].as_bool() == Some(true) {
                    "reachable, subscribed".to_string()
                } else {
                    "reachable".to_string()
                }
            } else {
                esc(x["error"].as_str().unwrap_or(""))
            },
        ));
    }
    let mut fos = String::new();
    for f in s["failovers"].as_array().into_iter().flatten() {
        let ms = |k: &str| {
            f[k].as_f64()
                .map(|v| format!("{v:.0} ms"))
                .unwrap_or_else(|| "-".into())
        };
        fos.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(f["trigger"].as_str().unwrap_or("")),
            esc(f["outcome"].as_str().unwrap_or("")),
            esc(f["old_master"].as_str().unwrap_or("?")),
            esc(f["new_master"].as_str().unwrap_or("?")),
            ms("adopted_ms"),
            ms("switch_master_ms"),
            ms("ended_ms"),
        ));
    }
    let master = s["master"].as_str().map(esc).unwrap_or_else(|| {
        format!(
            "none ({})",
            esc(s["closed"]
                .as_str()
                .unwrap_or("holding writes: failover in progress?"))
        )
    });
    Html(format!(
        include_str!("admin/dashboard.html"),
        name = esc(s["master_name"].as_str().unwrap_or("")),
        master = master,
        epoch = s["epoch"],
        replicas = rows,
        sentinels = sents,
        failovers = fos,
        wc = c["write_clients"],
        rc = c["read_clients"],
        wops = c["write_ops_per_sec"],
        rops = c["read_ops_per_sec"],
        errors = c["errors"],
        retried = c["retried"],
        held = c["held"],
        nfo = c["failovers"],
    ))
}
