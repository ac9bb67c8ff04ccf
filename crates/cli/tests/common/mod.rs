//! Running the real `redis-ha` binary from the end-to-end tests.

use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_redis-ha");

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run redis-ha")
}

/// stdout then stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The command failed, and its output says `why`.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn assert_fails_with(o: &Output, why: &str) {
    assert!(!o.status.success() && text(o).contains(why), "{}", text(o));
}

/// `down` on drop, so a failing test leaves nothing running.
pub struct Down(pub String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = run(&["down", "--state-dir", &self.0]);
    }
}

/// `redis-ha up --detach` with its proxy on free ports: (state dir, ports:
/// 3 Redis, 3 sentinels, proxy write, read, admin) and `down` on drop.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn up_with_proxy(dir: &std::path::Path, extra: &[&str]) -> (String, Vec<String>, Down) {
    let state = dir.join("state").display().to_string();
    let p: Vec<String> = redis_ha_local::ports::free_ports("127.0.0.1", 9)
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut args = vec!["up", "--detach", "--state-dir", &state, "--redis-ports"];
    let (r, s) = (p[0..3].join(","), p[3..6].join(","));
    args.extend([
        r.as_str(),
        "--sentinel-ports",
        &s,
        "--proxy-port",
        &p[6],
        "--proxy-read-port",
        &p[7],
        "--admin-port",
        &p[8],
    ]);
    args.extend(extra);
    let o = run(&args);
    let down = Down(state.clone());
    assert!(o.status.success(), "up: {}", text(&o));
    (state, p, down)
}
