//! The results of a run: memtier's ALL STATS table for people, memtier-style
//! JSON (plus timeline, errors and outages) for machines.

use crate::stats::{ErrorKind, Outage, Second, TypeStats, KINDS};
use crate::worker::Totals;
use crate::workload::Workload;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub struct Report {
    /// (label, stats) per request type, in ratio order.
    pub types: Vec<(String, TypeStats)>,
    pub totals: TypeStats,
    pub duration: Duration,
    pub sent: u64,
    pub replies: u64,
    pub unanswered: u64,
    pub reconnects: u64,
    pub errors: [u64; KINDS],
    pub timeline: Vec<Second>,
    pub outages: Vec<Outage>,
    /// A few of the error messages seen.
    pub samples: Vec<String>,
    pub connections: usize,
    /// Percentiles to show, e.g. [50, 99, 99.9].
    pub percentiles: Vec<f64>,
    /// What was run (flags), echoed into the JSON.
    pub config: Value,
}

impl Report {
    pub fn new(
        w: &Workload,
        t: Totals,
        duration: Duration,
        timeline: Vec<Second>,
        outages: Vec<Outage>,
        samples: Vec<String>,
        connections: usize,
    ) -> Report {
        let mut totals = TypeStats::new();
        for s in &t.types {
            totals.merge(s);
        }
        Report {
            types: w
                .templates
                .iter()
                .map(|x| x.label.clone())
                .zip(t.types)
                .collect(),
            totals,
            duration,
            sent: t.sent,
            replies: t.replies,
            unanswered: t.unanswered,
            reconnects: t.reconnects,
            errors: t.errors,
            timeline,
            outages,
            samples,
            connections,
            percentiles: vec![50.0, 99.0, 99.9],
            config: Value::Null,
        }
    }

    pub fn secs(&self) -> f64 {
        self.duration.as_secs_f64().max(1e-9)
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.totals.ops as f64 / self.secs()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    fn ms(us: u64) -> f64 {
        us as f64 / 1000.0
    }

    fn type_json(&self, s: &TypeStats) -> Value {
        let secs = self.secs();
        let mut pct = Map::new();
        for p in &self.percentiles {
            pct.insert(
                format!("p{p:.2}"),
                json!(Self::ms(s.hist.value_at_quantile(p / 100.0))),
            );
        }
        let empty = s.hist.is_empty();
        json!({
            "Count": s.ops,
            "Ops/sec": s.ops as f64 / secs,
            "Hits/sec": s.hits as f64 / secs,
            "Misses/sec": s.misses as f64 / secs,
            "Errors": s.errors,
            "Average Latency": if empty { 0.0 } else { s.hist.mean() / 1000.0 },
            "Min Latency": if empty { 0.0 } else { Self::ms(s.hist.min()) },
            "Max Latency": Self::ms(s.hist.max()),
            "KB/sec": s.bytes as f64 / 1024.0 / secs,
            "Percentile Latencies": pct,
        })
    }

    /// memtier's JSON layout ("ALL STATS" → type → "Ops/sec"...), with the
    /// timeline, errors by kind and outage windows added.
    pub fn to_json(&self) -> Value {
        let mut all = Map::new();
        for (label, s) in &self.types {
            all.insert(label.clone(), self.type_json(s));
        }
        all.insert("Totals".into(), self.type_json(&self.totals));
        all.insert(
            "Runtime".into(),
            json!({ "Total duration": self.duration.as_millis() as u64 }),
        );
        let errors: Map<String, Value> = ErrorKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), json!(self.errors[*k as usize])))
            .collect();
        let timeline: Vec<Value> = self
            .timeline
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let errs: Map<String, Value> = ErrorKind::ALL
                    .iter()
                    .filter(|k| s.errors[**k as usize] > 0)
                    .map(|k| (k.name().to_string(), json!(s.errors[*k as usize])))
                    .collect();
                json!({
                    "second": i,
                    "ops": s.ops,
                    "errors": errs,
                    "p50_ms": if s.hist.is_empty() { Value::Null } else { json!(Self::ms(s.hist.value_at_quantile(0.5))) },
                    "p99_ms": if s.hist.is_empty() { Value::Null } else { json!(Self::ms(s.hist.value_at_quantile(0.99))) },
                })
            })
            .collect();
        json!({
            "Configuration": self.config,
            "ALL STATS": all,
            "Requests": {
                "sent": self.sent,
                "replies": self.replies,
                "unanswered": self.unanswered,
                "reconnects": self.reconnects,
                "connections": self.connections,
            },
            "Errors": errors,
            "Error samples": self.samples,
            "Outages": self.outages,
            "Timeline": timeline,
        })
    }

    /// memtier's ALL STATS table, then errors and outages if any.
    pub fn render(&self) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        let mut head = vec![
            "Type".to_string(),
            "Ops/sec".into(),
            "Hits/sec".into(),
            "Misses/sec".into(),
            "Avg. Latency".into(),
        ];
        for p in &self.percentiles {
            head.push(format!("p{p} Latency"));
        }
        head.push("KB/sec".into());
        t.set_header(head);
        let secs = self.secs();
        let rows = self
            .types
            .iter()
            .map(|(l, s)| (l.as_str(), s))
            .chain(std::iter::once(("Totals", &self.totals)));
        for (label, s) in rows {
            let mut r = vec![
                label.to_string(),
                format!("{:.2}", s.ops as f64 / secs),
                format!("{:.2}", s.hits as f64 / secs),
                format!("{:.2}", s.misses as f64 / secs),
                format!(
                    "{:.3} ms",
                    if s.hist.is_empty() {
                        0.0
                    } else {
                        s.hist.mean() / 1000.0
                    }
                ),
            ];
            for p in &self.percentiles {
                r.push(format!(
                    "{:.3} ms",
                    Self::ms(s.hist.value_at_quantile(p / 100.0))
                ));
            }
            r.push(format!("{:.2}", s.bytes as f64 / 1024.0 / secs));
            t.add_row(r);
        }
        for c in 1..t.column_count() {
            if let Some(col) = t.column_mut(c) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out = format!(
            "ALL STATS ({} connections, {:.1} s, {} requests, {} replies)\n{t}\n",
            self.connections,
            self.secs(),
            self.sent,
            self.replies
        );
        if self.error_count() > 0 {
            let kinds: Vec<String> = ErrorKind::ALL
                .iter()
                .filter(|k| self.errors[**k as usize] > 0)
                .map(|k| format!("{} {}", k.name(), self.errors[*k as usize]))
                .collect();
            out.push_str(&format!(
                "errors: {} ({}), {} requests unanswered, {} reconnects\n",
                self.error_count(),
                kinds.join(", "),
                self.unanswered,
                self.reconnects
            ));
            for s in &self.samples {
                out.push_str(&format!("  e.g. {s}\n"));
            }
        } else {
            out.push_str("errors: none\n");
        }
        if self.outages.is_empty() {
            out.push_str("outages: none\n");
        } else {
            out.push_str("outages:\n");
            for o in &self.outages {
                out.push_str(&format!(
                    "  at {:>7.3} s for {:>8.1} ms: {} errors{}\n",
                    o.start_s,
                    o.length_ms,
                    o.errors,
                    if o.kinds.is_empty() {
                        " (no replies at all)".to_string()
                    } else {
                        format!(" ({})", o.kinds.join(", "))
                    }
                ));
            }
        }
        out
    }
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("ops", &self.totals.ops)
            .field("sent", &self.sent)
            .field("replies", &self.replies)
            .field("errors", &self.errors)
            .field("outages", &self.outages)
            .finish_non_exhaustive()
    }
}
