//! Replays the fuzz corpus and regression inputs (`fuzz/corpus`,
//! `fuzz/regressions`) through the fuzz targets' own bodies, so the ordinary
//! stable test run checks them without a nightly toolchain.

#[path = "../../../fuzz/bodies.rs"]
mod bodies;

use std::path::PathBuf;

/// Every file under `fuzz/{corpus,regressions}/{target}`; panics if none.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            out.push((path, data));
        }
    }
    assert!(!out.is_empty(), "no fuzz inputs for {target}");
    out
}

fn replay(target: &str, body: fn(&[u8])) {
    for (path, data) in inputs(target) {
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(r.is_ok(), "{target} fails on {}", path.display());
    }
}

#[test]
fn request_corpus_replays() {
    replay("request", bodies::request);
}

#[test]
fn reply_corpus_replays() {
    replay("reply", bodies::reply);
}
