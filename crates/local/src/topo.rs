//! A topology on this machine: layout of the state dir, start, health, and
//! the fault actions the drills use (kill, stop, cont, restart).

use crate::pki::Pki;
use crate::{info_period, ports, process};
use anyhow::{anyhow, bail, Context};
use nix::sys::signal::Signal;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::tls::Tls;
use redis_ha_resp::{Access, Login};
use redis_ha_topology::acl::User;
use redis_ha_topology::info::{parse_info, Role};
use redis_ha_topology::promotion::Promotion;
use redis_ha_topology::render::{self, RedisNode, SentinelNode};
use redis_ha_topology::role;
use redis_ha_topology::spec::MIN_DOWN_AFTER_MS;
use redis_ha_topology::{addr, sentinel, split_addr, Addr, Spec};
use redis_ha_topology::{boot, boot_inputs};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a Redis node waits for a safe boot role before the start fails.
const BOOT_WAIT: Duration = Duration::from_secs(90);
/// Where test topologies keep their state: `/dev/shm` when it has room, so
/// nothing waits on a busy disk's fsync (Sentinel fsyncs its config on every
/// change, and a stall of more than 2 s puts it in TILT mode for 30 s).
fn test_state_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let free = nix::sys::statvfs::statvfs(shm)
        .map(|v| v.blocks_available() * v.fragment_size())
        .unwrap_or(0);
    if free >= 2 << 30 {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `REDIS_HA_TLS=1`: test topologies run on TLS only (the TLS matrix of
/// scripts/test.sh); unset or `0`: plain TCP.
fn tls_from_env() -> anyhow::Result<bool> {
    match std::env::var("REDIS_HA_TLS").as_deref() {
        Err(_) | Ok("" | "0") => Ok(false),
        Ok("1") => Ok(true),
        Ok(v) => bail!("REDIS_HA_TLS={v:?}: use 1 (TLS topologies) or 0"),
    }
}

/// How long Sentinel stays in TILT mode (`SENTINEL_TILT_PERIOD`), plus slack.
const TILT_PERIOD: Duration = Duration::from_secs(35);

/// Everything needed to find and run a topology. Saved as
/// `topology.json` in the state dir so later commands find the same layout.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Options {
    pub spec: Spec,
    /// Address every process binds to.
    pub host: String,
    pub redis_ports: Vec<u16>,
    pub sentinel_ports: Vec<u16>,
    pub state_dir: PathBuf,
    /// The proxy's endpoints, when the supervisor runs one.
    #[serde(default)]
    pub proxy: Option<ProxyPorts>,
    /// redis_exporter ports (`up --metrics`), one per node.
    #[serde(default)]
    pub exporters: Option<crate::exporter::Exporters>,
}

/// Where the supervised `redis-ha proxy` listens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProxyPorts {
    pub write: u16,
    pub read: u16,
    pub admin: u16,
    /// Extra `redis-ha proxy` flags (e.g. `--mode multiplex`).
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Redis(usize),
    Sentinel(usize),
    Proxy,
}

impl Options {
    /// Defaults for `redis-ha up`: Redis nodes from 6381, sentinels from
    /// 26380, so neither a system Redis (6379) nor a system Sentinel (26379)
    /// collides, and the proxy can take 6379/6380/8404.
    pub fn with_defaults(spec: Spec, state_dir: PathBuf) -> Options {
        let host = "127.0.0.1".to_string();
        let redis_ports = (0..spec.redis_nodes).map(|i| 6381 + i as u16).collect();
        let sentinel_ports = (0..spec.sentinels).map(|i| 26380 + i as u16).collect();
        Options {
            spec,
            host,
            redis_ports,
            sentinel_ports,
            state_dir,
            proxy: Some(ProxyPorts {
                write: 6379,
                read: 6380,
                admin: 8404,
                args: vec![],
            }),
            exporters: None,
        }
    }

    /// A test topology on free ports in `dir`, with fast failure detection:
    /// `down_after_ms`, but never below [`MIN_DOWN_AFTER_MS`] (a shorter one
    /// lets Sentinel fail over a healthy new master a second time).
    pub fn for_test(dir: &Path, down_after_ms: u64) -> anyhow::Result<Options> {
        let spec = Spec {
            down_after_ms: down_after_ms.max(MIN_DOWN_AFTER_MS),
            failover_timeout_ms: 10_000,
            engine: redis_ha_topology::Engine::from_env().map_err(anyhow::Error::msg)?,
            tls: tls_from_env()?.then(|| Pki::new(dir).node_files()),
            ..Spec::default()
        };
        let host = "127.0.0.1".to_string();
        let ports = ports::free_ports(&host, spec.redis_nodes + spec.sentinels)?;
        Ok(Options {
            redis_ports: ports[..spec.redis_nodes].to_vec(),
            sentinel_ports: ports[spec.redis_nodes..].to_vec(),
            spec,
            host,
            state_dir: dir.to_path_buf(),
            proxy: None,
            exporters: None,
        })
    }

    /// The host every node is known by: `localhost` when the spec
    /// announces hostnames (the ports keep the nodes apart), else the bind
    /// address.
    pub fn announce_host(&self) -> &str {
        if self.spec.announce_hostnames {
            "localhost"
        } else {
            &self.host
        }
    }

    /// The Redis nodes as the sentinels report them.
    pub fn redis_addrs(&self) -> Vec<Addr> {
        self.redis_ports
            .iter()
            .map(|p| addr(self.announce_host(), *p))
            .collect()
    }

    pub fn sentinel_addrs(&self) -> Vec<Addr> {
        self.sentinel_ports
            .iter()
            .map(|p| addr(self.announce_host(), *p))
            .collect()
    }

    /// `(address as the sentinels report it, name)` of every Redis node
    /// and sentinel: `redis-0`..., `sentinel-0`...
    pub fn named_addrs(&self) -> Vec<(Addr, String)> {
        let redis = self.redis_addrs().into_iter().enumerate();
        let sentinels = self.sentinel_addrs().into_iter().enumerate();
        redis
            .map(|(i, a)| (a, Spec::redis_name(i)))
            .chain(sentinels.map(|(i, a)| (a, Spec::sentinel_name(i))))
            .collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        (0..self.redis_ports.len())
            .map(Spec::redis_name)
            .chain((0..self.sentinel_ports.len()).map(Spec::sentinel_name))
            .chain(self.proxy.as_ref().map(|_| "proxy".to_string()))
            .collect()
    }

    /// Parses `redis-N` / `sentinel-N`; the error lists the valid names.
    pub fn node(&self, name: &str) -> anyhow::Result<NodeKind> {
        let parse = |prefix: &str, n: usize| {
            name.strip_prefix(prefix)
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < n)
        };
        if let Some(i) = parse("redis-", self.redis_ports.len()) {
            return Ok(NodeKind::Redis(i));
        }
        if let Some(i) = parse("sentinel-", self.sentinel_ports.len()) {
            return Ok(NodeKind::Sentinel(i));
        }
        if name == "proxy" && self.proxy.is_some() {
            return Ok(NodeKind::Proxy);
        }
        bail!(
            "unknown node {name:?}: expected one of {}",
            self.node_names().join(", ")
        )
    }

    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.node_dir(name).join("pid")
    }

    pub fn node_addr(&self, kind: NodeKind) -> Addr {
        match kind {
            NodeKind::Redis(i) => addr(self.announce_host(), self.redis_ports[i]),
            NodeKind::Sentinel(i) => addr(self.announce_host(), self.sentinel_ports[i]),
            NodeKind::Proxy => addr(
                &self.host,
                self.proxy.as_ref().map(|p| p.write).unwrap_or(0),
            ),
        }
    }

    fn kind_name(kind: NodeKind) -> String {
        match kind {
            NodeKind::Redis(i) => Spec::redis_name(i),
            NodeKind::Sentinel(i) => Spec::sentinel_name(i),
            NodeKind::Proxy => "proxy".to_string(),
        }
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.state_dir.join("topology.json")
    }

    pub fn save(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.state_dir)
            .with_context(|| format!("cannot create state dir {}", self.state_dir.display()))?;
        // It holds the spec, passwords included.
        crate::secrets::write_private(&self.manifest_path(), &serde_json::to_string_pretty(self)?)?;
        crate::secrets::write_password_files(&self.state_dir, &self.spec)?;
        Ok(())
    }

    /// Loads the options saved in a state dir.
    /// The CA and certificates of a `--tls` topology; `None`: plain TCP.
    pub fn pki(&self) -> Option<Pki> {
        self.spec.tls.as_ref().map(|_| Pki::new(&self.state_dir))
    }

    /// The TLS every client of this topology uses: trust its CA, present
    /// its client certificate (the nodes require one); `None`: plain TCP.
    pub fn client_tls(&self) -> anyhow::Result<Option<Arc<Tls>>> {
        self.pki().map(|p| p.client_tls()).transpose()
    }

    /// How tools reach the Redis nodes and the proxy: the default user's
    /// password, over TLS when the topology has it.
    pub fn redis_access(&self) -> anyhow::Result<Access> {
        Ok(Access {
            login: self.spec.password.as_deref().map(Login::default_user),
            tls: self.client_tls()?,
        })
    }

    /// How tools reach the sentinels: their own password, TLS likewise.
    pub fn sentinel_access(&self) -> anyhow::Result<Access> {
        Ok(Access {
            login: self
                .spec
                .sentinel_password
                .as_deref()
                .map(Login::default_user),
            tls: self.client_tls()?,
        })
    }

    pub fn load(state_dir: &Path) -> anyhow::Result<Options> {
        let p = state_dir.join("topology.json");
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "no topology in {} (missing {}): start one with `redis-ha up`",
                state_dir.display(),
                p.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a redis-ha topology file", p.display()))
    }
}

/// A topology started by this process. With `attached`, dropping it kills
/// every process (tests, foreground `up`); detached ones keep running.
pub struct Topology {
    pub opts: Options,
    attached: bool,
    _tmp: Option<tempfile::TempDir>,
    /// How this supervisor reaches the nodes and the sentinels.
    redis: Access,
    sentinel: Access,
}

impl Topology {
    /// Starts a fresh test topology in a temporary directory on free ports.
    /// Tests run in parallel: a port found free can be taken by another
    /// test's node before ours binds it, so a failed start is retried on
    /// fresh ports (twice).
    pub async fn start_test(down_after_ms: u64) -> anyhow::Result<Topology> {
        Topology::start_test_with(down_after_ms, |_| {}).await
    }

    /// [`Topology::start_test`] with the spec changed by `tweak` (a
    /// password, say).
    pub async fn start_test_with(
        down_after_ms: u64,
        tweak: impl Fn(&mut Spec),
    ) -> anyhow::Result<Topology> {
        let mut attempt = 0;
        loop {
            let tmp = tempfile::Builder::new()
                .prefix("redis-ha-test-")
                .tempdir_in(test_state_root())?;
            let mut opts = Options::for_test(tmp.path(), down_after_ms)?;
            tweak(&mut opts.spec);
            match Topology::start(opts, true).await {
                Ok(mut t) => {
                    // REDIS_HA_KEEP_TEST_STATE=1 keeps the logs and files of
                    // every test topology (to read after a failure).
                    if std::env::var_os("REDIS_HA_KEEP_TEST_STATE").is_some() {
                        eprintln!("keeping test state in {}", tmp.keep().display());
                    } else {
                        t._tmp = Some(tmp);
                    }
                    return Ok(t);
                }
                Err(e) if attempt < 2 => {
                    attempt += 1;
                    eprintln!("test topology did not start ({e:#}); retrying on other ports");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts every node, then waits until healthy.
    pub async fn start(opts: Options, attached: bool) -> anyhow::Result<Topology> {
        Topology::start_with(opts, attached, &|_| {}).await
    }

    /// [`Topology::start`], reporting each step ("starting redis-0", "waiting
    /// for replication", ...) to `step` for a progress display.
    pub async fn start_with(
        opts: Options,
        attached: bool,
        step: &(dyn Fn(&str) + Send + Sync),
    ) -> anyhow::Result<Topology> {
        opts.spec.validate()?;
        let engine = opts.spec.engine;
        let redis_bin = process::server_launch(engine)?;
        let sentinel_bin = process::sentinel_launch(engine)?;
        let node_ports = opts
            .node_names()
            .into_iter()
            .zip(opts.redis_ports.iter().chain(&opts.sentinel_ports).copied());
        let proxy_ports = opts.proxy.iter().flat_map(|p| {
            [
                ("proxy write endpoint".to_string(), p.write),
                ("proxy read endpoint".to_string(), p.read),
                ("proxy admin".to_string(), p.admin),
            ]
        });
        let exporter_ports = crate::exporter::plan(&opts).into_iter().map(|p| {
            let port = p.listen.rsplit(':').next().and_then(|x| x.parse().ok());
            (format!("the exporter of {}", p.node), port.unwrap_or(0))
        });
        for (name, port) in node_ports.chain(proxy_ports).chain(exporter_ports) {
            if ports::in_use(&opts.host, port) {
                bail!(
                    "port {port} for {name} is already in use on {}: stop what uses it, or choose other ports (see `redis-ha up --help`)",
                    opts.host
                );
            }
        }
        if let Some(pki) = opts.pki() {
            step(&format!(
                "TLS: CA and certificates in {}",
                pki.dir.display()
            ));
            pki.ensure(&[&opts.host])?;
        }
        opts.save()?;
        let t = Topology::new(opts, attached)?;
        let result = async {
            let o = &t.opts;
            // Sentinels first: a Redis node takes its role only once a
            // majority of them answers. The Redis nodes start together, as
            // one may wait for another (an empty named master hands over
            // to a replica with data).
            for (i, a) in o.sentinel_addrs().iter().enumerate() {
                step(&format!("starting {} on {a}", Spec::sentinel_name(i)));
                t.start_sentinel(i, &sentinel_bin).await?;
            }
            for (i, a) in o.redis_addrs().iter().enumerate() {
                step(&format!("starting {} on {a}", Spec::redis_name(i)));
            }
            let starts = (0..o.redis_addrs().len()).map(|i| t.start_redis(i, &redis_bin));
            futures::future::try_join_all(starts).await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            step("waiting for replication (master_link_status:up on every replica)");
            poll_until(deadline, || t.replication_health()).await?;
            step("waiting for sentinels to agree (master, replicas, other sentinels)");
            t.healthy_by(deadline).await?;
            if let Some(p) = &o.proxy {
                step(&format!(
                    "starting proxy on {} (waiting for PING)",
                    addr(&o.host, p.write)
                ));
                t.start_proxy().await?;
            }
            // Without the binary, `up` says so; the topology runs without.
            if let Ok(started) = crate::exporter::start_all(o, t.attached)? {
                if !started.is_empty() {
                    step(&format!("redis_exporter: {}", started.join(", ")));
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // Nothing is left half-started.
            t.stop_all();
            return Err(e);
        }
        Ok(t)
    }

    /// Adopts a running detached topology (for `down`, `node`, `status`).
    pub fn open(state_dir: &Path) -> anyhow::Result<Topology> {
        Topology::new(Options::load(state_dir)?, false)
    }

    fn new(opts: Options, attached: bool) -> anyhow::Result<Topology> {
        Ok(Topology {
            redis: opts.redis_access()?,
            sentinel: opts.sentinel_access()?,
            opts,
            attached,
            _tmp: None,
        })
    }

    /// How to reach the Redis nodes (and the proxy): login and TLS.
    pub fn redis_access(&self) -> &Access {
        &self.redis
    }

    /// How to reach the sentinels.
    pub fn sentinel_access(&self) -> &Access {
        &self.sentinel
    }

    pub fn detach(&mut self) {
        self.attached = false;
    }

    pub fn redis_addrs(&self) -> Vec<Addr> {
        self.opts.redis_addrs()
    }

    pub fn sentinel_addrs(&self) -> Vec<Addr> {
        self.opts.sentinel_addrs()
    }

    /// The pid of a node if its process is alive. A stale pid file whose
    /// number now belongs to an unrelated process does not count: the
    /// process must carry the node's port on its command line (Redis and
    /// Sentinel set their title to `host:port`; the proxy has `--port N`).
    pub fn pid(&self, name: &str) -> Option<u32> {
        let port = self.opts.node_addr(self.opts.node(name).ok()?);
        let port = split_addr(&port)?.1.to_string();
        process::read_pid(&self.opts.pid_file(name))
            .filter(|p| process::alive(*p))
            .filter(|p| {
                process::cmdline(*p)
                    .split(|c: char| c == ':' || c.is_whitespace())
                    .any(|w| w == port)
            })
    }

    /// Names of nodes whose processes are alive.
    pub fn running(&self) -> Vec<String> {
        self.opts
            .node_names()
            .into_iter()
            .filter(|n| self.pid(n).is_some())
            .collect()
    }

    /// The boot role of redis-`i` (see [`crate::boot`]): waits while the
    /// sentinels are silent or split, hands the role over when the node is
    /// empty but named master. Every other node's data directory is on
    /// this machine, so their data is seen even while they are stopped.
    async fn boot_role(
        &self,
        i: usize,
    ) -> anyhow::Result<(crate::boot::Role, redis_ha_topology::boot::Reason)> {
        let o = &self.opts;
        let me = o.redis_addrs()[i].clone();
        let first = o.redis_addrs()[0].clone();
        let peers = o
            .redis_addrs()
            .into_iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, a)| (a, Some(self.data_dir(j))))
            .collect();
        let q = crate::boot::Query {
            sentinels: &o.sentinel_addrs(),
            sentinel_access: &self.sentinel,
            redis_access: &self.redis,
            master_name: &o.spec.master_name,
            me: &me,
            data_dir: self.data_dir(i),
            peers,
            first_master: &first,
            timeout: IO_TIMEOUT,
            max_wait: Some(BOOT_WAIT),
        };
        let name = Spec::redis_name(i);
        let (role, why) = crate::boot::decide(&q, &|l| eprintln!("{name}: {l}")).await?;
        tracing::info!("{}", crate::boot::describe(&me, &role, &why));
        Ok((role, why))
    }

    /// Where redis-`i` keeps its RDB and AOF files.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.opts.node_dir(&Spec::redis_name(i)).join("data")
    }

    async fn start_redis(&self, i: usize, bin: &process::Launch) -> anyhow::Result<()> {
        // The same decision as the Kubernetes init container's `redis-ha
        // init-role`: follow the master a majority of the sentinels name,
        // never start empty as master, choose by data when they have no
        // history.
        let (role, why) = self.boot_role(i).await?;
        let promotion = crate::boot::promotion(&role, &why);
        self.start_redis_as(i, bin, &role, promotion).await
    }

    /// Starts redis-`i` in `role` as decided elsewhere (a test that runs
    /// `redis-ha init-role` as the Kubernetes pods do, then starts the node
    /// from its answer).
    pub async fn start_redis_in_role(
        &self,
        i: usize,
        role: &crate::boot::Role,
        promotion: Promotion,
    ) -> anyhow::Result<()> {
        let bin = process::server_launch(self.opts.spec.engine)?;
        self.start_redis_as(i, &bin, role, promotion).await
    }

    async fn start_redis_as(
        &self,
        i: usize,
        bin: &process::Launch,
        role: &crate::boot::Role,
        promotion: Promotion,
    ) -> anyhow::Result<()> {
        let o = &self.opts;
        let name = Spec::redis_name(i);
        let dir = o.node_dir(&name);
        std::fs::create_dir_all(dir.join("data"))?;
        crate::secrets::make_private(&dir)?;
        let me = addr(o.announce_host(), o.redis_ports[i]);
        let replica_of = match role {
            crate::boot::Role::Master => None,
            crate::boot::Role::ReplicaOf(m) => split_addr(m),
        };
        let node = RedisNode {
            bind: o.host.clone(),
            port: o.redis_ports[i],
            dir: dir.join("data").display().to_string(),
            replica_of,
            announce: o
                .spec
                .announce_hostnames
                .then(|| (o.announce_host().to_string(), o.redis_ports[i])),
            logfile: None,
            pidfile: None,
            promotion,
        };
        let conf = dir.join("redis.conf");
        crate::secrets::write_private(&conf, &render::redis_conf(&o.spec, &node))?;
        let pid = process::spawn_launch(bin, &conf, &dir.join("redis.log"), self.attached)?;
        std::fs::write(o.pid_file(&name), pid.to_string())?;
        wait_ping(&me, &self.redis, pid, &dir.join("redis.log"), true).await?;
        if promotion == Promotion::AfterSync {
            crate::replica_guard::start_local(self, i)?;
        }
        Ok(())
    }

    async fn start_sentinel(&self, i: usize, bin: &process::Launch) -> anyhow::Result<()> {
        let o = &self.opts;
        let name = Spec::sentinel_name(i);
        let dir = o.node_dir(&name);
        std::fs::create_dir_all(&dir)?;
        crate::secrets::make_private(&dir)?;
        let conf = dir.join("sentinel.conf");
        // Sentinel rewrites its file with what it learns (current master,
        // epochs, peers); only a first start gets a freshly rendered one.
        if !conf.exists() {
            let m = self.master_for_new_sentinel().await;
            let master = split_addr(&m).ok_or_else(|| anyhow!("bad master address"))?;
            // Every other node is its replica: said up front, the sentinel
            // does not wait for the master's next INFO (10 s) to learn them.
            let known_replicas = o
                .redis_addrs()
                .iter()
                .filter(|a| **a != m)
                .filter_map(|a| split_addr(a))
                .collect();
            let node = SentinelNode {
                bind: o.host.clone(),
                port: o.sentinel_ports[i],
                dir: dir.display().to_string(),
                master,
                known_replicas,
                announce: o
                    .spec
                    .announce_hostnames
                    .then(|| (o.announce_host().to_string(), o.sentinel_ports[i])),
                logfile: None,
                pidfile: None,
            };
            crate::secrets::write_private(&conf, &render::sentinel_conf(&o.spec, &node))?;
        }
        let pid = process::spawn_launch(bin, &conf, &dir.join("sentinel.log"), self.attached)?;
        std::fs::write(o.pid_file(&name), pid.to_string())?;
        wait_ping(
            &addr(&o.host, o.sentinel_ports[i]),
            &self.sentinel,
            pid,
            &dir.join("sentinel.log"),
            true,
        )
        .await
    }

    /// What a sentinel starting without its state monitors: the master the
    /// sentinels with a history name; when none has one, the node with the
    /// newest data (running, or its files; never chosen by index); with no
    /// data anywhere, redis-0 (a first boot).
    async fn master_for_new_sentinel(&self) -> Addr {
        let o = &self.opts;
        let spw = Some(&self.sentinel);
        let answers: Vec<boot::SentinelAnswer> =
            boot_inputs::ask_sentinels(&o.sentinel_addrs(), spw, &o.spec.master_name, IO_TIMEOUT)
                .await
                .into_iter()
                .map(|(_, a)| a.unwrap_or(boot::SentinelAnswer::Silent))
                .collect();
        if let Some(m) = boot::named_with_history(&answers) {
            return m;
        }
        let mut nodes = Vec::new();
        for (i, a) in o.redis_addrs().into_iter().enumerate() {
            let p = match boot_inputs::probe(&a, Some(&self.redis), IO_TIMEOUT).await {
                Some(r) => boot::Peer::Running(r),
                None => boot::Peer::Stopped(boot_inputs::disk(&self.data_dir(i))),
            };
            nodes.push((a, p));
        }
        boot::newest_of(&nodes).unwrap_or_else(|| o.redis_addrs()[0].clone())
    }

    /// Polls until one master, all replicas linked, and every sentinel sees
    /// the master, all replicas and all other sentinels.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        self.healthy_by(Instant::now() + timeout).await
    }

    /// [`Topology::wait_healthy`] until `deadline`, the sentinels' INFO
    /// period shortened meanwhile (info_period.rs).
    async fn healthy_by(&self, deadline: Instant) -> anyhow::Result<()> {
        let healthy = poll_until(deadline, || self.health());
        let sentinels = self.opts.sentinel_addrs();
        info_period::while_waiting(&sentinels, &self.sentinel, healthy).await
    }

    /// `Ok` when healthy, else the first reason it is not.
    pub async fn health(&self) -> anyhow::Result<()> {
        let master = self.replication_health().await?;
        self.sentinel_health(&master).await
    }

    /// Exactly one master and every replica linked to it; returns the master.
    pub async fn replication_health(&self) -> anyhow::Result<Addr> {
        let o = &self.opts;
        let pw = Some(&self.redis);
        let mut masters = Vec::new();
        for a in o.redis_addrs() {
            let f = query_auth(&a, pw, &["ROLE"], IO_TIMEOUT)
                .await
                .with_context(|| format!("{a} does not answer"))?;
            if let Some(Role::Master { .. }) = Role::from_frame(&f) {
                masters.push(a.clone());
            }
        }
        let [master] = masters.as_slice() else {
            bail!("expected exactly one master, found {masters:?}");
        };
        for a in o.redis_addrs().iter().filter(|a| *a != master) {
            let f = query_auth(a, pw, &["INFO", "replication"], IO_TIMEOUT).await?;
            let info = parse_info(&f.as_text().unwrap_or_default());
            let link = info
                .get("master_link_status")
                .map(String::as_str)
                .unwrap_or("?");
            let follows = info.get("master_port").and_then(|p| p.parse::<u16>().ok());
            if link != "up" || follows != split_addr(master).map(|m| m.1) {
                bail!("{a}: link to master {master} is {link}");
            }
        }
        Ok(master.clone())
    }

    /// Every sentinel sees `master`, all replicas and all other sentinels.
    async fn sentinel_health(&self, master: &str) -> anyhow::Result<()> {
        let o = &self.opts;
        let n_rep = o.redis_ports.len() - 1;
        let n_sen = o.sentinel_ports.len() - 1;
        let spw = Some(&self.sentinel);
        for s in o.sentinel_addrs() {
            let m = sentinel::master_info(&s, spw, &o.spec.master_name, IO_TIMEOUT).await?;
            let get = |k: &str| m.get(k).cloned().unwrap_or_default();
            let seen = addr(&get("ip"), get("port").parse().unwrap_or(0));
            if seen != master || get("flags") != "master" {
                bail!(
                    "sentinel {s} sees master {seen} with flags {}",
                    get("flags")
                );
            }
            if get("num-slaves").parse() != Ok(n_rep)
                || get("num-other-sentinels").parse() != Ok(n_sen)
            {
                bail!(
                    "sentinel {s} sees {} replicas and {} other sentinels (want {n_rep} and {n_sen})",
                    get("num-slaves"),
                    get("num-other-sentinels")
                );
            }
            // A replica the sentinel still flags as down is not yet usable.
            let reps = sentinel::replicas(&s, spw, &o.spec.master_name, IO_TIMEOUT).await?;
            if let Some(r) = reps.iter().find(|r| sentinel::entry_flags(r) != ["slave"]) {
                bail!(
                    "sentinel {s} flags replica {:?} as {:?}",
                    sentinel::entry_addr(r),
                    r.get("flags")
                );
            }
            // A restarted replica is promotable once synced (replica_guard.rs);
            // the sentinel sees that at its next INFO (info_period.rs).
            if let Some(r) = reps.iter().find(|r| sentinel::entry_priority(r) == Some(0)) {
                bail!(
                    "sentinel {s} sees replica {:?} as not promotable yet (replica-priority 0 until it has synced)",
                    sentinel::entry_addr(r)
                );
            }
        }
        Ok(())
    }

    /// The master as most sentinels report it.
    pub async fn master(&self) -> anyhow::Result<Addr> {
        let views = role::ask(
            &self.sentinel_addrs(),
            Some(&self.sentinel),
            &self.opts.spec.master_name,
            IO_TIMEOUT,
        )
        .await;
        views
            .agreement
            .most_named()
            .cloned()
            .ok_or_else(|| anyhow!("no sentinel knows the master"))
    }

    /// The node name (`redis-N`) of an address.
    pub fn name_of(&self, a: &str) -> Option<String> {
        self.redis_addrs()
            .iter()
            .position(|x| x == a)
            .map(Spec::redis_name)
    }

    /// Polls the sentinels until they report a master other than `old`.
    /// A sentinel in TILT mode (a stalled machine) does not fail over for
    /// 30 s: the deadline is extended once by that much, and said.
    pub async fn wait_new_master(&self, old: &str, timeout: Duration) -> anyhow::Result<Addr> {
        let mut deadline = Instant::now() + timeout;
        let mut extended = false;
        loop {
            if let Ok(m) = self.master().await {
                if m != old {
                    return Ok(m);
                }
            }
            if !extended && self.sentinels_in_tilt().await > 0 {
                extended = true;
                deadline += TILT_PERIOD;
                eprintln!(
                    "sentinels in TILT mode: waiting {TILT_PERIOD:?} longer for the failover"
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "no new master within {timeout:?} (still {old}); sentinels: {}",
                    self.describe_sentinels().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many sentinels are in TILT mode now.
    pub async fn sentinels_in_tilt(&self) -> usize {
        let pw = Some(&self.sentinel);
        let mut n = 0;
        for s in self.sentinel_addrs() {
            if sentinel::in_tilt(&s, pw, IO_TIMEOUT).await.unwrap_or(false) {
                n += 1;
            }
        }
        n
    }

    /// Each sentinel's flags for the master, failover state and TILT, for
    /// an error message.
    async fn describe_sentinels(&self) -> String {
        let pw = Some(&self.sentinel);
        let name = &self.opts.spec.master_name;
        let mut out = Vec::new();
        for s in self.sentinel_addrs() {
            let tilt = sentinel::in_tilt(&s, pw, IO_TIMEOUT).await.unwrap_or(false);
            let line = match sentinel::master_info(&s, pw, name, IO_TIMEOUT).await {
                Ok(m) => format!(
                    "{s} flags={} failover-state={} other-sentinels={}{}",
                    m.get("flags").map_or("?", |v| v.as_str()),
                    m.get("failover-state").map_or("?", |v| v.as_str()),
                    m.get("num-other-sentinels").map_or("?", |v| v.as_str()),
                    if tilt { " TILT" } else { "" }
                ),
                Err(e) => format!("{s} unreachable: {e}"),
            };
            out.push(line);
        }
        out.join("; ")
    }

    fn signal_node(&self, name: &str, sig: Signal) -> anyhow::Result<u32> {
        self.opts.node(name)?;
        let pid = self.pid(name).ok_or_else(|| {
            anyhow!("{name} is not running: `redis-ha node restart {name}` starts it")
        })?;
        process::signal(pid, sig)?;
        Ok(pid)
    }

    /// SIGKILL: the node dies without a goodbye.
    pub fn kill(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.signal_node(name, Signal::SIGKILL)?;
        process::wait_exit(pid, Duration::from_secs(5));
        Ok(())
    }

    /// SIGSTOP: the node hangs (a frozen VM, a long GC pause).
    pub fn stop(&self, name: &str) -> anyhow::Result<()> {
        self.signal_node(name, Signal::SIGSTOP).map(drop)
    }

    /// SIGCONT after `stop`.
    pub fn cont(&self, name: &str) -> anyhow::Result<()> {
        self.signal_node(name, Signal::SIGCONT).map(drop)
    }

    /// Stops the node if running, then starts it again; a Redis node rejoins
    /// as a replica of the current master (see `role::decide_boot`).
    pub async fn restart(&self, name: &str) -> anyhow::Result<()> {
        let kind = self.opts.node(name)?;
        if kind == NodeKind::Proxy {
            return self.restart_proxy().await; // proxy_restart.rs
        }
        if let Some(pid) = self.pid(name) {
            process::terminate(pid, Duration::from_secs(5));
        }
        match kind {
            NodeKind::Redis(i) => {
                let e = self.opts.spec.engine;
                self.start_redis(i, &process::server_launch(e)?).await
            }
            NodeKind::Sentinel(i) => {
                let e = self.opts.spec.engine;
                self.start_sentinel(i, &process::sentinel_launch(e)?).await
            }
            NodeKind::Proxy => self.start_proxy().await,
        }
    }

    /// Runs this same binary as `redis-ha proxy` against the sentinels, and
    /// waits until its write endpoint answers PING. `REDIS_HA_BIN` overrides
    /// the binary (tests that embed the supervisor in another executable).
    pub(crate) async fn start_proxy(&self) -> anyhow::Result<()> {
        let o = &self.opts;
        let p = o
            .proxy
            .as_ref()
            .ok_or_else(|| anyhow!("this topology has no proxy"))?;
        let dir = o.node_dir("proxy");
        std::fs::create_dir_all(&dir)?;
        let bin = own_binary()?;
        let mut args: Vec<String> = vec!["proxy".into()];
        for s in o.sentinel_addrs() {
            args.extend(["--sentinel".into(), s]);
        }
        args.extend([
            "--master-name".into(),
            o.spec.master_name.clone(),
            "--bind".into(),
            o.host.clone(),
            "--admin-port".into(),
            p.admin.to_string(),
            // A restart starts the new proxy beside the old (proxy_restart.rs).
            "--reuse-port".into(),
        ]);
        args.extend(endpoint_args(p, o.pki().as_ref()));
        // The dashboard shows these names beside the addresses.
        for (a, name) in o.named_addrs() {
            args.extend(["--node-name".into(), format!("{a}={name}")]);
        }
        // With --acl the proxy logs in as its own user, password from its file.
        let own_user = o.spec.acl.is_some();
        if own_user {
            let file = crate::secrets::password_file(&o.state_dir, User::Proxy.name());
            args.extend(["--user".into(), User::Proxy.name().into()]);
            args.extend(["--password-file".into(), file.display().to_string()]);
        }
        args.extend(p.args.iter().cloned());
        let log = dir.join("proxy.log");
        // The password goes by environment, not on the command line (`ps`).
        let default_pw = if own_user { &None } else { &o.spec.password };
        let env = password_env(default_pw, &o.spec.sentinel_password);
        let pid = process::spawn_args(&bin, &args, &env, &log, self.attached)?;
        std::fs::write(o.pid_file("proxy"), pid.to_string())?;
        wait_ping(&addr(&o.host, p.write), &self.redis, pid, &log, false).await
    }

    /// Whether this process owns the nodes (they die with it).
    pub fn attached(&self) -> bool {
        self.attached
    }

    /// Stops every node (SIGTERM, then SIGKILL after a grace period).
    pub fn stop_all(&self) {
        crate::exporter::stop_all(&self.opts);
        // Reverse order: the proxy first, so clients see it go before Redis.
        for name in self.opts.node_names().iter().rev() {
            if let Some(pid) = self.pid(name) {
                process::terminate(pid, Duration::from_secs(5));
            }
            let _ = std::fs::remove_file(self.opts.pid_file(name));
        }
    }

    pub fn addr_of(&self, name: &str) -> anyhow::Result<Addr> {
        Ok(self.opts.node_addr(self.opts.node(name)?))
    }

    pub fn name_of_kind(kind: NodeKind) -> String {
        Options::kind_name(kind)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if self.attached {
            for name in self.opts.node_names() {
                if let Some(pid) = self.pid(&name) {
                    let _ = process::signal(pid, Signal::SIGKILL);
                }
            }
        }
    }
}

/// The passwords a child `redis-ha` command takes, as environment (never
/// on its command line, where `ps` shows them); unset ones left out.
pub(crate) fn password_env<'a>(
    node: &'a Option<String>,
    sentinel: &'a Option<String>,
) -> Vec<(&'static str, &'a str)> {
    [
        ("REDIS_HA_PASSWORD", node),
        ("REDIS_HA_SENTINEL_PASSWORD", sentinel),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v.as_deref()?)))
    .collect()
}

/// This same binary (for the proxy and the replica guard);
/// `REDIS_HA_BIN` overrides it (tests that embed the supervisor in another
/// executable).
pub(crate) fn own_binary() -> anyhow::Result<PathBuf> {
    match std::env::var_os("REDIS_HA_BIN") {
        Some(b) => Ok(PathBuf::from(b)),
        None => std::env::current_exe().context("cannot find the redis-ha binary"),
    }
}

fn endpoint_args(p: &ProxyPorts, pki: Option<&Pki>) -> Vec<String> {
    let (w, r) = (p.write.to_string(), p.read.to_string());
    let Some(pki) = pki else {
        return ["--port", &w, "--read-port", &r].map(String::from).to_vec();
    };
    let (ca, cert, key) = (pki.ca(), pki.node_cert(), pki.node_key());
    let (ca, cert, key) = (ca.display(), cert.display(), key.display());
    let flags = [
        ("--port", "0".to_string()),
        ("--read-port", "0".to_string()),
        ("--tls-port", w),
        ("--tls-read-port", r),
        ("--tls-cert-file", cert.to_string()),
        ("--tls-key-file", key.to_string()),
        ("--tls-ca-cert-file", ca.to_string()),
        ("--tls-auth-clients", "optional".to_string()),
        ("--backend-cacert", ca.to_string()),
        ("--backend-cert", cert.to_string()),
        ("--backend-key", key.to_string()),
    ];
    let mut v = vec!["--backend-tls".to_string()];
    v.extend(flags.into_iter().flat_map(|(f, x)| [f.to_string(), x]));
    v
}

/// Polls `check` until it passes; past `deadline`, its last error.
async fn poll_until<T, F, Fut>(deadline: Instant, check: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(why) if Instant::now() >= deadline => {
                bail!(
                    "topology not healthy after {}s: {why}",
                    start.elapsed().as_secs()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until a freshly started server answers PING; if the process dies
/// first, the error carries the end of its log. `own`: the answer must come
/// from process `pid` (`INFO server`), not from another server that took the
/// port first (Redis and Sentinel; the proxy forwards INFO).
async fn wait_ping(
    a: &str,
    access: &Access,
    pid: u32,
    log: &Path,
    own: bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if query_auth(a, Some(access), &["PING"], IO_TIMEOUT)
            .await
            .is_ok()
        {
            if !own {
                return Ok(());
            }
            let info = query_auth(a, Some(access), &["INFO", "server"], IO_TIMEOUT).await?;
            let info = parse_info(&info.as_text().unwrap_or_default());
            match info.get("process_id").and_then(|p| p.parse::<u32>().ok()) {
                Some(p) if p == pid => return Ok(()),
                other => bail!(
                    "{a} is answered by another process ({other:?}, not ours: {pid}): the port was taken; choose other ports"
                ),
            }
        }
        if !process::alive(pid) || Instant::now() >= deadline {
            let tail: Vec<String> = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(5)
                .map(str::to_string)
                .collect();
            let tail: Vec<&str> = tail.iter().rev().map(String::as_str).collect();
            bail!(
                "{a} did not start (see {}):\n{}",
                log.display(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> ProxyPorts {
        ProxyPorts {
            write: 6379,
            read: 6380,
            admin: 8404,
            args: vec![],
        }
    }

    #[test]
    fn plain_proxy_endpoints() {
        assert_eq!(
            endpoint_args(&ports(), None),
            ["--port", "6379", "--read-port", "6380"]
        );
    }

    #[test]
    fn tls_turns_the_plain_endpoints_off_and_speaks_tls_both_ways() {
        let pki = Pki::new(Path::new("/s"));
        let a = endpoint_args(&ports(), Some(&pki)).join(" ");
        for want in [
            "--backend-tls",
            "--port 0 --read-port 0 --tls-port 6379 --tls-read-port 6380",
            "--tls-cert-file /s/tls/node.crt --tls-key-file /s/tls/node.key",
            "--tls-ca-cert-file /s/tls/ca.crt --tls-auth-clients optional",
            "--backend-cacert /s/tls/ca.crt --backend-cert /s/tls/node.crt",
        ] {
            assert!(a.contains(want), "{want:?} not in {a}");
        }
    }
}
