//! `--via haproxy`: HAProxy set up like the original system's "smart
//! router" (benchmarks/haproxy.cfg.in: a write frontend to the node whose
//! INFO says role:master, a read frontend round-robin over role:slave,
//! tcp-check every second), started by the drill on the drill's nodes, so
//! the same fault is measured through it and through redis-ha in one run.

use crate::observe::http_get;
use anyhow::{anyhow, bail, Context};
use redis_ha_local::process;
use redis_ha_topology::Addr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The benchmarks' template, one copy.
pub const TEMPLATE: &str = include_str!("../../../benchmarks/haproxy.cfg.in");

/// A running HAProxy, stopped on drop.
pub struct Haproxy {
    pid: u32,
    pub write: Addr,
    pub read: Addr,
    pub stats: Addr,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        process::terminate(self.pid, Duration::from_secs(2));
    }
}

/// The config for `nodes`, listening on `host`.
pub fn config(host: &str, write: u16, read: u16, stats: u16, nodes: &[Addr]) -> String {
    let servers: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    server redis-{i} {a} check inter 1s"))
        .collect();
    let servers = servers.join("\n");
    TEMPLATE
        .replace("@HOST@", host)
        .replace("@WRITE_PORT@", &write.to_string())
        .replace("@READ_PORT@", &read.to_string())
        .replace("@STATS_PORT@", &stats.to_string())
        .replace("@MASTER_SERVERS@", &servers)
        .replace("@REPLICA_SERVERS@", &servers)
}

/// Servers taking traffic per backend, from the stats page's CSV: every
/// status starting with UP, including `UP 1/3` (failing checks, still in
/// the rotation). Servers start UP before their first check, so ready is 1
/// and n-1 with the others really DOWN.
fn up_counts(csv: &str) -> (usize, usize) {
    let up = |backend: &str| {
        csv.lines()
            .filter(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f.len() > 17
                    && f[0] == backend
                    && f[1] != "BACKEND"
                    && f[1] != "FRONTEND"
                    && f[17].starts_with("UP")
            })
            .count()
    };
    (up("master_backend"), up("replica_backend"))
}

impl Haproxy {
    /// Starts it in front of `nodes` (one master, the rest replicas) and
    /// waits until its own health checks agree (servers start UP before
    /// their first check, so one lucky connection proves nothing).
    pub async fn start(nodes: &[Addr]) -> anyhow::Result<Haproxy> {
        let bin = which("haproxy").ok_or_else(|| {
            anyhow!("--via haproxy needs haproxy on the PATH (apt-get install haproxy)")
        })?;
        let host = "127.0.0.1";
        let ports = redis_ha_local::ports::free_ports(host, 3)?;
        let dir = tempfile::Builder::new()
            .prefix("redis-ha-haproxy")
            .tempdir()?;
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(host, ports[0], ports[1], ports[2], nodes))?;
        let log = dir.path().join("haproxy.log");
        let args = ["-db".to_string(), "-f".into(), cfg.display().to_string()];
        let pid = process::spawn_args(&bin, &args, &[], &log, true)?;
        let h = Haproxy {
            pid,
            write: format!("{host}:{}", ports[0]),
            read: format!("{host}:{}", ports[1]),
            stats: format!("{host}:{}", ports[2]),
            _dir: dir,
        };
        let want = (1, nodes.len().saturating_sub(1));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !process::alive(pid) {
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("haproxy exited: {}", tail(&out));
            }
            if let Ok(csv) = http_get(&h.stats, "/;csv").await {
                if up_counts(&csv) == want {
                    return Ok(h);
                }
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "haproxy's health checks did not see 1 master and {} replicas UP",
                    want.1
                ))
                .context(format!("haproxy on {}", h.write));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(500)..]
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| Path::new(p).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_lists_every_node_in_both_backends() {
        let nodes = ["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        let c = config("127.0.0.1", 10, 11, 12, &nodes);
        assert!(c.contains("bind 127.0.0.1:10") && c.contains("bind 127.0.0.1:12"));
        assert_eq!(
            c.matches("server redis-1 127.0.0.1:2 check inter 1s")
                .count(),
            2
        );
        assert!(!c.contains("@HOST@") && !c.contains("_SERVERS@"), "{c}");
    }

    #[test]
    fn up_servers_are_counted_per_backend() {
        let mut f = vec![""; 18];
        let mut line = |b: &'static str, s: &'static str, st: &'static str| {
            f[0] = b;
            f[1] = s;
            f[17] = st;
            f.join(",")
        };
        let csv = [
            line("master_backend", "redis-0", "UP"),
            line("master_backend", "redis-1", "DOWN"),
            line("master_backend", "redis-2", "UP 1/3"),
            line("master_backend", "BACKEND", "UP"),
            line("replica_backend", "redis-1", "UP"),
            line("replica_backend", "redis-2", "UP"),
        ]
        .join("\n");
        // Going down is still in the rotation: not ready yet.
        assert_eq!(up_counts(&csv), (2, 2));
    }
}
