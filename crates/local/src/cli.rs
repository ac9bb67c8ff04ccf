//! `redis-ha up / down / status / node`: the command line of the local supervisor.

use crate::topo::{Options, ProxyPorts, Topology};
use anyhow::{bail, Context};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Color, Table};
use indicatif::{ProgressBar, ProgressStyle};
use redis_ha_topology::status::{collect, Report};
use redis_ha_topology::Spec;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Start the whole topology on this machine: 3 redis-server (redis-0 master,
/// redis-1 and redis-2 replicas), 3 redis-sentinel (sentinel-0..2) and the
/// proxy (write 6379, read 6380, admin 8404).
///
/// Settings default to the original system's (quorum 2, down-after 5000 ms,
/// failover-timeout 180000 ms, maxmemory 256mb, AOF everysec); a TOML file
/// (--config) and flags override them, flags last.
///
/// Examples:
///   redis-ha up                          # foreground; Ctrl-C stops everything
///   redis-ha up --detach                 # keep running; `redis-ha down` stops it
///   redis-ha up --down-after-ms 3000     # faster failover detection
///   redis-ha up --announce-hostnames     # nodes known as localhost:PORT, as on Kubernetes
///   redis-ha up --engine valkey          # valkey-server + valkey-sentinel instead of Redis
#[derive(clap::Args, Debug, Default)]
pub struct UpArgs {
    /// Directory holding each node's config, data, log and pid.
    #[arg(long, default_value = ".redis-ha")]
    pub state_dir: PathBuf,
    /// TOML file with topology settings (Spec fields, e.g. `quorum = 2`,
    /// `down_after_ms = 5000`, plus `host`, `redis_ports`, `sentinel_ports`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Leave the topology running in the background.
    #[arg(long)]
    pub detach: bool,
    /// Address every process binds to.
    #[arg(long)]
    pub bind: Option<String>,
    /// Redis node ports, comma separated (default 6381,6382,6383).
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub redis_ports: Option<Vec<u16>>,
    /// Sentinel ports, comma separated (default 26380,26381,26382).
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub sentinel_ports: Option<Vec<u16>>,
    /// Proxy write endpoint port.
    #[arg(long, default_value_t = 6379)]
    pub proxy_port: u16,
    /// Proxy read endpoint port.
    #[arg(long, default_value_t = 6380)]
    pub proxy_read_port: u16,
    /// Proxy admin (dashboard, /metrics) port.
    #[arg(long, default_value_t = 8404)]
    pub admin_port: u16,
    /// Do not start the proxy.
    #[arg(long)]
    pub no_proxy: bool,
    /// Also run a redis_exporter beside every Redis and Sentinel node (Debian's
    /// prometheus-redis-exporter), for Prometheus and the Grafana board's
    /// "Redis nodes" row; skipped, with a note, if it is not installed.
    #[arg(long)]
    pub metrics: bool,
    /// The exporters' ports, one per node: Redis nodes, then sentinels
    /// (default 9121 up).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PORTS",
        requires = "metrics"
    )]
    pub exporter_ports: Option<Vec<u16>>,
    /// Extra flags for the proxy, e.g. `--proxy-arg=--mode --proxy-arg=multiplex`.
    #[arg(long = "proxy-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub proxy_args: Vec<String>,
    /// Sentinel's name for the master.
    #[arg(long)]
    pub master_name: Option<String>,
    /// Sentinels that must agree a master is down.
    #[arg(long)]
    pub quorum: Option<usize>,
    /// sentinel down-after-milliseconds.
    #[arg(long)]
    pub down_after_ms: Option<u64>,
    /// sentinel failover-timeout.
    #[arg(long)]
    pub failover_timeout_ms: Option<u64>,
    /// Redis maxmemory (e.g. 256mb).
    #[arg(long)]
    pub maxmemory: Option<String>,
    /// Redis appendfsync [default: everysec]. everysec: a whole-topology
    /// crash or kill can lose the writes acknowledged in its last second or
    /// two (Redis postpones the AOF write while an fsync runs on a slow
    /// disk); always: none, at a throughput cost (README, Restarts).
    #[arg(long, value_parser = ["always", "everysec", "no"])]
    pub appendfsync: Option<String>,
    /// Redis min-replicas-to-write [default: 1]: a master that has not
    /// heard from this many replicas for 10 s refuses writes (NOREPLICAS),
    /// bounding what a partition loses; 0 turns it off.
    #[arg(long, value_name = "N")]
    pub min_replicas_to_write: Option<u32>,
    /// Password for Redis and Sentinel's auth-pass.
    #[arg(long, env = "REDIS_HA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Password for the sentinels themselves (their requirepass; they log in
    /// to each other with it too).
    #[arg(long, env = "REDIS_HA_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    /// ACL users per role, as hardened Helm charts set them up: `sentinel`
    /// (Sentinel's connections to Redis), `replica` (replication), `proxy`;
    /// `default` keeps --password (random when not given). Passwords are
    /// random, in STATE/secrets/USER.password (mode 0600; configs too)
    #[arg(long)]
    pub acl: bool,
    /// Know every node as `localhost` instead of its IP (replicas announce
    /// the name, sentinels resolve and announce hostnames), as Kubernetes
    /// pods do with their DNS names; the ports keep the nodes apart. TOML:
    /// `announce_hostnames = true`.
    #[arg(long)]
    pub announce_hostnames: bool,
    /// Which servers to run: redis (redis-server, redis-sentinel) or valkey
    /// (valkey-server, valkey-sentinel; `scripts/install-deps.sh --valkey`
    /// installs Valkey 8). TOML: `engine = "valkey"`.
    #[arg(long, value_name = "redis|valkey")]
    pub engine: Option<redis_ha_topology::Engine>,
    /// TLS on every hop and no plaintext port anywhere: a CA and
    /// certificates are generated into STATE/tls/ (ca.crt for clients,
    /// client.crt/client.key for direct connections to a node); Redis and
    /// Sentinel listen on tls-port only (port 0) and replicate over TLS;
    /// the proxy's endpoints speak TLS on their usual ports. `status`,
    /// `node` and `drill` find the certificates in the state dir.
    #[arg(long)]
    pub tls: bool,
}

/// Stop a topology started with `up --detach` (SIGTERM, then SIGKILL).
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    #[arg(long, default_value = ".redis-ha")]
    pub state_dir: PathBuf,
}

/// One screen replacing the manual checks: each node's role, offset, lag and
/// link; each sentinel's view of the master and whether they agree;
/// SENTINEL CKQUORUM; a loud split-brain check. Exit 0 only when healthy.
///
/// Examples:
///   redis-ha status
///   redis-ha status --json
///   redis-ha status --watch              # refresh every second, with the proxy's live ops/s
///   redis-ha status --watch --interval 5s --count 10
///   redis-ha status --sentinel 10.0.0.5:26379 --sentinel 10.0.0.6:26379 --admin 10.0.0.7:8404
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[arg(long, default_value = ".redis-ha")]
    pub state_dir: PathBuf,
    /// Inspect these sentinels instead of the local topology (repeatable).
    #[arg(long = "sentinel", value_name = "HOST:PORT")]
    pub sentinels: Vec<String>,
    #[arg(long, default_value = "mymaster")]
    pub master_name: String,
    /// Password of the Redis nodes given with --sentinel (the local
    /// topology's own is in its state directory).
    #[arg(long, env = "REDIS_HA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Password of the sentinels given with --sentinel, if they have one.
    #[arg(long, env = "REDIS_HA_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Refresh (every --interval) until Ctrl-C, showing the proxy's live
    /// numbers: ops/s, latency, errors, holds.
    #[arg(long)]
    pub watch: bool,
    /// Time between refreshes with --watch.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Stop after this many refreshes (implies --watch).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// The proxy's admin endpoint (HOST:PORT) for its live numbers, with
    /// --sentinel; the local topology's own proxy is found by itself.
    #[arg(long, value_name = "HOST:PORT")]
    pub admin: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum NodeAction {
    /// SIGKILL: the node dies at once (a crash).
    Kill,
    /// SIGSTOP: the node hangs (a frozen VM, a long pause).
    Stop,
    /// SIGCONT: resume a stopped node.
    Cont,
    /// Stop if running, then start again; a Redis node rejoins as a replica
    /// of the current master.
    Restart,
}

/// Fault injection on one node of the local topology.
///
/// Examples:
///   redis-ha node kill redis-0      # crash the master; Sentinel fails over
///   redis-ha node restart redis-0   # it comes back as a replica of the new master
///   redis-ha node stop redis-1      # freeze a replica (SIGSTOP); `cont` resumes it
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    #[arg(value_enum)]
    pub action: NodeAction,
    /// redis-0..2, sentinel-0..2 or proxy.
    pub name: String,
    #[arg(long, default_value = ".redis-ha")]
    pub state_dir: PathBuf,
}

/// A spinner with elapsed time for long steps; hidden when `on` is false
/// (not a terminal, or JSON output).
pub fn spinner(on: bool) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new_spinner();
    b.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}").expect("static template"),
    );
    b.enable_steady_tick(Duration::from_millis(100));
    b
}

fn options_for(a: &UpArgs) -> anyhow::Result<Options> {
    let mut spec = Spec::default();
    let mut host = None;
    let mut rports = None;
    let mut sports = None;
    if let Some(p) = &a.config {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config file {}", p.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not valid TOML", p.display()))?;
        host = table
            .remove("host")
            .and_then(|v| v.as_str().map(str::to_string));
        let port_list = |v: Option<toml::Value>| -> anyhow::Result<Option<Vec<u16>>> {
            match v {
                None => Ok(None),
                Some(v) => Ok(Some(
                    v.try_into().context("ports must be a list of numbers")?,
                )),
            }
        };
        rports = port_list(table.remove("redis_ports"))?;
        sports = port_list(table.remove("sentinel_ports"))?;
        spec = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("bad setting in {}", p.display()))?;
    }
    if let Some(v) = &a.master_name {
        spec.master_name = v.clone();
    }
    if let Some(v) = a.quorum {
        spec.quorum = v;
    }
    if let Some(v) = a.down_after_ms {
        spec.down_after_ms = v;
    }
    if let Some(v) = a.failover_timeout_ms {
        spec.failover_timeout_ms = v;
    }
    if let Some(v) = &a.maxmemory {
        spec.maxmemory = v.clone();
    }
    if let Some(v) = &a.appendfsync {
        spec.appendfsync = v.clone();
    }
    if let Some(v) = a.min_replicas_to_write {
        spec.min_replicas_to_write = v;
    }
    if a.password.is_some() {
        spec.password = a.password.clone();
    }
    if a.sentinel_password.is_some() {
        spec.sentinel_password = a.sentinel_password.clone();
    }
    if a.acl {
        crate::secrets::generate_acl(&mut spec)?;
    }
    if a.announce_hostnames {
        spec.announce_hostnames = true;
    }
    if let Some(e) = a.engine {
        spec.engine = e;
    }
    if a.tls {
        // Absolute: Redis changes into its data dir before loading them.
        let dir = std::path::absolute(&a.state_dir)?;
        spec.tls = Some(crate::pki::Pki::new(&dir).node_files());
    }
    let mut o = Options::with_defaults(spec, a.state_dir.clone());
    if let Some(h) = a.bind.clone().or(host) {
        o.host = h;
    }
    if let Some(p) = a.redis_ports.clone().or(rports) {
        o.spec.redis_nodes = p.len();
        o.redis_ports = p;
    }
    if let Some(p) = a.sentinel_ports.clone().or(sports) {
        o.spec.sentinels = p.len();
        o.sentinel_ports = p;
    }
    o.proxy = if a.no_proxy {
        None
    } else {
        Some(ProxyPorts {
            write: a.proxy_port,
            read: a.proxy_read_port,
            admin: a.admin_port,
            args: a.proxy_args.clone(),
        })
    };
    o.exporters = a.metrics.then(|| {
        let nodes = o.spec.redis_nodes + o.spec.sentinels;
        match &a.exporter_ports {
            Some(p) => crate::exporter::Exporters { ports: p.clone() },
            None => crate::exporter::Exporters::defaults(nodes),
        }
    });
    if let Some(e) = &o.exporters {
        let nodes = o.spec.redis_nodes + o.spec.sentinels;
        if e.ports.len() != nodes {
            bail!(
                "--exporter-ports names {} ports for {nodes} nodes (Redis nodes, then sentinels): give one per node",
                e.ports.len()
            );
        }
    }
    o.spec.validate()?;
    Ok(o)
}

pub async fn up(a: UpArgs) -> anyhow::Result<u8> {
    let opts = options_for(&a)?;
    if let Ok(existing) = Options::load(&a.state_dir) {
        let t = Topology::open(&a.state_dir)?;
        if !t.running().is_empty() {
            bail!(
                "a topology is already running from {} ({}): use `redis-ha status`, or `redis-ha down` first",
                a.state_dir.display(),
                t.running().join(", ")
            );
        }
        if existing.spec != opts.spec
            || existing.redis_ports != opts.redis_ports
            || existing.sentinel_ports != opts.sentinel_ports
        {
            bail!(
                "{} holds another topology (different settings or ports): remove it (`rm -r {}`) or use another --state-dir",
                a.state_dir.display(),
                a.state_dir.display()
            );
        }
    }
    let tty = std::io::stderr().is_terminal();
    let bar = spinner(tty);
    let (spec, e) = (&opts.spec, opts.spec.engine);
    bar.set_message(format!(
        "starting {} {} and {} {} in {}",
        spec.redis_nodes,
        e.server(),
        spec.sentinels,
        e.sentinel(),
        a.state_dir.display()
    ));
    let step = |m: &str| bar.set_message(m.to_string());
    let mut t = Topology::start_with(opts, !a.detach, &step).await?;
    bar.finish_and_clear();
    println!(
        "topology {} is up ({})",
        t.opts.spec.master_name,
        t.opts.state_dir.display()
    );
    for (i, addr) in t.redis_addrs().iter().enumerate() {
        println!(
            "  redis-{i}     {addr}{}",
            if i == 0 { "  (master)" } else { "" }
        );
    }
    for (i, addr) in t.sentinel_addrs().iter().enumerate() {
        println!("  sentinel-{i}  {addr}");
    }
    if let Some(p) = &t.opts.proxy {
        let h = &t.opts.host;
        println!(
            "  proxy       write {h}:{}  read {h}:{}  dashboard http://{h}:{}/",
            p.write, p.read, p.admin
        );
    }
    print_exporters(&t.opts);
    if let Some(pki) = t.opts.pki() {
        println!(
            "  TLS only; clients trust {}, e.g. `redis-cli --tls --cacert {} -p {}`",
            pki.ca().display(),
            pki.ca().display(),
            t.opts
                .proxy
                .as_ref()
                .map_or(t.opts.redis_ports[0], |p| p.write)
        );
    }
    if a.detach {
        t.detach();
        println!("running in the background: `redis-ha status`, `redis-ha down`");
        return Ok(0);
    }
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    eprintln!("stopping");
    t.stop_all();
    Ok(0)
}

/// Where `--metrics` put the exporters, or why it could not.
fn print_exporters(o: &Options) {
    let plan = crate::exporter::plan(o);
    let (Some(first), Some(last)) = (plan.first(), plan.last()) else {
        return;
    };
    if crate::exporter::binary().is_none() {
        println!(
            "  metrics     no redis_exporter on PATH, none started: {}",
            crate::exporter::INSTALL
        );
        return;
    }
    println!(
        "  metrics     redis_exporter per node: http://{}/metrics ({}) .. http://{}/metrics ({}); rules: deploy/prometheus/rules.yml",
        first.listen, first.node, last.listen, last.node
    );
}

pub async fn down(a: DownArgs) -> anyhow::Result<u8> {
    let t = Topology::open(&a.state_dir)?;
    let running = t.running();
    if running.is_empty() {
        bail!(
            "nothing is running from {}: start it with `redis-ha up --detach`",
            a.state_dir.display()
        );
    }
    t.stop_all();
    println!("stopped {}", running.join(", "));
    Ok(0)
}

pub async fn node(a: NodeArgs) -> anyhow::Result<u8> {
    let t = Topology::open(&a.state_dir)?;
    let name = a.name.as_str();
    match a.action {
        NodeAction::Kill => t.kill(name)?,
        NodeAction::Stop => t.stop(name)?,
        NodeAction::Cont => t.cont(name)?,
        NodeAction::Restart => t.restart(name).await?,
    }
    println!("{name}: {:?} done", a.action);
    Ok(0)
}

async fn report(a: &StatusArgs) -> anyhow::Result<Report> {
    let timeout = Duration::from_millis(1000);
    if !a.sentinels.is_empty() {
        let s: Vec<(String, String)> = a.sentinels.iter().map(|s| (s.clone(), s.clone())).collect();
        let (pw, spw) = (a.password.as_deref(), a.sentinel_password.as_deref());
        return Ok(collect(&s, &[], &a.master_name, pw, spw, timeout).await);
    }
    local_report(&Options::load(&a.state_dir)?, timeout).await
}

/// The `status` report of a local topology, proxy included.
pub async fn local_report(o: &Options, timeout: Duration) -> anyhow::Result<Report> {
    let s: Vec<(String, String)> = (0..o.sentinel_ports.len())
        .map(Spec::sentinel_name)
        .zip(o.sentinel_addrs())
        .collect();
    let n: Vec<(String, String)> = (0..o.redis_ports.len())
        .map(Spec::redis_name)
        .zip(o.redis_addrs())
        .collect();
    let (redis, sentinel) = (o.redis_access()?, o.sentinel_access()?);
    let (pw, spw) = (Some(&redis), Some(&sentinel));
    let mut r = collect(&s, &n, &o.spec.master_name, pw, spw, timeout).await;
    if let Some(p) = &o.proxy {
        let at = |port| redis_ha_topology::addr(&o.host, port);
        r.add_proxy(at(p.write), at(p.read), at(p.admin), pw, timeout)
            .await;
    }
    Ok(r)
}

pub fn render(r: &Report, color: bool) -> String {
    let mut out = String::new();
    let paint = |c: Cell, col: Color| if color { c.fg(col) } else { c };
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "node",
        "addr",
        "role",
        "offset",
        "lag",
        "link / follows",
    ]);
    for n in &r.nodes {
        let role = match n.role.as_str() {
            "master" => paint(Cell::new("master"), Color::Green),
            "down" => paint(Cell::new("DOWN"), Color::Red),
            other => Cell::new(other),
        };
        let lag = match (n.lag_bytes, n.lag_seconds.or(n.last_io_seconds)) {
            (Some(b), Some(s)) => format!("{b} B, {s} s"),
            (Some(b), None) => format!("{b} B"),
            _ => String::new(),
        };
        let link = match (&n.link, &n.master, &n.error) {
            (_, _, Some(e)) => e.clone(),
            (Some(l), Some(m), _) => format!("{l} → {m}"),
            _ => String::new(),
        };
        t.add_row(vec![
            Cell::new(&n.name),
            Cell::new(&n.addr),
            role,
            Cell::new(n.offset.map(|o| o.to_string()).unwrap_or_default()),
            Cell::new(lag),
            Cell::new(link),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "sentinel",
        "addr",
        "sees master",
        "flags",
        "replicas",
        "other sentinels",
        "ckquorum",
    ]);
    for s in &r.sentinels {
        if let Some(e) = &s.error {
            t.add_row(vec![
                Cell::new(&s.name),
                Cell::new(&s.addr),
                paint(Cell::new(format!("UNREACHABLE: {e}")), Color::Red),
            ]);
            continue;
        }
        t.add_row(vec![
            Cell::new(&s.name),
            Cell::new(&s.addr),
            Cell::new(s.master.clone().unwrap_or_default()),
            if s.tilt {
                let flags = s.master_flags.clone().unwrap_or_default();
                paint(Cell::new(format!("{flags} (TILT)")), Color::Yellow)
            } else {
                Cell::new(s.master_flags.clone().unwrap_or_default())
            },
            Cell::new(s.replicas.map(|v| v.to_string()).unwrap_or_default()),
            Cell::new(s.other_sentinels.map(|v| v.to_string()).unwrap_or_default()),
            if s.quorum_ok {
                paint(Cell::new("OK"), Color::Green)
            } else {
                paint(
                    Cell::new(s.ckquorum.clone().unwrap_or_default()),
                    Color::Red,
                )
            },
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    if let Some(p) = &r.proxy {
        let state = match &p.error {
            None => paint(Cell::new("up"), Color::Green),
            Some(e) => paint(Cell::new(format!("DOWN: {e}")), Color::Red),
        };
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec!["proxy", "write", "read", "dashboard", "state"]);
        t.add_row(vec![
            Cell::new(&p.name),
            Cell::new(&p.addr),
            Cell::new(&p.read_addr),
            Cell::new(format!("http://{}/", p.admin_addr)),
            state,
        ]);
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if r.split_brain {
        out.push_str("\n!!! SPLIT BRAIN !!!\n");
    }
    if r.healthy {
        out.push_str(&format!(
            "healthy: master {} with {} replicas, {} sentinels agree\n",
            r.master.as_deref().unwrap_or("?"),
            r.nodes.iter().filter(|n| n.role == "replica").count(),
            r.sentinels.len()
        ));
    } else {
        out.push_str("NOT HEALTHY:\n");
        for p in &r.problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    out
}

/// Where the proxy's admin endpoint is: `--admin`, else the local
/// topology's proxy.
fn admin_addr(a: &StatusArgs) -> Option<String> {
    if a.admin.is_some() || !a.sentinels.is_empty() {
        return a.admin.clone();
    }
    let o = Options::load(&a.state_dir).ok()?;
    o.proxy
        .as_ref()
        .map(|p| redis_ha_topology::addr(&o.host, p.admin))
}

pub async fn status(a: StatusArgs) -> anyhow::Result<u8> {
    let color = std::io::stdout().is_terminal();
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    status_to(a, &mut std::io::stdout(), color, ctrl_c).await
}

/// `status` writing to `out`, until `stop` completes (Ctrl-C) or --count
/// refreshes; exit code 0 when the last report was healthy, else 2.
pub async fn status_to(
    a: StatusArgs,
    out: &mut impl std::io::Write,
    color: bool,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<u8> {
    let watch = a.watch || a.count.is_some();
    let admin = admin_addr(&a);
    let mut prev: Option<(serde_json::Value, std::time::Instant)> = None;
    tokio::pin!(stop);
    let mut n = 0u64;
    loop {
        n += 1;
        let r = report(&a).await?;
        let live = match &admin {
            Some(addr) => Some(crate::live::fetch(addr, Duration::from_secs(1)).await),
            None => None,
        };
        if a.json {
            let mut v = serde_json::to_value(&r)?;
            if let Some(Ok(l)) = &live {
                v["proxy_live"] = l.clone();
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        } else {
            if watch && color {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            if watch {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
                    % 86_400;
                let of = a.count.map(|c| format!(" of {c}")).unwrap_or_default();
                writeln!(
                    out,
                    "redis-ha status · {:02}:{:02}:{:02} UTC · every {} · refresh {n}{of} (Ctrl-C stops)",
                    t / 3600,
                    t / 60 % 60,
                    t % 60,
                    humantime::format_duration(a.interval)
                )?;
            }
            write!(out, "{}", render(&r, color))?;
            match &live {
                Some(Ok(v)) => {
                    let p = prev.as_ref().map(|(p, at)| (p, at.elapsed().as_secs_f64()));
                    write!(out, "{}", crate::live::render(v, p))?;
                }
                Some(Err(e)) => writeln!(
                    out,
                    "proxy admin {}: no live numbers ({e:#})",
                    admin.as_deref().unwrap_or("")
                )?,
                None => {}
            }
        }
        out.flush()?;
        if let Some(Ok(v)) = live {
            prev = Some((v, std::time::Instant::now()));
        }
        let code = if r.healthy { 0 } else { 2 };
        if !watch || a.count.is_some_and(|c| n >= c) {
            return Ok(code);
        }
        tokio::select! {
            _ = &mut stop => return Ok(code),
            _ = tokio::time::sleep(a.interval) => {}
        }
    }
}
