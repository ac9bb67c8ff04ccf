//! Free loopback ports for nodes and tests (never fixed ports: tests run in
//! parallel).
//!
//! A port is chosen some time before the node binds it, and meanwhile
//! another process must not take it. So ports come from below the kernel's
//! ephemeral range, where neither `connect()` nor a `bind` to port 0 ever
//! lands, and each chosen port stays locked (a `flock` on a file per port)
//! until this process exits, so parallel pickers skip it. A port picked by
//! the kernel (`bind` to 0) could be handed to another process's outgoing
//! connection or listener before the node started: one test in a
//! thousand failed with "Address already in use".

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;

/// The lowest port handed out: ports below are left to services run by hand
/// (6379, 26379, 8404, ...).
const LOWEST: u16 = 10_000;

/// The locks this process holds; released when it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// `n` distinct free ports on `host`, each bindable now and reserved for
/// this process against every other caller of this function.
pub fn free_ports(host: &str, n: usize) -> std::io::Result<Vec<u16>> {
    let range = pick_range(ephemeral_start());
    let start = RandomState::new().hash_one(std::process::id()) as usize;
    let dir = lock_dir()?;
    let mut got = Vec::with_capacity(n);
    for port in candidates(&range, start) {
        if got.len() == n {
            break;
        }
        if TcpListener::bind((host, port)).is_ok() && reserve(&dir, port)? {
            got.push(port);
        }
    }
    if got.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!(
                "only {} of {n} free ports on {host} in {}..{}",
                got.len(),
                range.start,
                range.end
            ),
        ));
    }
    Ok(got)
}

pub fn free_port(host: &str) -> std::io::Result<u16> {
    Ok(free_ports(host, 1)?[0])
}

/// True when something already listens on `host:port`.
pub fn in_use(host: &str, port: u16) -> bool {
    TcpListener::bind((host, port)).is_err()
}

/// The ports to choose from: [`LOWEST`] up to the ephemeral range.
fn pick_range(ephemeral_start: u16) -> Range<u16> {
    LOWEST..ephemeral_start.max(LOWEST + 1000)
}

/// Every port of `range` once, from a random point on, wrapping.
fn candidates(range: &Range<u16>, start: usize) -> impl Iterator<Item = u16> + '_ {
    let len = usize::from(range.end - range.start);
    (0..len).map(move |i| range.start + ((start + i) % len) as u16)
}

/// Where the kernel's ephemeral ports begin (Linux's default without /proc).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn lock_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join("redis-ha-ports");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Locks `port` for this process; false when another process holds it.
fn reserve(dir: &std::path::Path, port: u16) -> std::io::Result<bool> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))?;
    match f.try_lock() {
        Ok(()) => {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(f);
            Ok(true)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_stays_below_the_ephemeral_ports() {
        assert_eq!(pick_range(32_768), 10_000..32_768);
        // A range starting low still leaves ports to pick from.
        assert_eq!(pick_range(1024), 10_000..11_000);
    }

    #[test]
    fn candidates_cover_the_range_once_from_any_start() {
        let r = 10_000..10_010;
        let mut c: Vec<u16> = candidates(&r, 123_457).collect();
        assert_eq!(c[0], 10_007);
        c.sort();
        assert_eq!(c, r.collect::<Vec<_>>());
    }

    #[test]
    fn ports_are_distinct_free_and_not_handed_out_twice() {
        let a = free_ports("127.0.0.1", 5).unwrap();
        let b = free_ports("127.0.0.1", 5).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10, "{a:?} {b:?}");
        assert!(all.iter().all(|p| *p >= LOWEST && *p < ephemeral_start()));
        assert!(all.iter().all(|p| !in_use("127.0.0.1", *p)));
    }

    #[test]
    fn a_port_locked_elsewhere_is_skipped() {
        let dir = lock_dir().unwrap();
        let p = free_port("127.0.0.1").unwrap();
        // Another open file description on the same file: as another
        // process would hold it.
        let other = File::open(dir.join(p.to_string())).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        assert!(!reserve(&dir, p).unwrap());
    }
}
