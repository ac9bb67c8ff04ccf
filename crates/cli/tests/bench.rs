//! `redis-ha bench` as a user runs it: the seed scenario on a `redis-ha up`
//! topology (with its proxy), and bad input through the binary.

mod common;
use common::{run, text};
use redis_ha_local::ports::free_ports;

/// `down` on drop, so a failing test leaves nothing running.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = run(&["down", "--state-dir", &self.0]);
    }
}

#[test]
fn seed_scenario_on_a_local_topology() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let p: Vec<String> = free_ports("127.0.0.1", 9)
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let o = run(&[
        "up",
        "--detach",
        "--state-dir",
        &state,
        "--redis-ports",
        &p[0..3].join(","),
        "--sentinel-ports",
        &p[3..6].join(","),
        "--proxy-port",
        &p[6],
        "--proxy-read-port",
        &p[7],
        "--admin-port",
        &p[8],
    ]);
    let _down = Down(state.clone());
    assert!(o.status.success(), "up: {}", text(&o));

    let json = dir.path().join("seed.json");
    let chart = dir.path().join("seed.svg");
    let o = run(&[
        "bench",
        "--scenario",
        "seed",
        "--test-time",
        "2",
        "-c",
        "5",
        "-p",
        &p[6],
        "--read-port",
        &p[7],
        "--json-out-file",
        json.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert!(o.status.success(), "bench: {out}");
    assert!(
        out.contains("ALL STATS") && out.contains("seed scenario"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["scenario"], "seed");
    let written = v["keys_written"].as_u64().unwrap();
    assert!(written > 100, "{v}");
    let w = &v["write"]["ALL STATS"];
    let r = &v["read"]["ALL STATS"];
    assert!(w["Sets"]["Count"].as_u64().unwrap() >= written.min(400_000) - 10);
    assert_eq!(w["Gets"]["Count"], 0);
    assert_eq!(r["Sets"]["Count"], 0);
    assert!(r["Gets"]["Count"].as_u64().unwrap() > 100);
    // Every key read was written and replicated before the read phase.
    assert_eq!(r["Gets"]["Misses/sec"].as_f64().unwrap(), 0.0, "{r}");
    assert_eq!(v["replicas_acknowledged"], 2);
    for phase in ["write", "read"] {
        assert_eq!(v[phase]["Requests"]["connections"], 10);
        assert!(!v[phase]["Timeline"].as_array().unwrap().is_empty());
        assert_eq!(v[phase]["Errors"]["refused/reset"], 0);
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("ops / second"),
        "not a chart"
    );
}

#[test]
fn bad_flags_and_dead_server_exit_non_zero() {
    let port = free_ports("127.0.0.1", 1).unwrap()[0].to_string();
    let o = run(&["bench", "-p", &port, "-n", "1"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("cannot reach") && !t.contains("panicked"), "{t}");
    let o = run(&["bench", "--pipeline", "x"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--pipeline"), "{}", text(&o));
    let o = run(&["bench", "--test-time", "1", "-n", "5"]);
    assert!(!o.status.success(), "--test-time and --requests conflict");
}
