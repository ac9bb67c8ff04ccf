//! The topology: what a Redis + Sentinel deployment is ([`spec`], on which
//! [`engine`]), the
//! configuration files rendered from it ([`render`], shared by the local
//! supervisor and the Kubernetes manifests), the boot-role decision
//! ([`role`]), and how to observe a running one through Sentinel
//! ([`sentinel`], [`info`]).

pub mod acl;
pub mod boot;
pub mod boot_inputs;
pub mod engine;
pub mod info;
pub mod promotion;
pub mod render;
pub mod role;
pub mod sentinel;
pub mod spec;
pub mod status;

pub use engine::Engine;
pub use spec::{Spec, TlsFiles};

/// A `host:port` address as Redis and Sentinel report them.
pub type Addr = String;

/// Joins host and port, bracketing IPv6 literals.
pub fn addr(host: &str, port: u16) -> Addr {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host:port` (IPv6 in brackets allowed).
pub fn split_addr(a: &str) -> Option<(String, u16)> {
    let (h, p) = a.rsplit_once(':')?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    Some((h.to_string(), p.parse().ok()?))
}
