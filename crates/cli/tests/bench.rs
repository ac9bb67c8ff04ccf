//! `redis-ha bench` as a user runs it: the seed scenario on a `redis-ha up`
//! topology (with its proxy), and bad input through the binary.

mod common;
use common::{run, text, up_with_proxy};
use redis_ha_local::ports::free_ports;

#[test]
fn seed_scenario_on_a_local_topology() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, p, _down) = up_with_proxy(dir.path(), &[]);

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
    // The drill's exit status is documented where CI authors look.
    let o = run(&["drill", "--help"]);
    assert!(text(&o).contains("Exit status: 0 passed"), "{}", text(&o));
}

/// With `up --password --sentinel-password` the supervised proxy starts,
/// `status` finds it all healthy, only clients that log in are served (bench
/// with `-a`), and a drill finds both passwords in the state directory.
#[test]
fn a_password_topology_serves_only_clients_that_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let (state, p, _down) = up_with_proxy(
        dir.path(),
        &["--password", "pw-9", "--sentinel-password", "spw-9"],
    );
    let o = run(&["status", "--json", "--state-dir", &state]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(o.status.success(), "status: {}", text(&o));
    assert!(v["proxy"]["error"].is_null(), "{v}");

    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "--test-time", "1", "-c", "2", "-p", &p[6]];
        args.extend(extra);
        run(&args)
    };
    let o = bench(&[]);
    assert!(
        !o.status.success()
            && text(&o).contains("NOAUTH")
            && text(&o).contains("-a/--authenticate"),
        "{}",
        text(&o)
    );
    let o = bench(&[
        "-a",
        "pw-9",
        "--json-out-file",
        dir.path().join("b.json").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "bench -a: {}", text(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("b.json")).unwrap()).unwrap();
    assert!(v["ALL STATS"]["Sets"]["Count"].as_u64().unwrap() > 0, "{v}");

    let target = format!("127.0.0.1:{}", p[6]);
    let chart = dir.path().join("drill.svg").display().to_string();
    let o = run(&[
        "drill",
        "--fault",
        "failover",
        "--state-dir",
        &state,
        "--target",
        &target,
        "--before",
        "500ms",
        "--after",
        "500ms",
        "--json",
        "--chart",
        &chart,
    ]);
    assert!(o.status.success(), "drill: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(v["new_master"], v["old_master"], "{v}");
    assert_eq!(v["writes_failed"], 0, "{v}");
    assert_eq!(v["lost_writes"], 0, "{v}");
    assert_eq!(v["duplicated_writes"], 0, "{v}");
    assert_eq!(v["failures"], serde_json::json!([]), "{v}");
    assert_eq!(v["chart"], chart.as_str(), "{v}");
    assert!(std::fs::read_to_string(&chart)
        .unwrap()
        .contains("+switch-master"));
}
