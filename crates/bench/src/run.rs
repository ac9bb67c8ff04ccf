//! One benchmark run: a pre-flight check, `threads` × `clients` connections
//! on a runtime of `threads` worker threads, a progress display, and the
//! merged results.

use crate::report::Report;
use crate::stats::{ErrorKind, Shared, TypeStats, KINDS};
use crate::worker::{self, auth_args, open, tls_refusal, ConnConfig, OpenError, Totals};
use crate::workload::{Generator, Workload};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use redis_ha_resp::{ConnError, Frame};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub conn: ConnConfig,
    pub threads: usize,
    /// Connections per thread.
    pub clients: usize,
    /// Stop sending after this long (unless `conn.requests` ends it first).
    pub test_time: Option<Duration>,
    pub progress: bool,
    /// A gap without replies longer than this counts as an outage.
    pub stall: Duration,
    /// Shown in the progress display.
    pub title: String,
}

/// Runs the workload and returns the merged report.
pub async fn run(o: RunOptions, w: Arc<Workload>) -> anyhow::Result<Report> {
    if o.threads == 0 || o.clients == 0 {
        bail!("--threads and --clients must be at least 1");
    }
    if o.conn.pipeline == 0 {
        bail!("--pipeline must be at least 1");
    }
    if o.test_time.is_none() && o.conn.requests == 0 {
        bail!("give --test-time SECONDS or --requests N");
    }
    preflight(&o.conn).await?;
    let conns = o.threads * o.clients;
    let shared = Arc::new(Shared::new(o.stall));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads)
        .thread_name("bench")
        .enable_all()
        .build()
        .context("cannot start the benchmark threads")?;
    let mut tasks = Vec::with_capacity(conns);
    for id in 0..conns {
        let g = Generator::new(w.clone(), id, conns);
        tasks.push(rt.spawn(worker::run(
            id,
            o.conn.clone(),
            g,
            w.templates.len(),
            shared.clone(),
        )));
    }
    let bar = progress_bar(&o, conns);
    let deadline = o.test_time.map(|t| shared.start + t);
    let mut last = (Instant::now(), 0u64);
    let mut rate = 0.0;
    let all_done = async {
        let mut out = Vec::with_capacity(conns);
        for t in tasks {
            out.push(t.await);
        }
        out
    };
    tokio::pin!(all_done);
    let results = loop {
        tokio::select! {
            r = &mut all_done => break r,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: finishing the requests in flight");
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        let ops = shared.ops.load(Ordering::Relaxed);
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt >= 1.0 {
            rate = (ops - last.1) as f64 / dt;
            last = (now, ops);
        }
        let errors = shared.errors.load(Ordering::Relaxed);
        match o.test_time {
            Some(_) => bar.set_position(shared.start.elapsed().as_secs()),
            None => bar.set_position(ops + errors),
        }
        bar.set_message(format!("{rate:>9.0} ops/s  {errors} errors"));
    };
    let end = Instant::now();
    bar.finish_and_clear();
    // The runtime's threads are idle now; drop it off the async context.
    std::thread::spawn(move || drop(rt));
    if let Some(why) = shared.fatal.lock().unwrap().clone() {
        bail!("{why}");
    }
    let mut totals = Totals {
        types: (0..w.templates.len()).map(|_| TypeStats::new()).collect(),
        sent: 0,
        replies: 0,
        errors: [0; KINDS],
        unanswered: 0,
        reconnects: 0,
    };
    for r in results {
        let r = r.context("a benchmark connection crashed")?;
        for (a, b) in totals.types.iter_mut().zip(&r.types) {
            a.merge(b);
        }
        totals.sent += r.sent;
        totals.replies += r.replies;
        totals.unanswered += r.unanswered;
        totals.reconnects += r.reconnects;
        for (a, b) in totals.errors.iter_mut().zip(r.errors) {
            *a += b;
        }
    }
    let samples = shared.samples.lock().unwrap().clone();
    Ok(Report::new(
        &w,
        totals,
        end.duration_since(shared.start),
        shared.timeline(),
        shared.outages(end, Duration::from_millis(500)),
        samples,
        conns,
    ))
}

fn progress_bar(o: &RunOptions, conns: usize) -> ProgressBar {
    if !o.progress {
        return ProgressBar::hidden();
    }
    let (len, unit) = match o.test_time {
        Some(t) => (t.as_secs().max(1), "s"),
        None => ((conns as u64) * o.conn.requests, "req"),
    };
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    b.set_prefix(o.title.clone());
    b.enable_steady_tick(Duration::from_millis(250));
    b
}

/// Connects once and sends PING (after AUTH) so that a wrong address,
/// password or TLS setting is one clear error instead of a run full of
/// failures.
async fn preflight(c: &ConnConfig) -> anyhow::Result<()> {
    let hint = "check -s/--server and -p/--port (is the server running? `redis-ha status` shows the local topology)";
    let mut conn = open(c).await.map_err(|e| match e {
        OpenError::Connect(e) => anyhow::anyhow!("cannot reach {}: {e}; {hint}", c.addr),
        OpenError::Handshake(ErrorKind::Timeout, msg) => anyhow::anyhow!(
            "{msg}: is {} a TLS port (Redis: tls-port)? For a plain port drop --tls",
            c.addr
        ),
        OpenError::Handshake(_, msg) => anyhow::anyhow!("{msg}; {hint}"),
        OpenError::Tls(msg) => anyhow::anyhow!("{msg}"),
    })?;
    conn.timeout = Duration::from_secs(5);
    let fail = |e: ConnError| {
        if let Some(msg) = tls_refusal(c, &e) {
            return anyhow::anyhow!("{msg}");
        }
        match e {
            ConnError::Timeout(_) => anyhow::anyhow!(
                "{} accepted the connection but did not answer within 5 s: is it a Redis server?",
                c.addr
            ),
            ConnError::Protocol(p) => anyhow::anyhow!("{}: not a Redis server? ({p})", c.addr),
            // What a TLS port does to plain text.
            e @ (ConnError::Closed | ConnError::Io(_)) if c.tls.is_none() => anyhow::anyhow!(
                "{}: {e}; if it is a TLS port (Redis: tls-port), add --tls (and --cacert FILE)",
                c.addr
            ),
            e => anyhow::anyhow!("{}: {e}; {hint}", c.addr),
        }
    };
    let mut replies = Vec::new();
    if let Some(a) = &c.auth {
        replies.push(conn.request(&auth_args(a)).await.map_err(fail)?);
    }
    replies.push(conn.request(&["PING"]).await.map_err(fail)?);
    for r in replies {
        if let Frame::Error(e) = r {
            let msg = String::from_utf8_lossy(&e);
            if msg.starts_with("NOAUTH") || msg.starts_with("WRONGPASS") || msg.contains("AUTH") {
                bail!("{}: {msg}; give the password with -a/--authenticate PASSWORD (or USER:PASSWORD)", c.addr);
            }
            // LOADING, MASTERDOWN...: the run will count these; not fatal.
        }
    }
    Ok(())
}
