//! `--log-format json`: every line on stderr is one JSON object (the
//! start-up banner goes to stdout), and
//! the proxy logs its routing changes by default (its control plane at
//! `info`), here the first table naming why there is no master.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn json_logs_are_one_object_per_line_with_the_routing_change() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sentinel = dead.local_addr().unwrap().to_string();
    drop(dead); // nothing listens there now
                // Free ports: `--port 0` would turn the plain endpoint off, as Redis's.
    let ports: Vec<String> = redis_ha_local::ports::free_ports("127.0.0.1", 3)
        .unwrap()
        .iter()
        .map(u16::to_string)
        .collect();
    let mut p = Command::new(env!("CARGO_BIN_EXE_redis-ha"))
        .args(["--log-format", "json", "proxy", "--sentinel", &sentinel])
        .args(["--port", &ports[0], "--read-port", &ports[1]])
        .args(["--admin-port", &ports[2]])
        .env_remove("REDIS_HA_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = p.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut routes = None;
    while routes.is_none() && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
        if v["fields"]["message"] == "routes" {
            routes = Some(v);
        }
    }
    let _ = p.kill();
    let _ = p.wait();
    let v = routes.expect("a routes line within 10 s");
    assert!(
        v["fields"]["closed"]
            .as_str()
            .unwrap_or("")
            .contains("connection refused"),
        "{v}"
    );
}
