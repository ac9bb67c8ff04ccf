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
