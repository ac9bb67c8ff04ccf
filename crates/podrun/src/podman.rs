//! Runs the podman command line: one call, its output, and a deadline
//! after which the call is killed (an exec'd preStop hook or probe that
//! hangs must not hang the test).

use anyhow::{bail, Context};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one podman call printed and how it ended.
#[derive(Clone, Debug)]
pub struct Output {
    /// `None` when the call was killed at its deadline.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `podman ARGS`, killing it after `timeout`.
pub fn run_for(args: &[String], timeout: Duration) -> anyhow::Result<Output> {
    let mut child = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("podman could not be started (installed? scripts/install-deps.sh --pods)")?;
    // Read both pipes on threads so a chatty call never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait()? {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        code,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

/// Runs `podman ARGS` (2 minutes at most) and returns its stdout; an error
/// naming the call and its stderr when it fails.
pub fn run(args: &[String]) -> anyhow::Result<String> {
    let o = run_for(args, Duration::from_secs(120))?;
    if !o.ok() {
        bail!(
            "podman {} failed ({:?}): {}",
            args.join(" "),
            o.code,
            o.stderr.trim()
        );
    }
    Ok(o.stdout)
}

/// `run` with string slices.
pub fn call(args: &[&str]) -> anyhow::Result<String> {
    run(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// Whether podman is installed and answers.
pub fn available() -> bool {
    Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
