//! Replays the `session` fuzz target's corpus and regression inputs
//! (`fuzz/{corpus,regressions}/session`) through the target's own body, so
//! the ordinary stable test run checks them without a nightly toolchain.

#[path = "../../../fuzz/session.rs"]
mod session;

use std::path::PathBuf;
use std::time::Instant;

#[test]
fn session_corpus_replays() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("session")) else {
            continue;
        };
        inputs.extend(entries.map(|e| e.unwrap().path()));
    }
    assert!(!inputs.is_empty(), "no fuzz inputs for session");
    inputs.sort();
    let started = Instant::now();
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| session::session(&data));
        assert!(r.is_ok(), "session fails on {}", path.display());
        if t.elapsed().as_millis() > 200 {
            eprintln!("{}: {:?}", path.display(), t.elapsed());
        }
    }
    eprintln!("{} inputs in {:?}", inputs.len(), started.elapsed());
}
