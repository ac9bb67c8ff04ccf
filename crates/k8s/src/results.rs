//! Benchmark results gathered from Job pods: each pod's `redis-ha bench
//! --json` report is found in its log and the reports are merged into one
//! (rates and counts summed, mean latency weighted by request count).

use serde_json::{json, Map, Value};

/// The bench report in a pod's log (stdout and stderr interleaved): the
/// first JSON object, starting at a line of its own, with "ALL STATS".
pub fn report_from_log(log: &str) -> anyhow::Result<Value> {
    let mut offset = 0;
    for line in log.split_inclusive('\n') {
        if line.trim_start().starts_with('{') {
            let mut stream =
                serde_json::Deserializer::from_str(&log[offset..]).into_iter::<Value>();
            if let Some(Ok(v)) = stream.next() {
                if v.get("ALL STATS").is_some() {
                    return Ok(v);
                }
            }
        }
        offset += line.len();
    }
    anyhow::bail!(
        "no `redis-ha bench --json` report in the log (did the pod fail? see `kubectl logs`)"
    )
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Sums of one type ("Sets", "Gets", "Totals") over the pods.
fn merge_type(stats: &[&Value]) -> Value {
    let count: f64 = stats.iter().map(|s| num(s, "Count")).sum();
    let sum = |k: &str| stats.iter().map(|s| num(s, k)).sum::<f64>();
    let weighted: f64 = stats
        .iter()
        .map(|s| num(s, "Count") * num(s, "Average Latency"))
        .sum();
    let max = stats
        .iter()
        .map(|s| num(s, "Max Latency"))
        .fold(0.0, f64::max);
    let min = stats
        .iter()
        .filter(|s| num(s, "Count") > 0.0)
        .map(|s| num(s, "Min Latency"))
        .fold(f64::INFINITY, f64::min);
    let mut pct = Map::new();
    for s in stats {
        for (k, v) in s
            .get("Percentile Latencies")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let worst = pct
                .get(k)
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                .max(v.as_f64().unwrap_or(0.0));
            pct.insert(k.clone(), json!(worst));
        }
    }
    json!({
        "Count": count as u64,
        "Ops/sec": sum("Ops/sec"),
        "Hits/sec": sum("Hits/sec"),
        "Misses/sec": sum("Misses/sec"),
        "Errors": sum("Errors") as u64,
        "Average Latency": if count > 0.0 { weighted / count } else { 0.0 },
        "Min Latency": if min.is_finite() { min } else { 0.0 },
        "Max Latency": max,
        "KB/sec": sum("KB/sec"),
        // Percentiles cannot be merged from summaries: the worst pod's.
        "Percentile Latencies (worst pod)": pct,
    })
}

fn type_names(reports: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in reports {
        for (k, v) in r["ALL STATS"].as_object().into_iter().flatten() {
            if v.get("Count").is_some() && !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

fn merge_errors(reports: &[Value]) -> Value {
    let mut errors = Map::new();
    for r in reports {
        for (k, v) in r["Errors"].as_object().into_iter().flatten() {
            let total =
                errors.get(k).and_then(Value::as_u64).unwrap_or(0) + v.as_u64().unwrap_or(0);
            errors.insert(k.clone(), json!(total));
        }
    }
    Value::Object(errors)
}

/// One report of a phase from its pods' reports, `(pod, report)`.
pub fn merge(pods: &[(String, Value)]) -> anyhow::Result<Value> {
    anyhow::ensure!(!pods.is_empty(), "no pod reports to merge");
    let reports: Vec<Value> = pods.iter().map(|(_, r)| r.clone()).collect();
    let mut all = Map::new();
    for name in type_names(&reports) {
        let stats: Vec<&Value> = reports
            .iter()
            .filter_map(|r| r["ALL STATS"].get(&name))
            .collect();
        all.insert(name, merge_type(&stats));
    }
    let outages: Vec<Value> = pods
        .iter()
        .flat_map(|(pod, r)| {
            r["Outages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |o| json!({"pod": pod, "outage": o}))
        })
        .collect();
    Ok(json!({
        "Pods": pods.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        "ALL STATS": all,
        "Errors": merge_errors(&reports),
        "Outages": outages,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ops: f64, count: u64, avg: f64, p99: f64) -> Value {
        json!({
            "Configuration": {},
            "ALL STATS": {
                "Sets": {"Count": count, "Ops/sec": ops, "Hits/sec": 0.0, "Misses/sec": 0.0, "Errors": 1,
                         "Average Latency": avg, "Min Latency": avg / 2.0, "Max Latency": avg * 10.0,
                         "KB/sec": ops / 4.0, "Percentile Latencies": {"p99.00": p99}},
                "Totals": {"Count": count, "Ops/sec": ops, "Hits/sec": 0.0, "Misses/sec": 0.0, "Errors": 1,
                           "Average Latency": avg, "Min Latency": avg / 2.0, "Max Latency": avg * 10.0,
                           "KB/sec": ops / 4.0, "Percentile Latencies": {"p99.00": p99}},
                "Runtime": {"Total duration": 120000}
            },
            "Errors": {"refused": 2, "timeout": 0},
            "Outages": [{"start_ms": 1000, "length_ms": 300}],
        })
    }

    #[test]
    fn finds_the_report_among_log_lines() {
        let r = report(1.0, 1, 1.0, 1.0);
        let log = format!(
            "WARN reconnecting {{not json}}\n{}\nbye\n",
            serde_json::to_string_pretty(&r).unwrap()
        );
        assert_eq!(report_from_log(&log).unwrap(), r);
        assert!(report_from_log("{\"other\": 1}\nnothing here\n").is_err());
    }

    #[test]
    fn sums_rates_and_weights_latency_by_count() {
        let merged = merge(&[
            ("a".into(), report(1000.0, 100, 1.0, 5.0)),
            ("b".into(), report(3000.0, 300, 3.0, 9.0)),
        ])
        .unwrap();
        let t = &merged["ALL STATS"]["Totals"];
        assert_eq!(t["Ops/sec"], json!(4000.0));
        assert_eq!(t["Count"], json!(400));
        assert_eq!(t["Errors"], json!(2));
        assert_eq!(t["Average Latency"], json!(2.5));
        assert_eq!(t["Min Latency"], json!(0.5));
        assert_eq!(t["Max Latency"], json!(30.0));
        assert_eq!(t["Percentile Latencies (worst pod)"]["p99.00"], json!(9.0));
        assert!(merged["ALL STATS"].get("Runtime").is_none());
        assert_eq!(merged["Errors"]["refused"], json!(4));
        assert_eq!(merged["Outages"].as_array().unwrap().len(), 2);
        assert_eq!(merged["Outages"][1]["pod"], json!("b"));
        assert!(merge(&[]).is_err());
    }
}
