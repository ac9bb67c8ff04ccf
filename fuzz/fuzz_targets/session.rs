//! Fuzz target: see `session::session` (a whole proxy session).
#![no_main]

#[path = "../session.rs"]
mod session;

libfuzzer_sys::fuzz_target!(|data: &[u8]| session::session(data));
