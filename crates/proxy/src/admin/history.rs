//! The dashboard's history: once a second the admin side samples the
//! metrics (never the data path: it only reads the counters and latency
//! histograms) into a ring of [`CAPACITY`] samples, 15 minutes, served as
//! `/api/history`.

use crate::data::ErrorKind;
use crate::metrics::{LatencySnapshot, Metrics};
use crate::route::Endpoint;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Samples kept: 15 minutes at one a second.
pub const CAPACITY: usize = 900;
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// One second of the proxy, per endpoint where it applies. Rates are per
/// second over the interval since the previous sample; latencies are of the
/// replies written in that interval (none without traffic).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Sample {
    /// Unix time, ms.
    pub t: u64,
    pub write_ops: f64,
    pub read_ops: f64,
    pub write_p50_ms: Option<f64>,
    pub write_p99_ms: Option<f64>,
    pub read_p50_ms: Option<f64>,
    pub read_p99_ms: Option<f64>,
    /// Errors the proxy returned, per second, by kind (both endpoints; kinds
    /// with none are left out).
    pub errors: BTreeMap<&'static str, f64>,
    /// Commands that had to wait for a master, per second.
    pub held: f64,
    pub write_clients: i64,
    pub read_clients: i64,
    pub master_known: bool,
}

/// Counter values at one moment.
struct Reading {
    at: Instant,
    commands: [u64; 2],
    latency: [LatencySnapshot; 2],
    errors: [u64; ErrorKind::ALL.len()],
    held: u64,
}

const EPS: [Endpoint; 2] = [Endpoint::write, Endpoint::read];

fn read(m: &Metrics) -> Reading {
    Reading {
        at: Instant::now(),
        commands: EPS.map(|e| m.ep(e).commands.get()),
        latency: EPS.map(|e| m.ep(e).latency.snapshot()),
        errors: ErrorKind::ALL.map(|k| EPS.iter().map(|&e| m.ep(e).error(k).get()).sum()),
        held: EPS.iter().map(|&e| m.ep(e).held.get()).sum(),
    }
}

/// Turns metric readings into [`Sample`]s.
pub struct Sampler {
    metrics: Arc<Metrics>,
    prev: Reading,
}

fn ms(d: Option<std::time::Duration>) -> Option<f64> {
    // Rounded to µs: enough on a chart, shorter JSON.
    d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

impl Sampler {
    pub fn new(metrics: Arc<Metrics>) -> Sampler {
        let prev = read(&metrics);
        Sampler { metrics, prev }
    }

    /// The sample of the time since the last call (or since `new`).
    pub fn sample(&mut self, t_unix_ms: u64) -> Sample {
        let m = &self.metrics;
        let now = read(m);
        let secs = now.at.duration_since(self.prev.at).as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| ((a.saturating_sub(b)) as f64 / secs * 10.0).round() / 10.0;
        let lat = [0, 1].map(|i| now.latency[i].since(&self.prev.latency[i]));
        let mut errors = BTreeMap::new();
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            let r = rate(now.errors[i], self.prev.errors[i]);
            if r > 0.0 {
                errors.insert(k.label(), r);
            }
        }
        let s = Sample {
            t: t_unix_ms,
            write_ops: rate(now.commands[0], self.prev.commands[0]),
            read_ops: rate(now.commands[1], self.prev.commands[1]),
            write_p50_ms: ms(lat[0].quantile(0.5)),
            write_p99_ms: ms(lat[0].quantile(0.99)),
            read_p50_ms: ms(lat[1].quantile(0.5)),
            read_p99_ms: ms(lat[1].quantile(0.99)),
            errors,
            held: rate(now.held, self.prev.held),
            write_clients: m.ep(Endpoint::write).client_connections.get(),
            read_clients: m.ep(Endpoint::read).client_connections.get(),
            master_known: m.master_known.get() == 1,
        };
        self.prev = now;
        s
    }
}

/// The last [`CAPACITY`] samples, oldest first.
#[derive(Default)]
pub struct History(Mutex<VecDeque<Sample>>);

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, s: Sample) {
        let mut h = self.lock();
        if h.len() == CAPACITY {
            h.pop_front();
        }
        h.push_back(s);
    }

    pub fn latest(&self) -> Option<Sample> {
        self.lock().back().cloned()
    }

    /// Samples taken after `t` (unix ms); all of them for 0.
    pub fn since(&self, t: u64) -> Vec<Sample> {
        self.lock().iter().filter(|s| s.t > t).cloned().collect()
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Samples every [`INTERVAL`] into `history` until aborted.
pub async fn run(metrics: Arc<Metrics>, history: Arc<History>) {
    let mut sampler = Sampler::new(metrics);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        history.push(sampler.sample(unix_ms()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ring_keeps_the_last_15_minutes() {
        let h = History::default();
        for t in 1..=1000 {
            h.push(Sample {
                t,
                ..Sample::default()
            });
        }
        let all = h.since(0);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].t, 101);
        assert_eq!(h.latest().unwrap().t, 1000);
        assert_eq!(h.since(990).len(), 10);
    }

    #[test]
    fn samples_rates_latency_and_errors() {
        let m = Arc::new(Metrics::new());
        let mut s = Sampler::new(m.clone());
        let w = m.ep(Endpoint::write);
        w.commands.inc_by(100);
        for _ in 0..99 {
            w.latency.observe(Duration::from_micros(300), 1);
        }
        w.latency.observe(Duration::from_millis(40), 1);
        w.error(ErrorKind::HoldTimeout).inc_by(3);
        m.ep(Endpoint::read).held.inc();
        std::thread::sleep(Duration::from_millis(100));
        let x = s.sample(42);
        assert_eq!(x.t, 42);
        // 100 commands in a bit over 0.1 s.
        assert!(x.write_ops > 500.0 && x.write_ops <= 1000.0, "{x:?}");
        assert_eq!(x.read_ops, 0.0);
        let p50 = x.write_p50_ms.unwrap();
        assert!((0.25..=0.5).contains(&p50), "{x:?}");
        assert!(x.write_p99_ms.unwrap() >= p50);
        assert_eq!(x.read_p50_ms, None);
        assert!(
            x.errors["hold_timeout"] > 0.0 && x.errors.len() == 1,
            "{x:?}"
        );
        assert!(x.held > 0.0);
        // Nothing new: zero rates, no latency.
        let y = s.sample(43);
        assert_eq!((y.write_ops, y.write_p50_ms, y.held), (0.0, None, 0.0));
        assert!(y.errors.is_empty());
    }
}
