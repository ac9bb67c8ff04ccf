//! `redis-ha up --metrics`: a redis_exporter beside every Redis and Sentinel
//! node (Debian's `prometheus-redis-exporter`, or upstream's
//! `redis_exporter`), so the Grafana board's "Redis nodes" row and the node
//! alerts of `deploy/prometheus/rules.yml` work on one machine as on
//! Kubernetes (`k8s render --metrics`). Optional: without the binary, `up`
//! says how to install it and goes on without.

use crate::process;
use crate::topo::Options;
use redis_ha_topology::spec::Spec;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The binary's names: Debian's package, then upstream's release.
pub const BINARIES: [&str; 2] = ["prometheus-redis-exporter", "redis_exporter"];

/// What installs it, for the message when it is missing.
pub const INSTALL: &str = "apt-get install prometheus-redis-exporter";

/// The exporters' listen ports, one per node: the Redis nodes', then the
/// sentinels' (the node order of the topology).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Exporters {
    pub ports: Vec<u16>,
}

impl Exporters {
    /// From 9121 (redis_exporter's registered port) up, one per node.
    pub fn defaults(nodes: usize) -> Exporters {
        Exporters {
            ports: (0..nodes).map(|i| 9121 + i as u16).collect(),
        }
    }
}

/// One exporter to start: the node it watches and where it listens.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub node: String,
    pub node_addr: String,
    pub listen: String,
    /// The password it logs in with (the node's, or the sentinels').
    pub password: Option<String>,
}

/// Pure: what to start for `o` (empty without `--metrics`). A port list
/// shorter than the nodes leaves the last nodes without one.
pub fn plan(o: &Options) -> Vec<Plan> {
    let Some(e) = &o.exporters else {
        return Vec::new();
    };
    let redis = o
        .redis_addrs()
        .into_iter()
        .enumerate()
        .map(|(i, a)| (Spec::redis_name(i), a, o.spec.password.clone()));
    let sentinels = o
        .sentinel_addrs()
        .into_iter()
        .enumerate()
        .map(|(i, a)| (Spec::sentinel_name(i), a, o.spec.sentinel_password.clone()));
    redis
        .chain(sentinels)
        .zip(&e.ports)
        .map(|((node, node_addr, password), port)| Plan {
            node,
            node_addr,
            listen: format!("{}:{port}", o.host),
            password,
        })
        .collect()
}

/// Pure: the exporter's arguments. With TLS it connects with `rediss://`
/// and the client certificate the nodes require.
pub fn args(p: &Plan, tls: Option<&crate::pki::Pki>) -> Vec<String> {
    let scheme = if tls.is_some() { "rediss" } else { "redis" };
    let mut a = vec![
        format!("-redis.addr={scheme}://{}", p.node_addr),
        format!("-web.listen-address={}", p.listen),
        "-redis-only-metrics".into(),
    ];
    if let Some(pki) = tls {
        a.push(format!(
            "-tls-client-cert-file={}",
            pki.client_cert().display()
        ));
        a.push(format!(
            "-tls-client-key-file={}",
            pki.client_key().display()
        ));
        a.push(format!("-tls-ca-cert-file={}", pki.ca().display()));
    }
    a
}

/// The exporter binary on PATH, if any.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| BINARIES.map(|b| d.join(b)))
        .find(|p| p.is_file())
}

fn pid_file(o: &Options, node: &str) -> PathBuf {
    o.node_dir(node).join("exporter.pid")
}

/// Starts every planned exporter; returns `node -> http://listen/metrics`
/// lines for the user, or the reason none started.
pub fn start_all(
    o: &Options,
    die_with_parent: bool,
) -> anyhow::Result<Result<Vec<String>, String>> {
    let plans = plan(o);
    if plans.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let Some(bin) = binary() else {
        return Ok(Err(format!(
            "--metrics: no redis_exporter on PATH ({} or {}): {INSTALL}",
            BINARIES[0], BINARIES[1]
        )));
    };
    let pki = o.pki();
    let mut lines = Vec::new();
    for p in &plans {
        let dir = o.node_dir(&p.node);
        std::fs::create_dir_all(&dir)?;
        // The password by environment (redis_exporter reads REDIS_PASSWORD),
        // not on the command line where `ps` shows it.
        let env: Vec<(&str, &str)> = p
            .password
            .as_deref()
            .map(|pw| ("REDIS_PASSWORD", pw))
            .into_iter()
            .collect();
        let log = dir.join("exporter.log");
        let pid = process::spawn_args(&bin, &args(p, pki.as_ref()), &env, &log, die_with_parent)?;
        std::fs::write(pid_file(o, &p.node), pid.to_string())?;
        lines.push(format!("{} -> http://{}/metrics", p.node, p.listen));
    }
    Ok(Ok(lines))
}

/// Stops every exporter a pid file names.
pub fn stop_all(o: &Options) {
    for p in plan(o) {
        let file = pid_file(o, &p.node);
        if let Some(pid) = process::read_pid(&file) {
            if process::alive(pid) {
                process::terminate(pid, std::time::Duration::from_secs(2));
            }
        }
        let _ = std::fs::remove_file(file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(exporters: Option<Exporters>) -> Options {
        let mut o = Options::with_defaults(Spec::default(), "/tmp/x".into());
        o.exporters = exporters;
        o
    }

    #[test]
    fn nothing_without_metrics() {
        assert!(plan(&opts(None)).is_empty());
    }

    #[test]
    fn one_exporter_per_node_with_that_nodes_password() {
        let mut o = opts(Some(Exporters::defaults(6)));
        o.spec.password = Some("pw".into());
        o.spec.sentinel_password = Some("spw".into());
        let p = plan(&o);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0].node, "redis-0");
        assert_eq!(p[0].node_addr, "127.0.0.1:6381");
        assert_eq!(p[0].listen, "127.0.0.1:9121");
        assert_eq!(p[0].password.as_deref(), Some("pw"));
        assert_eq!(p[3].node, "sentinel-0");
        assert_eq!(p[3].node_addr, "127.0.0.1:26380");
        assert_eq!(p[5].listen, "127.0.0.1:9126");
        assert_eq!(p[5].password.as_deref(), Some("spw"));
    }

    #[test]
    fn args_speak_tls_when_the_nodes_do() {
        let p = &plan(&opts(Some(Exporters::defaults(6))))[0];
        let plain = args(p, None);
        assert_eq!(plain[0], "-redis.addr=redis://127.0.0.1:6381");
        let pki = crate::pki::Pki::new(std::path::Path::new("/s"));
        let tls = args(p, Some(&pki));
        assert_eq!(tls[0], "-redis.addr=rediss://127.0.0.1:6381");
        assert!(tls
            .iter()
            .any(|a| a.starts_with("-tls-client-cert-file=/s/")));
        assert!(
            !tls.iter().any(|a| a.contains("pw")),
            "no password in the arguments"
        );
    }
}
