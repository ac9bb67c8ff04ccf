//! The request-latency histogram: fixed buckets of atomic counters, so the
//! data path pays a few comparisons and two relaxed adds per group of
//! replies (no lock, unlike `prometheus_client`'s histogram), and the
//! dashboard can take quantiles between two snapshots.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds in nanoseconds (1-2.5-5 steps, 25 µs to 10 s); one more
/// bucket, +Inf, follows.
const BOUNDS_NS: [u64; 19] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    u64::MAX,
];

/// Shared by its clones (one per endpoint, registered once).
#[derive(Clone, Debug, Default)]
pub struct Latency(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    counts: [AtomicU64; BOUNDS_NS.len()],
    sum_ns: AtomicU64,
}

/// The counts at one moment; two of them give the latency in between.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    counts: [u64; BOUNDS_NS.len()],
    sum_ns: u64,
}

impl Latency {
    /// `n` requests that each took `d`.
    pub fn observe(&self, d: Duration, n: u64) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.partition_point(|&b| b < ns);
        self.0.counts[i].fetch_add(n, Relaxed);
        self.0.sum_ns.fetch_add(ns.saturating_mul(n), Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self.0.counts.each_ref().map(|c| c.load(Relaxed)),
            sum_ns: self.0.sum_ns.load(Relaxed),
        }
    }
}

impl LatencySnapshot {
    /// What was observed after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &LatencySnapshot) -> LatencySnapshot {
        let mut d = self.clone();
        for (c, e) in d.counts.iter_mut().zip(earlier.counts) {
            *c = c.saturating_sub(e);
        }
        d.sum_ns = d.sum_ns.saturating_sub(earlier.sum_ns);
        d
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1), interpolated inside its bucket as
    /// Prometheus's `histogram_quantile` does; `None` with no samples. A
    /// quantile in the +Inf bucket is reported as the last finite bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let lo = if i == 0 { 0 } else { BOUNDS_NS[i - 1] };
                if BOUNDS_NS[i] == u64::MAX {
                    return Some(Duration::from_nanos(lo));
                }
                let frac = (rank - below as f64) / c as f64;
                let ns = lo as f64 + frac * (BOUNDS_NS[i] - lo) as f64;
                return Some(Duration::from_nanos(ns as u64));
            }
            below += c;
        }
        None
    }

    /// Mean latency; `None` with no samples.
    pub fn mean(&self) -> Option<Duration> {
        let n = self.count();
        (n > 0).then(|| Duration::from_nanos(self.sum_ns / n))
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let s = self.snapshot();
        let buckets: Vec<(f64, u64)> = BOUNDS_NS
            .iter()
            .zip(s.counts)
            .map(|(&b, c)| {
                let le = if b == u64::MAX {
                    f64::MAX
                } else {
                    b as f64 / 1e9
                };
                (le, c)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(s.sum_ns as f64 / 1e9, s.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn observations_land_in_their_bucket() {
        let l = Latency::default();
        l.observe(us(10), 1); // <= 25 µs
        l.observe(us(25), 1); // a bound is inclusive (le)
        l.observe(us(30), 3); // <= 50 µs
        l.observe(Duration::from_secs(60), 1); // +Inf
        let s = l.snapshot();
        assert_eq!(s.counts[0], 2);
        assert_eq!(s.counts[1], 3);
        assert_eq!(s.counts[BOUNDS_NS.len() - 1], 1);
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum_ns, 10_000 + 25_000 + 90_000 + 60_000_000_000);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let l = Latency::default();
        l.observe(us(70), 100); // all in (50, 100] µs
        let s = l.snapshot();
        assert_eq!(s.quantile(0.5), Some(us(75)));
        assert_eq!(s.quantile(1.0), Some(us(100)));
        assert_eq!(s.quantile(0.0), Some(us(50)));
        assert_eq!(LatencySnapshot::default().quantile(0.5), None);
    }

    #[test]
    fn p99_sees_the_slow_tail() {
        let l = Latency::default();
        l.observe(us(20), 98);
        l.observe(Duration::from_millis(3), 2); // (2.5, 5] ms
        let s = l.snapshot();
        assert!(s.quantile(0.5).unwrap() <= us(25));
        let p99 = s.quantile(0.99).unwrap();
        assert!(p99 > Duration::from_micros(2500) && p99 <= Duration::from_millis(5));
    }

    #[test]
    fn since_gives_what_happened_in_between() {
        let l = Latency::default();
        l.observe(us(20), 5);
        let a = l.snapshot();
        l.observe(Duration::from_millis(7), 4);
        let d = l.snapshot().since(&a);
        assert_eq!(d.count(), 4);
        assert_eq!(d.mean(), Some(Duration::from_millis(7)));
        assert!(d.quantile(0.5).unwrap() > Duration::from_millis(5));
    }

    #[test]
    fn the_inf_bucket_reports_the_last_bound() {
        let l = Latency::default();
        l.observe(Duration::from_secs(30), 1);
        assert_eq!(l.snapshot().quantile(0.5), Some(Duration::from_secs(10)));
    }

    #[test]
    fn encodes_as_a_prometheus_histogram_in_seconds() {
        let mut r = prometheus_client::registry::Registry::with_prefix("x");
        let l = Latency::default();
        r.register("request_duration_seconds", "t", l.clone());
        l.observe(us(70), 2);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains("# TYPE x_request_duration_seconds histogram"),
            "{out}"
        );
        assert!(out.contains("x_request_duration_seconds_count 2"), "{out}");
        assert!(
            out.contains("x_request_duration_seconds_bucket{le=\"0.0001\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("x_request_duration_seconds_bucket{le=\"0.00005\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("x_request_duration_seconds_bucket{le=\"+Inf\"} 2"),
            "{out}"
        );
    }
}
