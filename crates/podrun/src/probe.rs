//! One readiness probe check, as the kubelet makes it: `exec` inside the
//! container, `httpGet` (2xx or 3xx) or `tcpSocket` to the pod's address,
//! each within the probe's timeoutSeconds.

use crate::podman;
use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// A probe's port: a number, or the name of one of the container's ports.
pub fn port(c: &Container, p: &IntOrString) -> anyhow::Result<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).context("probe port out of range"),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .with_context(|| format!("container {} has no port named {name}", c.name)),
    }
}

/// Whether an HTTP status line says success (200-399).
pub fn http_success(status_line: &str) -> bool {
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..400).contains(&c))
}

/// Runs the probe once: Ok(true) passed, Ok(false) failed.
pub fn check(probe: &Probe, c: &Container, container: &str, ip: IpAddr) -> anyhow::Result<bool> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(e) = &probe.exec {
        let mut args = vec!["exec".to_string(), container.to_string()];
        args.extend(e.command.iter().flatten().cloned());
        return Ok(podman::run_for(&args, timeout)?.ok());
    }
    if let Some(h) = &probe.http_get {
        let addr = SocketAddr::new(ip, port(c, &h.port)?);
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        return Ok(http_get(addr, &path, timeout).unwrap_or(false));
    }
    if let Some(t) = &probe.tcp_socket {
        let addr = SocketAddr::new(ip, port(c, &t.port)?);
        return Ok(TcpStream::connect_timeout(&addr, timeout).is_ok());
    }
    bail!(
        "container {}: a probe without exec, httpGet or tcpSocket",
        c.name
    )
}

fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: kube-probe/podrun\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let text = String::from_utf8_lossy(&head[..n]);
    Ok(http_success(text.lines().next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn named_ports_and_status_lines() {
        let c = Container {
            name: "proxy".into(),
            ports: Some(vec![ContainerPort {
                name: Some("admin".into()),
                container_port: 8404,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            port(&c, &IntOrString::String("admin".into())).unwrap(),
            8404
        );
        assert_eq!(port(&c, &IntOrString::Int(6379)).unwrap(), 6379);
        assert!(port(&c, &IntOrString::String("nope".into())).is_err());
        assert!(http_success("HTTP/1.1 200 OK"));
        assert!(http_success("HTTP/1.0 302 Found"));
        assert!(!http_success("HTTP/1.1 503 Service Unavailable"));
        assert!(!http_success("garbage"));
    }
}
