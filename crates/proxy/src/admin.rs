//! The admin HTTP endpoint: dashboard, Prometheus metrics, JSON status,
//! liveness and readiness. Reads control state and metrics; never touches
//! the data path. With `--admin-token-file` all but the probes need the
//! token ([`token`]).

mod dashboard;
pub mod history;
mod listen;
pub mod names;
pub mod token;

use crate::config::ProxyConfig;
use crate::control::ControlState;
use crate::metrics::Metrics;
use crate::route::Endpoint;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use history::History;
use names::Names;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct AdminState {
    pub control: Arc<ControlState>,
    pub metrics: Arc<Metrics>,
    pub config: ProxyConfig,
    pub drain: Arc<crate::data::drain::Drain>,
}

#[derive(Clone)]
struct App {
    s: AdminState,
    history: Arc<History>,
    names: Arc<Names>,
}

#[derive(Serialize)]
struct Counters {
    write_clients: i64,
    read_clients: i64,
    write_commands: u64,
    read_commands: u64,
    /// Over the last second (the history's latest sample).
    write_ops_per_sec: f64,
    read_ops_per_sec: f64,
    write_p50_ms: Option<f64>,
    write_p99_ms: Option<f64>,
    read_p50_ms: Option<f64>,
    read_p99_ms: Option<f64>,
    errors: u64,
    /// By kind, both endpoints, since start.
    errors_by_kind: std::collections::BTreeMap<&'static str, u64>,
    retried: u64,
    held: u64,
    failovers: u64,
    received_bytes: u64,
    sent_bytes: u64,
}

fn counters(app: &App) -> Counters {
    let m = &app.s.metrics;
    let (w, r) = (m.ep(Endpoint::write), m.ep(Endpoint::read));
    let last = app.history.latest().unwrap_or_default();
    Counters {
        write_clients: w.client_connections.get(),
        read_clients: r.client_connections.get(),
        write_commands: w.commands.get(),
        read_commands: r.commands.get(),
        write_ops_per_sec: last.write_ops,
        read_ops_per_sec: last.read_ops,
        write_p50_ms: last.write_p50_ms,
        write_p99_ms: last.write_p99_ms,
        read_p50_ms: last.read_p50_ms,
        read_p99_ms: last.read_p99_ms,
        errors: w.errors_total() + r.errors_total(),
        errors_by_kind: crate::data::ErrorKind::ALL
            .iter()
            .map(|&k| (k.label(), w.error(k).get() + r.error(k).get()))
            .filter(|(_, n)| *n > 0)
            .collect(),
        retried: w.retried.get() + r.retried.get(),
        held: w.held.get() + r.held.get(),
        failovers: m.failovers_total.get(),
        received_bytes: w.bytes_in.get() + r.bytes_in.get(),
        sent_bytes: w.bytes_out.get() + r.bytes_out.get(),
    }
}

pub async fn serve(listener: tokio::net::TcpListener, state: AdminState) -> std::io::Result<()> {
    let app = App {
        names: Arc::new(Names::new(&state.config.node_names)),
        history: Arc::new(History::default()),
        s: state,
    };
    // Sampled once a second here, not counted on the data path.
    let sampler = tokio::spawn(history::run(app.s.metrics.clone(), app.history.clone()));
    let router = Router::new()
        .route("/", get(dashboard))
        .route("/dashboard.js", get(script))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/history", get(history_json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/drain", axum::routing::post(drain))
        .layer(axum::middleware::from_fn_with_state(
            app.s.config.admin_token.as_deref().map(Arc::<str>::from),
            token::check,
        ))
        .with_state(app.clone());
    // Past the connection limit: the probes still answer.
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            let why =
                "too many admin connections open: only /healthz and /readyz are served; retry\n";
            (StatusCode::SERVICE_UNAVAILABLE, why)
        })
        .with_state(app);
    let r = listen::serve(listener, router, probes).await;
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
    let addrs = snap
        .replicas
        .iter()
        .map(|r| r.addr.as_str())
        .chain(snap.sentinels.iter().map(|s| s.addr.as_str()))
        .chain(snap.master.as_deref())
        .chain(
            snap.failovers
                .iter()
                .flat_map(|f| [f.old_master.as_deref(), f.new_master.as_deref()])
                .flatten(),
        );
    let names = app.names.map(addrs);
    serde_json::json!({
        "status": snap,
        "names": names,
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

async fn healthz() -> &'static str {
    "ok\n"
}

/// `POST /drain`: the same drain as SIGTERM (the process exits once done).
async fn drain(State(app): State<App>) -> Response {
    app.s.drain.request();
    (StatusCode::ACCEPTED, "draining\n").into_response()
}

async fn readyz(State(app): State<App>) -> Response {
    if app.s.drain.state() != crate::data::drain::DrainState::Ready {
        let why = "not ready: shutting down (draining)\n";
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
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

#[derive(serde::Deserialize)]
struct Since {
    /// Only samples after this unix time (ms).
    since: Option<u64>,
}

/// The last 15 minutes, one sample a second, and the failovers to mark on
/// the charts.
async fn history_json(State(app): State<App>, Query(q): Query<Since>) -> Json<serde_json::Value> {
    let snap = app.s.control.snapshot();
    Json(serde_json::json!({
        "now": history::unix_ms(),
        "interval_ms": history::INTERVAL.as_millis() as u64,
        "capacity": history::CAPACITY,
        "samples": app.history.since(q.since.unwrap_or(0)),
        "failovers": snap.failovers,
    }))
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("admin/dashboard.js"),
    )
        .into_response()
}

async fn dashboard(State(app): State<App>) -> Html<String> {
    Html(dashboard::render(&status_json(&app)))
}
