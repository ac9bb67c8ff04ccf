//! Free loopback ports for nodes and tests (never fixed ports: tests run in
//! parallel).

use std::net::TcpListener;

/// Asks the kernel for `n` distinct free ports on `host`. The listeners are
/// held until all are chosen so the same port is not returned twice.
pub fn free_ports(host: &str, n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((host, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

pub fn free_port(host: &str) -> std::io::Result<u16> {
    Ok(free_ports(host, 1)?[0])
}

/// True when something already listens on `host:port`.
pub fn in_use(host: &str, port: u16) -> bool {
    TcpListener::bind((host, port)).is_err()
}
