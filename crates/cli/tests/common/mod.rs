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
