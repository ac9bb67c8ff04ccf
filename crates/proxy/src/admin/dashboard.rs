//! The dashboard page as the server renders it: every table is filled in
//! here, so it reads without JavaScript; `dashboard.js` then refreshes the
//! tables and draws the charts from `/api/status` and `/api/history`.

use serde_json::Value;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `redis-0 127.0.0.1:6381`, or the address alone when it has no name.
fn node(names: &Value, addr: Option<&str>) -> String {
    let Some(a) = addr else {
        return "?".into();
    };
    match names[a].as_str() {
        Some(n) => format!("<b class=\"name\">{}</b> {}", esc(n), esc(a)),
        None => esc(a),
    }
}

/// Time of day (UTC) of a unix time in ms.
fn clock(unix_ms: u64) -> String {
    let s = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

/// The recent-failovers table's columns after "fault seen": each step's
/// time from it, in their usual order (the proxy adopts the promoted replica
/// before Sentinel's `+switch-master`).
pub const STEPS: [(&str, &str); 6] = [
    ("odown_ms", "+odown"),
    ("promoted_ms", "promoted"),
    ("adopted_ms", "adopted"),
    ("first_write_ms", "first write served"),
    ("switch_master_ms", "+switch-master"),
    ("ended_ms", "ended"),
];

pub fn render(v: &Value) -> String {
    let s = &v["status"];
    let c = &v["counters"];
    let names = &v["names"];
    let mut replicas = String::new();
    for r in s["replicas"].as_array().into_iter().flatten() {
        let healthy = r["healthy"].as_bool() == Some(true);
        replicas.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            node(names, r["addr"].as_str()),
            if healthy { "ok" } else { "bad" },
            if healthy {
                "in rotation".to_string()
            } else {
                esc(r["reason"].as_str().unwrap_or("out"))
            },
            r["lag_seconds"]
                .as_i64()
                .map(|l| format!("{l} s"))
                .unwrap_or_default(),
            r["lag_bytes"]
                .as_i64()
                .map(|l| format!("{l} B"))
                .unwrap_or_default(),
        ));
    }
    let mut sentinels = String::new();
    for x in s["sentinels"].as_array().into_iter().flatten() {
        let ok = x["error"].is_null();
        sentinels.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            node(names, x["addr"].as_str()),
            x["master"]
                .as_str()
                .map(|m| node(names, Some(m)))
                .unwrap_or_else(|| "-".into()),
            esc(x["flags"].as_str().unwrap_or("")),
            x["config_epoch"],
            if ok { "ok" } else { "bad" },
            if !ok {
                esc(x["error"].as_str().unwrap_or(""))
            } else if x["subscribed"].as_bool() == Some(true) {
                "reachable, subscribed".to_string()
            } else {
                "reachable".to_string()
            },
        ));
    }
    let mut failovers = String::new();
    for f in s["failovers"].as_array().into_iter().flatten() {
        let mut row = format!(
            "<tr class=\"failover\"><td>{}</td><td>{}</td><td>{} → {}</td>",
            clock(f["at_unix_ms"].as_u64().unwrap_or(0)),
            esc(f["trigger"].as_str().unwrap_or("")),
            node(names, f["old_master"].as_str()),
            node(names, f["new_master"].as_str()),
        );
        for (k, _) in STEPS {
            row.push_str(&match f[k].as_f64() {
                Some(ms) => format!("<td>+{ms:.0} ms</td>"),
                None => "<td>-</td>".into(),
            });
        }
        row.push_str(&format!(
            "<td>{}</td></tr>",
            esc(f["outcome"].as_str().unwrap_or(""))
        ));
        failovers.push_str(&row);
    }
    if failovers.is_empty() {
        failovers = format!(
            "<tr class=\"none\"><td colspan=\"{}\">none since the proxy started</td></tr>",
            4 + STEPS.len()
        );
    }
    let steps: String = STEPS.iter().map(|(_, h)| format!("<th>{h}</th>")).collect();
    let master = match s["master"].as_str() {
        Some(m) => node(names, Some(m)),
        None => format!(
            "none ({})",
            esc(s["closed"]
                .as_str()
                .unwrap_or("holding writes: failover in progress?"))
        ),
    };
    let num = |k: &str| c[k].to_string();
    let p99 = |k: &str| {
        c[k].as_f64()
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "-".into())
    };
    let errors_by_kind: String = c["errors_by_kind"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| format!(" · {} {n}", esc(k)))
        .collect();
    let fill: [(&str, String); 19] = [
        ("name", esc(s["master_name"].as_str().unwrap_or(""))),
        ("master", master),
        ("epoch", s["epoch"].to_string()),
        ("replicas", replicas),
        ("sentinels", sentinels),
        ("failovers", failovers),
        ("steps", steps),
        ("wc", num("write_clients")),
        ("rc", num("read_clients")),
        ("wops", num("write_ops_per_sec")),
        ("rops", num("read_ops_per_sec")),
        ("wp99", p99("write_p99_ms")),
        ("rp99", p99("read_p99_ms")),
        ("errors", num("errors")),
        ("errors_by_kind", errors_by_kind),
        ("retried", num("retried")),
        ("held", num("held")),
        ("nfo", num("failovers")),
        (
            "bytes",
            format!("{} in · {} out", c["received_bytes"], c["sent_bytes"]),
        ),
    ];
    fill_in(include_str!("dashboard.html"), &fill)
}

/// `template` with each `{{key}}` replaced by its value, in one pass (a
/// value that contains `{{...}}` itself stays as it is).
fn fill_in(template: &str, fill: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after
            .find("}}")
            .and_then(|j| Some((j, &fill.iter().find(|(k, _)| *k == &after[..j])?.1)))
        {
            Some((j, v)) => {
                out.push_str(v);
                rest = &after[j + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let v = serde_json::json!({
            "status": {
                "master_name": "mymaster", "master": "127.0.0.1:6381", "epoch": 3,
                "replicas": [{"addr": "127.0.0.1:6382", "healthy": true, "lag_seconds": 0, "lag_bytes": 14}],
                "sentinels": [{"addr": "127.0.0.1:26380", "master": "127.0.0.1:6381", "flags": "master",
                               "config_epoch": 1, "subscribed": true, "error": null}],
                "failovers": [{"at_unix_ms": 3_723_000u64, "trigger": "+sdown", "old_master": "127.0.0.1:6380",
                               "new_master": "127.0.0.1:6381", "odown_ms": 12.0, "adopted_ms": 640.4,
                               "outcome": "+switch-master"}],
            },
            "names": {"127.0.0.1:6381": "redis-0", "127.0.0.1:26380": "sentinel-0"},
            "counters": {"write_clients": 1, "read_clients": 0, "write_ops_per_sec": 5.0,
                         "read_ops_per_sec": 0.0, "write_p99_ms": 0.25, "read_p99_ms": null, "errors": 2,
                         "errors_by_kind": {"hold_timeout": 2}, "retried": 0, "held": 1, "failovers": 1,
                         "received_bytes": 10, "sent_bytes": 20},
        });
        let page = render(&v);
        assert!(!page.contains("{{"), "unfilled placeholder in the page");
        assert!(page.contains("<b class=\"name\">redis-0</b> 127.0.0.1:6381"));
        assert!(page.contains("01:02:03 UTC"));
        assert!(page.contains("<td>+12 ms</td><td>-</td><td>+640 ms</td>"));
        assert!(page.contains("hold_timeout 2"));
    }

    #[test]
    fn values_are_not_filled_in_again() {
        let fill = [("a", "{{b}}".to_string()), ("b", "B".to_string())];
        assert_eq!(fill_in("x{{a}}y{{b}}z{{c}}", &fill), "x{{b}}yBz{{c}}");
    }
}
