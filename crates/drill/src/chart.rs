//! The drill's chart: acknowledged writes and errors per 100 ms, the fault
//! and `+switch-master` marked, drawn by the bench crate's chart code.

#[cfg(test)]
use crate::report::{buckets, Bucket};
use crate::report::{DrillReport, BUCKET_MS};
use redis_ha_bench::chart::{write_plot, Marker, Plot, Series};
use std::path::Path;

/// The plot of a drill report.
pub fn plot(r: &DrillReport) -> Plot {
    let centre = |i: usize| (i as f64 + 0.5) * BUCKET_MS / 1000.0;
    let b = &r.writes_per_100ms;
    let series = Series {
        name: "writes".into(),
        ops: b
            .iter()
            .enumerate()
            .map(|(i, b)| (centre(i), b.acked as f64))
            .collect(),
        errors: b
            .iter()
            .enumerate()
            .filter(|(_, b)| b.errors > 0)
            .map(|(i, b)| (centre(i), b.errors as f64))
            .collect(),
        outages: r
            .pauses
            .iter()
            .map(|p| (r.fault_at_s + p.0 / 1000.0, r.fault_at_s + p.1 / 1000.0))
            .collect(),
        ..Series::default()
    };
    let mut markers = vec![Marker {
        at_s: r.fault_at_s,
        label: format!("{} (fault)", r.fault.name()),
    }];
    if let Some(ms) = r.switch_master_after_ms {
        markers.push(Marker {
            at_s: r.fault_at_s + ms / 1000.0,
            label: "+switch-master".into(),
        });
    }
    Plot {
        title: format!("redis-ha drill: {} through {}", r.fault.name(), r.target),
        y_desc: "writes / 100 ms".into(),
        bucket_s: BUCKET_MS / 1000.0,
        legend: ("acknowledged / 100 ms".into(), "errors / 100 ms".into()),
        x_max: (b.len() as f64 * BUCKET_MS / 1000.0).max(0.1),
        series: vec![series],
        markers,
    }
}

/// Writes the chart of `r` to `path` (`.svg` or `.png`).
pub fn write(path: &Path, r: &DrillReport) -> anyhow::Result<()> {
    write_plot(path, &plot(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fall_in_their_100ms_bucket() {
        let b = buckets(&[0.0, 99.9, 100.0, 250.0], &[120.0, 999.0], 300.0);
        assert_eq!(
            b,
            [
                Bucket {
                    acked: 2,
                    errors: 0
                },
                Bucket {
                    acked: 1,
                    errors: 1
                },
                // Past the end: the last bucket.
                Bucket {
                    acked: 1,
                    errors: 1
                },
            ]
        );
    }
}
