//! What the drill watches besides its writers: a reader on the read
//! endpoint (errors, and stale reads of a counter a writer increments), and
//! when the proxy switched, from its admin `/api/status`.

use crate::writer::{error_kind, Shared};
use redis_ha_resp::{Connection, Frame};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the reader saw on the read endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReadStats {
    pub endpoint: String,
    pub reads: u64,
    /// Reads that got an error or no answer, and failed connections.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Reads older than what had been acknowledged before they were sent.
    pub stale: u64,
    /// The most increments a stale read was behind.
    pub max_behind: i64,
    /// Longest gap between successful reads.
    pub longest_gap_ms: f64,
}

/// Reads writer 0's counter through `endpoint` until the writers stop, one
/// GET at a time; a read is stale when it returns less than the value writer
/// 0 had acknowledged before the GET was sent.
pub async fn reader(endpoint: String, s: Arc<Shared>, counter_key: String) -> ReadStats {
    let mut st = ReadStats {
        endpoint: endpoint.clone(),
        ..ReadStats::default()
    };
    let mut conn: Option<Connection> = None;
    let mut last_ok = Instant::now();
    let error = |st: &mut ReadStats, kind: String| {
        st.errors += 1;
        *st.errors_by_kind.entry(kind).or_insert(0) += 1;
    };
    while !s.stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                match Connection::connect_auth(&endpoint, Some(&s.access), Duration::from_secs(1))
                    .await
                {
                    Ok(mut c) => {
                        c.timeout = s.request_timeout;
                        conn.insert(c)
                    }
                    Err(e) => {
                        error(&mut st, error_kind(&e));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
        };
        let acked_before = s.acked_counter.load(Ordering::Relaxed);
        match c.request(&["GET", &counter_key]).await {
            Ok(Frame::Error(e)) => {
                error(
                    &mut st,
                    crate::writer::reply_kind(&String::from_utf8_lossy(&e)),
                );
                // An error reply is no reason to reconnect, but to wait a bit.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(f) => {
                st.reads += 1;
                let now = Instant::now();
                let gap = now.duration_since(last_ok).as_secs_f64() * 1000.0;
                if st.reads > 1 {
                    st.longest_gap_ms = st.longest_gap_ms.max(gap);
                }
                last_ok = now;
                let v = f
                    .as_text()
                    .and_then(|t| t.parse::<i64>().ok())
                    .or(f.as_int())
                    .unwrap_or(0);
                if v < acked_before {
                    st.stale += 1;
                    st.max_behind = st.max_behind.max(acked_before - v);
                }
            }
            Err(e) => {
                error(&mut st, error_kind(&e));
                conn = None;
            }
        }
    }
    st
}

/// When the proxy adopted the new master, as its admin `/api/status`
/// recorded it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxySwitch {
    /// Milliseconds from the fault to the proxy adopting the new master.
    pub adopted_after_ms: Option<f64>,
    /// Milliseconds from the fault to the proxy's failover starting (its
    /// first `+sdown`/`+odown`/failover event).
    pub started_after_ms: f64,
    pub trigger: String,
    pub new_master: Option<String>,
    pub outcome: String,
}

/// Unix time in ms.
pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// `GET path` on an HTTP server, the body (HTTP/1.0: never chunked).
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let resp = tokio::time::timeout(Duration::from_secs(3), work).await??;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from {addr}"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{addr}{path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_string())
}

/// The proxy's failovers that started at or after `fault_unix_ms` (less a
/// second: its clock starts at the first event, which can precede the
/// injection of a planned failover by nothing), times since the fault.
pub async fn proxy_switches(admin: &str, fault_unix_ms: f64) -> anyhow::Result<Vec<ProxySwitch>> {
    let body = http_get(admin, "/api/status").await?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    // `{"status": {"failovers": [...]}, ...}`
    let list = v["status"]["failovers"]
        .as_array()
        .or(v["failovers"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<ProxySwitch> = list
        .iter()
        .filter_map(|f| {
            let at = f["at_unix_ms"].as_f64()?;
            (at + 1000.0 >= fault_unix_ms).then(|| ProxySwitch {
                adopted_after_ms: f["adopted_ms"].as_f64().map(|a| at + a - fault_unix_ms),
                started_after_ms: at - fault_unix_ms,
                trigger: f["trigger"].as_str().unwrap_or("").to_string(),
                new_master: f["new_master"].as_str().map(str::to_string),
                outcome: f["outcome"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.started_after_ms.total_cmp(&b.started_after_ms));
    Ok(out)
}
