//! The drill itself: writers, fault, promotion watcher, verification.

use anyhow::{anyhow, bail, Context};
use redis_ha_local::Topology;
use redis_ha_resp::{ConnError, Connection, Frame};
use redis_ha_topology::info::Role;
use redis_ha_topology::{role, sentinel, Addr};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL the master process (a crash).
    Kill,
    /// SIGSTOP the master (a hang); it is resumed at the end.
    Stop,
    /// `SENTINEL FAILOVER`: a planned switch.
    Failover,
}

#[derive(Clone, Debug)]
pub struct DrillConfig {
    /// Where the writers connect (the proxy, HAProxy, or a node).
    pub target: Addr,
    /// Local topology (needed for kill/stop and to restore afterwards).
    pub state_dir: Option<PathBuf>,
    pub sentinels: Vec<Addr>,
    pub master_name: String,
    /// Password of the Redis nodes (writers log in with it too).
    pub password: Option<String>,
    /// The sentinels' own password, if they have one.
    pub sentinel_password: Option<String>,
    pub fault: Fault,
    pub writers: usize,
    /// Steady writing before the fault.
    pub before: Duration,
    /// Steady writing after writes resume.
    pub after: Duration,
    /// Give up waiting for writes to resume after this long.
    pub max_wait: Duration,
    /// Per-request client timeout (should exceed the proxy's failover hold).
    pub request_timeout: Duration,
    /// Restart a killed node / resume a stopped one when done.
    pub restore: bool,
    pub progress: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub target: Addr,
    pub fault: Fault,
    pub old_master: Addr,
    pub new_master: Option<Addr>,
    pub writers: usize,
    pub writes_acked: u64,
    /// Requests that got an error or no answer (their effect is unknown).
    pub writes_failed: u64,
    /// Errors seen by the clients, by kind (`READONLY`, `timeout`, `io`...).
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged writes missing on the new master afterwards.
    pub lost_writes: u64,
    pub lost_examples: Vec<String>,
    /// Milliseconds from the fault to a replica reporting `role:master`.
    pub promoted_after_ms: Option<f64>,
    /// Milliseconds from the fault to the first `+switch-master` event.
    pub switch_master_after_ms: Option<f64>,
    /// Milliseconds from the promotion to the first write acknowledged
    /// through the target (the proxy's own reaction lag).
    pub first_ack_after_promotion_ms: Option<f64>,
    /// Longest gap between acknowledged writes (any writer).
    pub write_outage_ms: f64,
    /// Errors seen during that outage window.
    pub errors_in_outage: u64,
    pub duration_s: f64,
}

#[derive(Default)]
struct WriterLog {
    acked: Vec<u64>,
    /// ms since start, per ack.
    ack_ms: Vec<f64>,
    errors: BTreeMap<String, u64>,
    error_ms: Vec<f64>,
}

/// An error reply's kind: its first word, or `unknown_outcome` when the
/// proxy says it could not know whether the write ran (its connection to
/// the master was lost after sending it), rather than sending it twice.
fn reply_kind(msg: &str) -> String {
    if msg.contains("unknown outcome") {
        return "unknown_outcome".into();
    }
    msg.split_whitespace().next().unwrap_or("ERR").to_string()
}

fn error_kind(e: &ConnError) -> String {
    match e {
        ConnError::Timeout(_) => "timeout".into(),
        ConnError::Connect { .. } => "connect".into(),
        ConnError::Closed => "closed".into(),
        ConnError::Io(io) => format!("io:{:?}", io.kind()),
        ConnError::Protocol(_) => "protocol".into(),
        ConnError::Server(s) => reply_kind(s),
    }
}

async fn writer(
    id: usize,
    cfg: Arc<DrillConfig>,
    prefix: Arc<str>,
    start: Instant,
    stop: Arc<AtomicBool>,
    last_ack_us: Arc<AtomicU64>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut conn: Option<Connection> = None;
    let mut seq = 0u64;
    let ms = |t: Instant| t.duration_since(start).as_secs_f64() * 1000.0;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Connection::connect_auth(
                &cfg.target,
                cfg.password.as_deref(),
                Duration::from_secs(1),
            )
            .await
            {
                Ok(mut c) => {
                    c.timeout = cfg.request_timeout;
                    conn.insert(c)
                }
                Err(e) => {
                    *log.errors.entry(error_kind(&e)).or_default() += 1;
                    log.error_ms.push(ms(Instant::now()));
                    // Back off a little so a dead endpoint is not hammered.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        seq += 1;
        let key = format!("{prefix}:{id}:{seq}");
        let val = seq.to_string();
        match c.request(&["SET", key.as_str(), val.as_str()]).await {
            Ok(Frame::Simple(s)) if &s[..] == b"OK" => {
                let now = Instant::now();
                log.acked.push(seq);
                log.ack_ms.push(ms(now));
                last_ack_us.fetch_max(
                    now.duration_since(start).as_micros() as u64,
                    Ordering::Relaxed,
                );
            }
            Ok(other) => {
                let kind = other
                    .error_message()
                    .map(|m| reply_kind(&m))
                    .unwrap_or_else(|| "unexpected-reply".into());
                *log.errors.entry(kind).or_default() += 1;
                log.error_ms.push(ms(Instant::now()));
            }
            Err(e) => {
                *log.errors.entry(error_kind(&e)).or_default() += 1;
                log.error_ms.push(ms(Instant::now()));
                conn = None;
            }
        }
    }
    log
}

/// Polls ROLE on `nodes` every few ms; returns the first that is master.
async fn watch_promotion(
    nodes: Vec<Addr>,
    password: Option<String>,
    start: Instant,
    deadline: Instant,
) -> Option<(Addr, f64)> {
    let mut conns: Vec<(Addr, Option<Connection>)> = nodes.into_iter().map(|a| (a, None)).collect();
    while Instant::now() < deadline {
        for (a, c) in conns.iter_mut() {
            if c.is_none() {
                *c = Connection::connect_auth(a, password.as_deref(), Duration::from_millis(200))
                    .await
                    .ok();
            }
            let Some(conn) = c.as_mut() else { continue };
            conn.timeout = Duration::from_millis(200);
            match conn.request(&["ROLE"]).await {
                Ok(f) => {
                    if let Some(Role::Master { .. }) = Role::from_frame(&f) {
                        return Some((a.clone(), start.elapsed().as_secs_f64() * 1000.0));
                    }
                }
                Err(_) => *c = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// Waits for the first `+switch-master` from any sentinel.
async fn watch_switch(sentinels: Vec<Addr>, pw: Option<String>, start: Instant) -> Option<f64> {
    let mut subs: Vec<_> = sentinels
        .into_iter()
        .map(|s| {
            let pw = pw.clone();
            Box::pin(async move {
                let mut c = Connection::connect_auth(&s, pw.as_deref(), Duration::from_secs(1))
                    .await
                    .ok()?;
                c.send(&["SUBSCRIBE", "+switch-master"]).await.ok()?;
                loop {
                    let f = c.read_frame().await.ok()?;
                    let kind = f
                        .as_array()
                        .and_then(|v| v.first())
                        .and_then(|k| k.as_text());
                    if kind.as_deref() == Some("message") {
                        return Some(start.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            })
        })
        .collect();
    while !subs.is_empty() {
        let (out, _, rest) = futures::future::select_all(subs).await;
        if out.is_some() {
            return out;
        }
        subs = rest;
    }
    None
}

pub async fn run_drill(cfg: DrillConfig) -> anyhow::Result<DrillReport> {
    anyhow::ensure!(cfg.writers >= 1, "--writers must be at least 1");
    let topo = match &cfg.state_dir {
        Some(d) => Some(Topology::open(d)?),
        None => None,
    };
    if cfg.fault != Fault::Failover && topo.is_none() {
        bail!("--fault {:?} needs a local topology (--state-dir); with only --sentinel use --fault failover", cfg.fault);
    }
    let timeout = Duration::from_secs(1);
    let spw = cfg.sentinel_password.as_deref();
    let views = role::ask(&cfg.sentinels, spw, &cfg.master_name, timeout).await;
    let old_master = views.agreement.most_named().cloned().ok_or_else(|| {
        anyhow!(
            "no sentinel of {:?} knows master {:?}: is the topology up?",
            cfg.sentinels,
            cfg.master_name
        )
    })?;
    let mut nodes: Vec<Addr> = match &topo {
        Some(t) => t.redis_addrs(),
        None => {
            let reps =
                sentinel::replicas(&cfg.sentinels[0], spw, &cfg.master_name, timeout).await?;
            reps.iter().filter_map(sentinel::entry_addr).collect()
        }
    };
    nodes.retain(|a| *a != old_master);
    // Fail fast on a dead target instead of reporting a drill of nothing.
    let mut probe =
        Connection::connect_auth(&cfg.target, cfg.password.as_deref(), Duration::from_secs(2))
            .await
            .with_context(|| format!("cannot reach the drill target {}", cfg.target))?;
    probe
        .request_ok(&["PING"])
        .await
        .with_context(|| format!("target {} does not answer PING", cfg.target))?;

    let bar = redis_ha_local::cli::spinner(cfg.progress);
    let cfg = Arc::new(cfg);
    let spw = cfg.sentinel_password.as_deref();
    let start = Instant::now();
    let prefix: Arc<str> = format!(
        "drill:{}",
        std::process::id() as u64 * 1000 + start.elapsed().subsec_millis() as u64
    )
    .into();
    let stop = Arc::new(AtomicBool::new(false));
    let last_ack_us = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..cfg.writers)
        .map(|i| {
            tokio::spawn(writer(
                i,
                cfg.clone(),
                prefix.clone(),
                start,
                stop.clone(),
                last_ack_us.clone(),
            ))
        })
        .collect();
    bar.set_message(format!(
        "writing through {} with {} connections",
        cfg.target, cfg.writers
    ));
    tokio::time::sleep(cfg.before).await;

    let fault_at = start.elapsed().as_secs_f64() * 1000.0;
    let watch_deadline = Instant::now() + cfg.max_wait;
    let promo = tokio::spawn(watch_promotion(
        nodes,
        cfg.password.clone(),
        start,
        watch_deadline,
    ));
    let mut switch = tokio::spawn(watch_switch(
        cfg.sentinels.clone(),
        cfg.sentinel_password.clone(),
        start,
    ));
    let old_name = topo.as_ref().and_then(|t| t.name_of(&old_master));
    bar.set_message(format!("{:?} on master {old_master}", cfg.fault));
    match cfg.fault {
        Fault::Kill => topo.as_ref().expect("checked").kill(
            old_name
                .as_deref()
                .ok_or_else(|| anyhow!("{old_master} is not a node of this topology"))?,
        )?,
        Fault::Stop => topo.as_ref().expect("checked").stop(
            old_name
                .as_deref()
                .ok_or_else(|| anyhow!("{old_master} is not a node of this topology"))?,
        )?,
        Fault::Failover => {
            let f = redis_ha_resp::conn::query_auth(
                &cfg.sentinels[0],
                spw,
                &["SENTINEL", "FAILOVER", &cfg.master_name],
                timeout,
            )
            .await?;
            if let Some(e) = f.error_message() {
                bail!("SENTINEL FAILOVER refused: {e}");
            }
        }
    }
    bar.set_message("waiting for a new master");
    let promoted = promo.await?;
    let promoted_ms = promoted.as_ref().map(|p| p.1);
    // Writes must resume after the promotion; then keep writing a while.
    bar.set_message("waiting for writes to resume");
    let resume_deadline = Instant::now() + cfg.max_wait;
    if let Some(p) = promoted_ms {
        while (last_ack_us.load(Ordering::Relaxed) as f64 / 1000.0) < p
            && Instant::now() < resume_deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    bar.set_message("writing after the failover");
    tokio::time::sleep(cfg.after).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await?);
    }
    let duration_s = start.elapsed().as_secs_f64();

    // Verify against the master the sentinels agree on. A node can be
    // promoted (and serve writes) well before the sentinels publish the
    // switch: wait for it, or the check would read the demoted old master.
    let agreed = || async {
        let views = role::ask(&cfg.sentinels, spw, &cfg.master_name, timeout).await;
        views.agreement.most_named().cloned()
    };
    let mut new_master = agreed().await;
    if promoted.is_some() {
        bar.set_message("waiting for the sentinels to agree on the new master");
        let deadline = Instant::now() + cfg.max_wait;
        while new_master.as_deref() == Some(old_master.as_str()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            new_master = agreed().await;
        }
    }
    // The switch watcher has seen the event by now if there was one.
    let switch_ms = match tokio::time::timeout(Duration::from_millis(200), &mut switch).await {
        Ok(Ok(v)) => v,
        _ => None,
    };
    switch.abort();
    bar.set_message("verifying acknowledged writes");
    let verify_on = new_master.clone().unwrap_or_else(|| old_master.clone());
    let pw = cfg.password.as_deref();
    let (lost, examples) = verify(&verify_on, pw, &prefix, &logs).await?;

    if cfg.restore {
        if let (Some(t), Some(name)) = (&topo, &old_name) {
            bar.set_message(format!("restoring {name}"));
            match cfg.fault {
                Fault::Kill => t.restart(name).await?,
                Fault::Stop => t.cont(name)?,
                Fault::Failover => {}
            }
        }
    }
    bar.finish_and_clear();

    let mut errors = BTreeMap::new();
    let mut acks: Vec<f64> = Vec::new();
    let mut err_ms: Vec<f64> = Vec::new();
    for l in &logs {
        for (k, v) in &l.errors {
            *errors.entry(k.clone()).or_insert(0) += v;
        }
        acks.extend(&l.ack_ms);
        err_ms.extend(&l.error_ms);
    }
    acks.sort_by(f64::total_cmp);
    let (mut gap, mut gap_start, mut gap_end) = (0.0, 0.0, 0.0);
    for w in acks.windows(2) {
        if w[1] - w[0] > gap {
            (gap, gap_start, gap_end) = (w[1] - w[0], w[0], w[1]);
        }
    }
    let first_after = promoted_ms.and_then(|p| acks.iter().find(|a| **a > p).map(|a| a - p));
    Ok(DrillReport {
        target: cfg.target.clone(),
        fault: cfg.fault,
        old_master,
        new_master,
        writers: cfg.writers,
        writes_acked: acks.len() as u64,
        writes_failed: errors.values().sum(),
        errors_in_outage: err_ms
            .iter()
            .filter(|t| **t >= gap_start && **t <= gap_end)
            .count() as u64,
        errors,
        lost_writes: lost,
        lost_examples: examples,
        promoted_after_ms: promoted_ms.map(|p| p - fault_at),
        switch_master_after_ms: switch_ms.map(|s| s - fault_at),
        first_ack_after_promotion_ms: first_after,
        write_outage_ms: gap,
        duration_s,
    })
}

/// Reads back every acknowledged key (pipelined GETs) on `master`.
async fn verify(
    master: &str,
    password: Option<&str>,
    prefix: &str,
    logs: &[WriterLog],
) -> anyhow::Result<(u64, Vec<String>)> {
    let mut c = Connection::connect_auth(master, password, Duration::from_secs(2))
        .await
        .with_context(|| format!("cannot verify on {master}"))?;
    c.timeout = Duration::from_secs(10);
    let mut lost = 0u64;
    let mut examples = Vec::new();
    for (id, log) in logs.iter().enumerate() {
        for chunk in log.acked.chunks(500) {
            for seq in chunk {
                c.send(&["GET".to_string(), format!("{prefix}:{id}:{seq}")])
                    .await?;
            }
            for seq in chunk {
                let f = tokio::time::timeout(Duration::from_secs(10), c.read_frame())
                    .await
                    .map_err(|_| anyhow!("verification timed out on {master}"))??;
                if f.as_bytes().map(|b| &b[..]) != Some(seq.to_string().as_bytes()) {
                    lost += 1;
                    if examples.len() < 5 {
                        examples.push(format!("{prefix}:{id}:{seq}"));
                    }
                }
            }
        }
    }
    Ok((lost, examples))
}
