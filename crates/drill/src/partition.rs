//! `--fault partition`: a topology the drill builds for itself, with the
//! master in its own network namespace, so it can be cut off from the
//! sentinels and the replicas while clients still reach it.
//!
//! One veth pair joins the namespace (master at `ns_ip`) to the host. The
//! host end has two addresses in the same /24: `client_ip`, the primary one,
//! which unbound sockets (the proxy, HAProxy, the drill's writers) connect
//! from; and `cluster_ip`, which the replicas and sentinels listen on and
//! connect from (`bind-source-addr`). The cut is two blackhole rules (host:
//! from `cluster_ip` to `ns_ip`; namespace: to `cluster_ip`), so the cluster
//! loses the master while every client still reaches it: the old master
//! goes on acknowledging writes that its replicas never get, which is what a
//! real partition does to asynchronous replication. Healing deletes the
//! rules. Everything (rules, namespace, the veth pair, the processes) is
//! torn down on drop, whatever ended the drill; a namespace left behind by a
//! drill process that was killed outright is removed by the next one.
//!
//! Needs Linux, root and iproute2 (`ip`): [`available`] says why not.

use anyhow::{anyhow, bail, Context};
use redis_ha_local::process;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::tls::Tls;
use redis_ha_resp::Access;
use redis_ha_topology::render::listen_conf;
use redis_ha_topology::Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sentinel's down-after for the partition topology. Not 1 s: on a loaded
/// 2-core machine a stalled sentinel with 1 s once saw every node down and
/// failed over a second time.
pub const DOWN_AFTER_MS: u64 = 2000;
/// Long enough that a first failover completes (the other replica pointed
/// at the new master) before Sentinel may start another: with 3 s a second
/// failover once promoted a replica that had never replicated from the
/// first new master.
pub const FAILOVER_TIMEOUT_MS: u64 = 10_000;

/// Priority of the blackhole rules (below `local`, above `main`).
const RULE_PREF: &str = "1077";
/// Namespaces are named `rhd-<pid>-<n>`.
const NS_PREFIX: &str = "rhd-";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| anyhow!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// Why a partition cannot be made here, if it cannot.
pub fn available() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("--fault partition needs Linux network namespaces".into());
    }
    // /proc/self belongs to the effective user.
    let euid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .map_err(|e| format!("--fault partition needs /proc ({e})"))?;
    if euid != 0 {
        return Err(
            "--fault partition needs root (it creates a network namespace, a veth pair and routing rules); run it with sudo"
                .into(),
        );
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(
            "--fault partition needs iproute2's `ip` on the PATH (apt-get install iproute2)".into(),
        ),
    }
}

/// The addresses of namespace `n` of process `pid` (unique per process and
/// drill, so parallel drills and tests do not collide).
fn addresses(pid: u32, n: u32) -> (String, String, String, String) {
    let id = (pid.wrapping_mul(16).wrapping_add(n)) % 38_400;
    let (a, b) = (100 + id / 256, id % 256);
    let subnet = format!("10.{a}.{b}");
    (
        format!("rhd{id}h"),
        format!("{subnet}.1"), // client_ip (primary)
        format!("{subnet}.2"), // ns_ip
        format!("{subnet}.3"), // cluster_ip
    )
}

/// The namespace, its veth pair and (while cut) the rules.
pub struct Net {
    pub ns: String,
    host_if: String,
    /// What unbound host sockets connect from: clients.
    pub client_ip: String,
    /// The master's address, in the namespace.
    pub ns_ip: String,
    /// Where the replicas and sentinels live and connect from.
    pub cluster_ip: String,
    cut: AtomicBool,
}

impl Net {
    /// Makes the namespace and the link; on error removes what exists.
    pub fn create() -> anyhow::Result<Net> {
        static N: AtomicU32 = AtomicU32::new(0);
        available().map_err(|e| anyhow!(e))?;
        sweep_stale();
        let (pid, n) = (std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let (host_if, client_ip, ns_ip, cluster_ip) = addresses(pid, n);
        let net = Net {
            ns: format!("{NS_PREFIX}{pid}-{n}"),
            host_if,
            client_ip,
            ns_ip,
            cluster_ip,
            cut: AtomicBool::new(false),
        };
        let peer = format!("{}p", net.host_if.trim_end_matches('h'));
        ip(&["netns", "add", &net.ns])?;
        let (client, cluster, inner) = (
            format!("{}/24", net.client_ip),
            format!("{}/24", net.cluster_ip),
            format!("{}/24", net.ns_ip),
        );
        let h = net.host_if.as_str();
        let steps: [&[&str]; 8] = [
            &["link", "add", h, "type", "veth", "peer", "name", &peer],
            &["link", "set", &peer, "netns", &net.ns],
            // The first address is the primary: unbound sockets use it.
            &["addr", "add", &client, "dev", h],
            &["addr", "add", &cluster, "dev", h],
            &["link", "set", h, "up"],
            &["-n", &net.ns, "addr", "add", &inner, "dev", &peer],
            &["-n", &net.ns, "link", "set", &peer, "up"],
            &["-n", &net.ns, "link", "set", "lo", "up"],
        ];
        for s in steps {
            ip(s)?; // on error, Drop removes what exists
        }
        Ok(net)
    }

    fn host_rule(&self, op: &str) -> anyhow::Result<()> {
        ip(&[
            "rule",
            op,
            "from",
            &self.cluster_ip,
            "to",
            &self.ns_ip,
            "blackhole",
            "pref",
            RULE_PREF,
        ])
    }

    fn ns_rule(&self, op: &str) -> anyhow::Result<()> {
        ip(&[
            "-n",
            &self.ns,
            "rule",
            op,
            "to",
            &self.cluster_ip,
            "blackhole",
            "pref",
            RULE_PREF,
        ])
    }

    /// Cuts the master off from the replicas and sentinels.
    pub fn cut(&self) -> anyhow::Result<()> {
        self.cut.store(true, Ordering::SeqCst);
        self.host_rule("add")?;
        self.ns_rule("add")
    }

    /// Joins them again.
    pub fn heal(&self) -> anyhow::Result<()> {
        if !self.cut.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        // Both, even if the first fails.
        let host = self.host_rule("del");
        self.ns_rule("del").and(host)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.heal();
        // The host rule does not go with the namespace.
        let _ = self.host_rule("del");
        // Deleting the namespace deletes its end of the pair, and the pair.
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// Removes what a drill process killed outright (no Drop) left behind: its
/// namespace (and with it the pair) and its host rule.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u32>()) else {
            continue;
        };
        if pid == std::process::id() || process::alive(pid) {
            continue;
        }
        let (host_if, _, ns_ip, cluster_ip) = addresses(pid, n);
        let _ = ip(&[
            "rule",
            "del",
            "from",
            &cluster_ip,
            "to",
            &ns_ip,
            "blackhole",
            "pref",
            RULE_PREF,
        ]);
        let _ = ip(&["netns", "del", name]);
        let _ = ip(&["link", "del", &host_if]);
    }
}

/// The partition topology: the master in the namespace, two replicas and
/// three sentinels (quorum 2) on the host's cluster address. Processes are
/// stopped, then the network removed, on drop.
pub struct Lab {
    pids: Vec<u32>,
    // Dropped after the processes (see Drop).
    net: Option<Net>,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    pub master: Addr,
    pub replicas: Vec<Addr>,
    pub sentinels: Vec<Addr>,
    pub master_name: String,
    /// `min-replicas-to-write` on the master (what bounds the writes an
    /// isolated master accepts).
    pub min_replicas_to_write: u32,
    /// With `tls`: what clients (the drill, its proxy) connect with; the
    /// nodes and sentinels are TLS only, as under `up --tls`.
    pub tls: Option<Arc<Tls>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pid in &self.pids {
            process::terminate(*pid, Duration::from_secs(2));
        }
        drop(self.net.take());
    }
}

fn write_conf(dir: &Path, name: &str, body: &str) -> anyhow::Result<PathBuf> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let p = d.join(if name.starts_with('s') {
        "sentinel.conf"
    } else {
        "redis.conf"
    });
    std::fs::write(&p, body)?;
    Ok(p)
}

impl Lab {
    /// Builds and starts it (with `tls`, TLS only: its own CA in the lab's
    /// dir), and waits until replication runs and every sentinel knows the
    /// other two and both replicas.
    pub async fn start(min_replicas_to_write: u32, tls: bool) -> anyhow::Result<Lab> {
        let redis = process::require_binary("redis-server")?;
        let sentinel_bin = process::require_binary("redis-sentinel")
            .or_else(|_| process::require_binary("redis-server"))?;
        let net = Net::create()?;
        let tmp = tempfile::Builder::new()
            .prefix("redis-ha-partition")
            .tempdir()?;
        let dir = tmp.path().to_path_buf();
        // The namespace has ports of its own; the host's are asked for.
        let ports = redis_ha_local::ports::free_ports(&net.cluster_ip, 6)?;
        let (m_port, r_ports, s_ports) = (ports[0], &ports[1..3], &ports[3..6]);
        let master = format!("{}:{m_port}", net.ns_ip);
        let mut lab = Lab {
            pids: vec![],
            net: None,
            dir: dir.clone(),
            _tmp: tmp,
            master: master.clone(),
            replicas: r_ports
                .iter()
                .map(|p| format!("{}:{p}", net.cluster_ip))
                .collect(),
            sentinels: s_ports
                .iter()
                .map(|p| format!("{}:{p}", net.cluster_ip))
                .collect(),
            master_name: "mymaster".into(),
            min_replicas_to_write,
            tls: None,
        };
        let pki = redis_ha_local::pki::Pki::new(&dir);
        let files = if tls {
            pki.ensure(&[&net.ns_ip, &net.cluster_ip])?;
            lab.tls = Some(pki.client_tls()?);
            Some(pki.node_files())
        } else {
            None
        };
        let listen = |port: u16| listen_conf(files.as_ref(), port);
        let ns = net.ns.clone();
        let (cluster_ip, ns_ip) = (net.cluster_ip.clone(), net.ns_ip.clone());
        lab.net = Some(net);
        let node = |d: &Path, port: u16, bind: &str, extra: &str| {
            format!(
                "{}bind {bind}\nprotected-mode no\ndir {}\nsave \"\"\nappendonly no\nrepl-timeout 5\n{extra}\n",
                listen(port),
                d.display()
            )
        };
        let min = if min_replicas_to_write > 0 {
            format!("min-replicas-to-write {min_replicas_to_write}\nmin-replicas-max-lag 10\n")
        } else {
            String::new()
        };
        let conf = write_conf(&dir, "m", &node(&dir.join("m"), m_port, &ns_ip, &min))?;
        let ip_bin = Path::new("ip");
        let args = |bin: &Path, conf: &Path| -> Vec<String> {
            vec![
                "netns".into(),
                "exec".into(),
                ns.clone(),
                bin.display().to_string(),
                conf.display().to_string(),
            ]
        };
        let log = dir.join("m/redis.log");
        lab.pids.push(process::spawn_args(
            ip_bin,
            &args(&redis, &conf),
            &[],
            &log,
            true,
        )?);
        for (i, p) in r_ports.iter().enumerate() {
            let name = format!("r{i}");
            let extra = format!("replicaof {ns_ip} {m_port}\nbind-source-addr {cluster_ip}\n{min}");
            let conf = write_conf(
                &dir,
                &name,
                &node(&dir.join(&name), *p, &cluster_ip, &extra),
            )?;
            let log = dir.join(format!("{name}/redis.log"));
            lab.pids.push(process::spawn(&redis, &conf, &log, true)?);
        }
        for (i, p) in s_ports.iter().enumerate() {
            let name = format!("s{i}");
            let d = dir.join(&name);
            let body = format!(
                "{}bind {cluster_ip}\nbind-source-addr {cluster_ip}\nprotected-mode no\ndir {d}\n\
                 sentinel monitor mymaster {ns_ip} {m_port} 2\n\
                 sentinel down-after-milliseconds mymaster {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout mymaster {FAILOVER_TIMEOUT_MS}\n",
                listen(*p),
                d = d.display(),
            );
            let conf = write_conf(&dir, &name, &body)?;
            let log = d.join("sentinel.log");
            let pid = if sentinel_bin.ends_with("redis-sentinel") {
                process::spawn(&sentinel_bin, &conf, &log, true)?
            } else {
                let a = [conf.display().to_string(), "--sentinel".into()];
                process::spawn_args(&sentinel_bin, &a, &[], &log, true)?
            };
            lab.pids.push(pid);
        }
        lab.wait_ready(Instant::now() + Duration::from_secs(40))
            .await?;
        Ok(lab)
    }

    /// How clients reach its nodes and sentinels (no passwords; TLS if on).
    pub fn access(&self) -> Access {
        Access {
            login: None,
            tls: self.tls.clone(),
        }
    }

    async fn wait_ready(&self, deadline: Instant) -> anyhow::Result<()> {
        let t = Duration::from_secs(1);
        loop {
            let synced = match query_auth(
                &self.master,
                Some(&self.access()),
                &["INFO", "replication"],
                t,
            )
            .await
            {
                Ok(f) => {
                    let s = f.as_text().unwrap_or_default();
                    s.matches("state=online").count() == self.replicas.len()
                }
                Err(_) => false,
            };
            let mut sentinels_ready = synced;
            for s in &self.sentinels {
                if !sentinels_ready {
                    break;
                }
                // Replicas are learned from the master's INFO every 10 s: a
                // sentinel that knows none yet could not fail over.
                sentinels_ready = sentinel_knows_all(s, &self.access(), &self.master_name).await;
            }
            if sentinels_ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the partition topology in {} did not come up (replication in sync: {synced})",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn net(&self) -> anyhow::Result<&Net> {
        self.net.as_ref().context("the partition network is gone")
    }

    /// Cuts the master off from the cluster (clients still reach it).
    pub fn cut(&self) -> anyhow::Result<()> {
        self.net()?.cut()
    }

    pub fn heal(&self) -> anyhow::Result<()> {
        self.net()?.heal()
    }

    /// The namespace's name (to check it is gone after the drill).
    pub fn namespace(&self) -> Option<&str> {
        self.net.as_ref().map(|n| n.ns.as_str())
    }

    /// Every Redis node, master first.
    pub fn redis_addrs(&self) -> Vec<Addr> {
        [self.master.clone()]
            .into_iter()
            .chain(self.replicas.iter().cloned())
            .collect()
    }
}

/// The sentinel sees two others and both replicas.
async fn sentinel_knows_all(s: &str, access: &Access, name: &str) -> bool {
    let ask = ["SENTINEL", "MASTER", name];
    let Ok(f) = query_auth(s, Some(access), &ask, Duration::from_secs(1)).await else {
        return false;
    };
    let Some(v) = f.as_array() else {
        return false;
    };
    let field = |k: &str| {
        v.chunks(2)
            .find(|kv| kv[0].as_text().as_deref() == Some(k))
            .and_then(|kv| kv[1].as_text())
    };
    field("num-other-sentinels").as_deref() == Some("2")
        && field("num-slaves").as_deref() == Some("2")
}

/// Whether a network namespace of this name exists.
pub fn namespace_exists(ns: &str) -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_one_subnet_per_drill_and_names_fit_an_interface() {
        let (h, client, ns, cluster) = addresses(4_000_000, 3);
        assert!(h.len() < 15, "{h}");
        let net = |a: &str| a.rsplit_once('.').unwrap().0.to_string();
        assert_eq!(net(&client), net(&ns));
        assert_eq!(net(&cluster), net(&ns));
        assert_ne!(addresses(4_000_000, 4).2, ns);
        for a in [&client, &ns, &cluster] {
            let octets: Vec<u32> = a.split('.').map(|o| o.parse().unwrap()).collect();
            assert!(octets.iter().all(|o| *o < 256), "{a}");
        }
    }
}
