//! Measurements: per-connection totals merged at the end, a per-second
//! timeline merged once a second, errors by kind and outage windows.
//! Memory is bounded by the number of seconds, never by requests.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Latencies are recorded in microseconds, up to a minute.
const MAX_US: u64 = 60_000_000;

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connection refused, reset or closed: the request got no reply.
    Connection,
    /// No reply within the request timeout.
    Timeout,
    Readonly,
    Loading,
    Masterdown,
    Noreplicas,
    /// A proxy's "no master yet, try again".
    Tryagain,
    Other,
}

pub const KINDS: usize = 8;

impl ErrorKind {
    pub const ALL: [ErrorKind; KINDS] = [
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::Readonly,
        ErrorKind::Loading,
        ErrorKind::Masterdown,
        ErrorKind::Noreplicas,
        ErrorKind::Tryagain,
        ErrorKind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connection => "refused/reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Readonly => "READONLY",
            ErrorKind::Loading => "LOADING",
            ErrorKind::Masterdown => "MASTERDOWN",
            ErrorKind::Noreplicas => "NOREPLICAS",
            ErrorKind::Tryagain => "TRYAGAIN",
            ErrorKind::Other => "other",
        }
    }

    /// Classifies an error reply by its code (`-READONLY ...`).
    pub fn of_reply(msg: &[u8]) -> ErrorKind {
        let code = msg.split(|b| *b == b' ').next().unwrap_or_default();
        match code {
            b"READONLY" => ErrorKind::Readonly,
            b"LOADING" => ErrorKind::Loading,
            b"MASTERDOWN" => ErrorKind::Masterdown,
            b"NOREPLICAS" => ErrorKind::Noreplicas,
            b"TRYAGAIN" => ErrorKind::Tryagain,
            _ => ErrorKind::Other,
        }
    }
}

pub fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("static bounds")
}

/// Totals for one request type.
#[derive(Clone)]
pub struct TypeStats {
    pub ops: u64,
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

impl TypeStats {
    pub fn new() -> TypeStats {
        TypeStats {
            ops: 0,
            hits: 0,
            misses: 0,
            bytes: 0,
            errors: 0,
            hist: histogram(3),
        }
    }

    pub fn merge(&mut self, o: &TypeStats) {
        self.ops += o.ops;
        self.hits += o.hits;
        self.misses += o.misses;
        self.bytes += o.bytes;
        self.errors += o.errors;
        self.hist.add(&o.hist).expect("same bounds");
    }
}

impl Default for TypeStats {
    fn default() -> Self {
        TypeStats::new()
    }
}

/// One second of the run, all connections together.
#[derive(Clone)]
pub struct Second {
    pub ops: u64,
    pub errors: [u64; KINDS],
    pub hist: Histogram<u64>,
}

impl Second {
    pub fn new() -> Second {
        Second {
            ops: 0,
            errors: [0; KINDS],
            hist: histogram(2),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops == 0 && self.errors.iter().all(|e| *e == 0)
    }

    fn merge(&mut self, o: &Second) {
        self.ops += o.ops;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        self.hist.add(&o.hist).expect("same bounds");
    }
}

impl Default for Second {
    fn default() -> Self {
        Second::new()
    }
}

/// A span with errors or without any reply.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Outage {
    /// Seconds from the start of the run.
    pub start_s: f64,
    pub length_ms: f64,
    pub errors: u64,
    /// Error kinds seen in the window.
    pub kinds: Vec<&'static str>,
}

struct OpenOutage {
    start_us: u64,
    last_error_us: u64,
    errors: u64,
    kinds: [bool; KINDS],
}

/// State shared by all connections of a run.
pub struct Shared {
    pub start: Instant,
    /// Set when the run should stop sending.
    pub stop: AtomicBool,
    /// For the progress display.
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    timeline: Mutex<Vec<Second>>,
    open: Mutex<Option<OpenOutage>>,
    outage_open: AtomicBool,
    closed: Mutex<Vec<Outage>>,
    last_ok_us: AtomicU64,
    /// A few distinct error messages, for the report.
    pub samples: Mutex<Vec<String>>,
    /// An error that ends the run (e.g. authentication refused).
    pub fatal: Mutex<Option<String>>,
    /// A gap without any reply longer than this is an outage too.
    stall: Duration,
}

impl Shared {
    pub fn new(stall: Duration) -> Shared {
        Shared {
            start: Instant::now(),
            stop: AtomicBool::new(false),
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeline: Mutex::new(Vec::new()),
            open: Mutex::new(None),
            outage_open: AtomicBool::new(false),
            closed: Mutex::new(Vec::new()),
            last_ok_us: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            fatal: Mutex::new(None),
            stall,
        }
    }

    pub fn us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_micros() as u64
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn fail(&self, why: String) {
        self.fatal.lock().unwrap().get_or_insert(why);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Called once per batch of successful replies.
    pub fn ok_at(&self, t: Instant, n: u64) {
        self.ops.fetch_add(n, Ordering::Relaxed);
        let now = self.us(t);
        let prev = self.last_ok_us.fetch_max(now, Ordering::Relaxed);
        if prev > 0 && now > prev && now - prev > self.stall.as_micros() as u64 {
            self.closed.lock().unwrap().push(Outage {
                start_s: prev as f64 / 1e6,
                length_ms: (now - prev) as f64 / 1e3,
                errors: 0,
                kinds: Vec::new(),
            });
        }
        if self.outage_open.load(Ordering::Relaxed) {
            let mut open = self.open.lock().unwrap();
            if let Some(o) = open.as_ref() {
                if now > o.last_error_us {
                    let o = open.take().expect("checked");
                    self.outage_open.store(false, Ordering::Relaxed);
                    self.close(o, now);
                }
            }
        }
    }

    pub fn error_at(&self, t: Instant, kind: ErrorKind, n: u64, msg: Option<&[u8]>) {
        self.errors.fetch_add(n, Ordering::Relaxed);
        let now = self.us(t);
        let mut open = self.open.lock().unwrap();
        let o = open.get_or_insert_with(|| OpenOutage {
            start_us: now,
            last_error_us: now,
            errors: 0,
            kinds: [false; KINDS],
        });
        o.last_error_us = o.last_error_us.max(now);
        o.errors += n;
        o.kinds[kind as usize] = true;
        self.outage_open.store(true, Ordering::Relaxed);
        drop(open);
        let mut s = self.samples.lock().unwrap();
        if s.len() < 5 {
            let text = match msg {
                Some(m) => String::from_utf8_lossy(m).into_owned(),
                None => kind.name().to_string(),
            };
            if !s.contains(&text) {
                s.push(text);
            }
        }
    }

    fn close(&self, o: OpenOutage, end_us: u64) {
        self.closed.lock().unwrap().push(Outage {
            start_s: o.start_us as f64 / 1e6,
            length_ms: (end_us.max(o.last_error_us) - o.start_us) as f64 / 1e3,
            errors: o.errors,
            kinds: ErrorKind::ALL
                .iter()
                .filter(|k| o.kinds[**k as usize])
                .map(|k| k.name())
                .collect(),
        });
    }

    /// Adds a connection's finished second to the timeline.
    pub fn flush_second(&self, sec: usize, s: &Second) {
        let mut tl = self.timeline.lock().unwrap();
        if tl.len() <= sec {
            tl.resize_with(sec + 1, Second::new);
        }
        tl[sec].merge(s);
    }

    pub fn timeline(&self) -> Vec<Second> {
        self.timeline.lock().unwrap().clone()
    }

    /// The outage windows, merged when less than `merge` apart. An outage
    /// still open at the end lasts until `end`.
    pub fn outages(&self, end: Instant, merge: Duration) -> Vec<Outage> {
        if let Some(o) = self.open.lock().unwrap().take() {
            self.close(o, self.us(end));
        }
        let mut all = self.closed.lock().unwrap().clone();
        all.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        let mut out: Vec<Outage> = Vec::new();
        for o in all {
            if let Some(last) = out.last_mut() {
                let last_end = last.start_s + last.length_ms / 1e3;
                if o.start_s <= last_end + merge.as_secs_f64() {
                    let end = (o.start_s + o.length_ms / 1e3).max(last_end);
                    last.length_ms = (end - last.start_s) * 1e3;
                    last.errors += o.errors;
                    for k in o.kinds {
                        if !last.kinds.contains(&k) {
                            last.kinds.push(k);
                        }
                    }
                    continue;
                }
            }
            out.push(o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_error_replies() {
        assert_eq!(
            ErrorKind::of_reply(b"READONLY You can't write against a read only replica."),
            ErrorKind::Readonly
        );
        assert_eq!(
            ErrorKind::of_reply(b"LOADING Redis is loading"),
            ErrorKind::Loading
        );
        assert_eq!(
            ErrorKind::of_reply(b"ERR unknown command"),
            ErrorKind::Other
        );
    }

    #[test]
    fn outage_windows_open_on_error_and_close_on_success() {
        let s = Shared::new(Duration::from_secs(1));
        let t0 = s.start;
        let at = |ms| t0 + Duration::from_millis(ms);
        s.ok_at(at(100), 1);
        s.error_at(at(200), ErrorKind::Connection, 3, None);
        s.error_at(at(250), ErrorKind::Readonly, 1, Some(b"READONLY x"));
        s.ok_at(at(400), 1);
        s.ok_at(at(1000), 1);
        // A stall: no reply at all for 2 s.
        s.ok_at(at(3000), 1);
        let o = s.outages(at(3500), Duration::from_millis(100));
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(o[0].errors, 4);
        assert!((o[0].length_ms - 200.0).abs() < 1.0);
        assert_eq!(o[0].kinds, vec!["refused/reset", "READONLY"]);
        assert!((o[1].start_s - 1.0).abs() < 1e-6);
        assert!((o[1].length_ms - 2000.0).abs() < 1.0);
    }
}
