//! Headless Chromium for the dashboard tests: the flags this machine needs
//! (no sandbox as root, no background networking on a closed network) in
//! one place.

use std::process::{Command, Output};

/// `chromium --dump-dom URL` after the page's scripts ran for
/// `virtual_time_ms` of virtual time, under `timeout 60` so a hung browser
/// fails the test rather than CI. `None` when Chromium is not installed
/// (see [`crate::program`]: a failure under `CI=true`). Blocking: call it
/// from `spawn_blocking` in async tests.
pub fn dump_dom(url: &str, virtual_time_ms: u32) -> Option<Output> {
    let chromium = crate::program("chromium")?;
    let profile = tempfile::tempdir().expect("a temporary profile dir");
    let out = Command::new("timeout")
        .arg("60")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={virtual_time_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    Some(out)
}
