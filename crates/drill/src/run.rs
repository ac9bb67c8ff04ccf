//! The drill itself: writers, Sentinel event recorder, fault, promotion
//! watcher, exactly-once verification, restore; the report is built by
//! [`crate::report`], the role checks are [`crate::roles`].

use crate::account::{self, FinalState};
use crate::config::DrillConfig;
use crate::events::Recorder;
use crate::fault::{self, Fault, Injected, Undo};
use crate::haproxy::Haproxy;
use crate::observe::{self, ReadStats};
use crate::partition::Lab;
use crate::report::{self, partition_note, via_report, DrillReport, Times, ViaEnd};
use crate::roles::{min_replicas_to_write, settled_masters, wait_replica, watch_promotion};
use crate::writer::{self, Shared, WriterLog};
use anyhow::{anyhow, bail, Context};
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_proxy::data::ack::WriteAck;
use redis_ha_resp::Access;
use redis_ha_resp::Connection;
use redis_ha_topology::{role, sentinel, Addr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `--via` path while the drill runs.
struct ViaPath {
    via: String,
    shared: Arc<Shared>,
    writers: Vec<tokio::task::JoinHandle<WriterLog>>,
    reader: Option<tokio::task::JoinHandle<ReadStats>>,
    /// When the writers were told to stop (ms since the start).
    ended_ms: f64,
    _haproxy: Option<Haproxy>,
}

impl ViaPath {
    async fn start(
        via: &str,
        cfg: &DrillConfig,
        main: &Shared,
        master: &Addr,
        replicas: &[Addr],
    ) -> anyhow::Result<ViaPath> {
        let (haproxy, target, read) = match via {
            "haproxy" => {
                let nodes: Vec<Addr> = [master.clone()]
                    .into_iter()
                    .chain(replicas.iter().cloned())
                    .collect();
                let h = Haproxy::start(&nodes).await?;
                let (w, r) = (h.write.clone(), h.read.clone());
                (Some(h), w, Some(r))
            }
            "master" => (None, master.clone(), None),
            a => (None, a.to_string(), None),
        };
        let mut probe =
            Connection::connect_auth(&target, Some(&cfg.redis_access()), Duration::from_secs(2))
                .await
                .with_context(|| format!("cannot reach --via {via} ({target})"))?;
        probe
            .request_ok(&["PING"])
            .await
            .with_context(|| format!("--via {via} ({target}) does not answer PING"))?;
        let shared = Arc::new(Shared {
            target,
            access: cfg.redis_access(),
            request_timeout: cfg.request_timeout,
            prefix: format!("{}:via", main.prefix),
            start: main.start,
            stop: AtomicBool::new(false),
            last_ack_us: AtomicU64::new(0),
            acked_counter: AtomicI64::new(0),
        });
        let writers = (0..cfg.writers)
            .map(|i| tokio::spawn(writer::run(i, shared.clone())))
            .collect();
        let reader = read.map(|r| {
            let key = writer::counter_key(&shared.prefix, 0);
            tokio::spawn(observe::reader(r, shared.clone(), key))
        });
        Ok(ViaPath {
            via: via.to_string(),
            shared,
            writers,
            reader,
            ended_ms: 0.0,
            _haproxy: haproxy,
        })
    }
}

pub async fn run_drill(cfg: DrillConfig) -> anyhow::Result<DrillReport> {
    anyhow::ensure!(cfg.writers >= 1, "--writers must be at least 1");
    if cfg.fault == Fault::Partition {
        return run_partition(cfg).await;
    }
    run_on(cfg, None).await
}

/// The partition drill's proxy: in front of `lab`, TLS both ways when the
/// lab is (TLS-only ports with the lab's node certificate, as `up --tls`).
fn partition_proxy(lab: &Lab, write_ack: Option<WriteAck>) -> ProxyConfig {
    let mut p = ProxyConfig::for_test(lab.sentinels.clone(), &lab.master_name);
    p.write_ack = write_ack;
    p.backend_tls = lab.tls.clone();
    if lab.tls.is_some() {
        let f = redis_ha_local::pki::Pki::new(&lab.dir);
        p.write_listen = None;
        p.read_listen = None;
        p.tls = Some(redis_ha_proxy::config::TlsEndpoints {
            files: redis_ha_proxy::data::tls::TlsFiles {
                cert: f.node_cert(),
                key: f.node_key(),
                ca: Some(f.ca()),
                auth_clients: redis_ha_proxy::data::tls::AuthClients::Optional,
            },
            write_listen: Some("127.0.0.1:0".into()),
            read_listen: Some("127.0.0.1:0".into()),
        });
    }
    p
}

/// `--fault partition`: builds the namespace topology and a proxy in
/// front of it, runs the drill through that proxy, and always tears it all
/// down (on error, and on Ctrl-C, which ends the drill).
async fn run_partition(cfg: DrillConfig) -> anyhow::Result<DrillReport> {
    crate::partition::available().map_err(|e| anyhow!(e))?;
    // Everything the drill builds lives inside `work`: Ctrl-C drops it at
    // any step (building, cut, heal), and the drops tear it all down.
    let work = async move {
        let lab = Lab::start(cfg.min_replicas_to_write, cfg.partition_tls)
            .await
            .context("cannot build the partition topology")?;
        let proxy = redis_ha_proxy::server::start(partition_proxy(&lab, cfg.write_ack))
            .await
            .context("cannot start the proxy for the partition drill")?;
        let (write, read) = match lab.tls {
            Some(_) => (proxy.tls_write_addr, proxy.tls_read_addr),
            None => (proxy.plain_write_addr, proxy.plain_read_addr),
        };
        let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let cfg = DrillConfig {
            target: addr(write),
            sentinels: lab.sentinels.clone(),
            master_name: lab.master_name.clone(),
            state_dir: None,
            password: None,
            sentinel_password: None,
            tls: lab.tls.clone(),
            read_target: Some(addr(read)),
            admin: Some(proxy.admin_addr.to_string()),
            ..cfg
        };
        let r = run_on(cfg, Some(&lab)).await;
        proxy.control.stop();
        drop(lab);
        r
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted: the partition topology was torn down (rules, namespace, processes)")),
    }
}

async fn run_on(cfg: DrillConfig, lab: Option<&Lab>) -> anyhow::Result<DrillReport> {
    let topo = match &cfg.state_dir {
        Some(d) => Some(Topology::open(d)?),
        None => None,
    };
    if cfg.fault.needs_topology() && topo.is_none() {
        bail!("--fault {} needs a local topology (--state-dir); with only --sentinel use --fault failover or switchover", cfg.fault.name());
    }
    let timeout = Duration::from_secs(1);
    let sentinel = cfg.sentinel_access();
    let spw = Some(&sentinel);
    let views = role::ask(&cfg.sentinels, spw, &cfg.master_name, timeout).await;
    let old_master = views.agreement.most_named().cloned().ok_or_else(|| {
        anyhow!(
            "no sentinel of {:?} knows master {:?}: is the topology up?",
            cfg.sentinels,
            cfg.master_name
        )
    })?;
    let mut nodes: Vec<Addr> = match (&topo, lab) {
        (Some(t), _) => t.redis_addrs(),
        (None, Some(l)) => l.redis_addrs(),
        (None, None) => {
            let reps =
                sentinel::replicas(&cfg.sentinels[0], spw, &cfg.master_name, timeout).await?;
            reps.iter().filter_map(sentinel::entry_addr).collect()
        }
    };
    nodes.retain(|a| *a != old_master);
    // Fail fast on a dead target instead of reporting a drill of nothing.
    let mut probe = Connection::connect_auth(
        &cfg.target,
        Some(&cfg.redis_access()),
        Duration::from_secs(2),
    )
    .await
    .with_context(|| format!("cannot reach the drill target {}", cfg.target))?;
    probe
        .request_ok(&["PING"])
        .await
        .with_context(|| format!("target {} does not answer PING", cfg.target))?;

    let bar = redis_ha_local::cli::spinner(cfg.progress);
    let cfg = Arc::new(cfg);
    let start = Instant::now();
    let shared = shared_for(&cfg, start);
    // Subscribed before the first write, so nothing after the fault is missed.
    let recorder = Recorder::start(&cfg.sentinels, Some(&cfg.sentinel_access())).await;
    let writers: Vec<_> = (0..cfg.writers)
        .map(|i| tokio::spawn(writer::run(i, shared.clone())))
        .collect();
    let reader = cfg.read_target.clone().map(|r| {
        let key = writer::counter_key(&shared.prefix, 0);
        tokio::spawn(observe::reader(r, shared.clone(), key))
    });
    let via = match cfg.via.as_deref() {
        Some(v) => Some(ViaPath::start(v, &cfg, &shared, &old_master, &nodes).await?),
        None => None,
    };
    bar.set_message(format!(
        "writing through {} with {} connections ({} sentinels subscribed)",
        cfg.target, cfg.writers, recorder.subscribed
    ));
    tokio::time::sleep(cfg.before).await;

    let fault_instant = Instant::now();
    let fault_unix_ms = observe::unix_ms();
    let fault_at = ms_since(start, fault_instant);
    bar.set_message(format!("{} on master {old_master}", cfg.fault.name()));
    let f = FaultPhase {
        cfg: &cfg,
        topo: topo.as_ref(),
        lab,
        old_master: &old_master,
        nodes: &nodes,
        start,
        shared: &shared,
        bar: &bar,
    };
    let (promoted, undo) = f.run().await?;
    bar.set_message("writing after the fault");
    tokio::time::sleep(cfg.after).await;
    let mut via = via;
    if let Some(v) = via.as_mut() {
        v.shared.stop.store(true, Ordering::Relaxed);
        v.ended_ms = ms_since(start, Instant::now());
    }
    let logs = stop_writers(&shared, writers).await?;
    let reads = match reader {
        Some(r) => Some(r.await?),
        None => None,
    };
    let via = match via {
        Some(mut v) => {
            let logs = stop_writers(&v.shared, std::mem::take(&mut v.writers)).await?;
            let reads = match v.reader.take() {
                Some(r) => Some(r.await?),
                None => None,
            };
            Some((v, logs, reads))
        }
        None => None,
    };
    let duration_s = start.elapsed().as_secs_f64();

    // Verify against the master the sentinels agree on. A node can be
    // promoted (and serve writes) well before the sentinels publish the
    // switch: wait for it, or the check would read the demoted old master.
    let agreed = || async {
        let views = role::ask(&cfg.sentinels, spw, &cfg.master_name, timeout).await;
        views.agreement.most_named().cloned()
    };
    let mut new_master = agreed().await;
    if promoted.is_some() {
        bar.set_message("waiting for the sentinels to agree on the new master");
        let deadline = Instant::now() + cfg.max_wait;
        while new_master.as_deref() == Some(old_master.as_str()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            new_master = agreed().await;
        }
    }
    bar.set_message("verifying acknowledged writes");
    let verify_on = new_master.clone().unwrap_or_else(|| old_master.clone());
    let redis = cfg.redis_access();
    let pw = Some(&redis);
    let states = final_states(&verify_on, pw, &shared.prefix, logs.len()).await?;
    let via = match via {
        Some((v, logs, reads)) => {
            let states = final_states(&verify_on, pw, &v.shared.prefix, logs.len()).await?;
            let promoted_ms = promoted.as_ref().map(|p| p.1);
            let end = ViaEnd {
                via: &v.via,
                endpoint: &v.shared.target,
                ended_ms: v.ended_ms,
            };
            Some(via_report(
                end,
                &logs,
                &states,
                reads,
                fault_at,
                promoted_ms,
            ))
        }
        None => None,
    };
    let back = restore(&cfg, topo.as_ref(), lab, &undo.later, &old_master, &bar).await?;
    let all_nodes: Vec<Addr> = nodes.iter().chain([&old_master]).cloned().collect();
    let masters_at_end = settled_masters(&all_nodes, pw).await;
    let events = recorder.events(fault_instant);
    drop(recorder);
    bar.finish_and_clear();

    let accounting = account::account_all(
        &logs.iter().map(|l| l.writes.as_slice()).collect::<Vec<_>>(),
        &states,
    );
    let proxy_switches = match &cfg.admin {
        Some(a) => observe::proxy_switches(a, fault_unix_ms)
            .await
            .unwrap_or_else(|e| {
                eprintln!("warning: no proxy switch times from {a}: {e:#}");
                vec![]
            }),
        None => vec![],
    };
    let min_replicas = match lab {
        Some(_) => Some(min_replicas_to_write(&old_master, pw).await),
        None => None,
    };
    let t = Times {
        fault_at,
        proxy_switched_ms: proxy_switches.iter().find_map(|p| p.adopted_after_ms),
        promoted,
        old_master_back_ms: back.map(|b| ms_since(fault_instant, b)),
        duration_s,
    };
    let mut r = report::report(
        &cfg,
        &logs,
        accounting,
        events,
        &t,
        old_master,
        new_master,
        masters_at_end,
    );
    r.proxy_switches = proxy_switches;
    r.reads = reads;
    r.via = via;
    if let Some(min) = min_replicas {
        r.notes.push(partition_note(r.lost_writes, min));
    }
    Ok(r)
}

/// What the fault phase works on.
struct FaultPhase<'a> {
    cfg: &'a DrillConfig,
    topo: Option<&'a Topology>,
    lab: Option<&'a Lab>,
    old_master: &'a Addr,
    /// The replicas.
    nodes: &'a [Addr],
    start: Instant,
    shared: &'a Shared,
    bar: &'a indicatif::ProgressBar,
}

/// A promotion watcher: the replica seen answering ROLE master, and when.
type Watch = tokio::task::JoinHandle<Option<(Addr, f64)>>;

impl FaultPhase<'_> {
    /// Injects the fault and waits for what must follow: where a failover
    /// is expected, the promotion and the writes resuming; where none may
    /// happen, the window in which one would have (watching for it), then
    /// the master brought back and the writes resuming. The promotion seen
    /// (node, ms since the start) and what is left to undo.
    async fn run(&self) -> anyhow::Result<(Option<(Addr, f64)>, Injected)> {
        let window = self.no_failover_window();
        let watch = self.watch(window);
        let at = Instant::now();
        let injected =
            fault::inject(self.cfg, self.topo, self.lab, self.old_master, self.nodes).await?;
        self.bar.set_message(match window {
            Some(w) => format!("watching {w:?} for a failover that must not happen"),
            None => "waiting for a new master".into(),
        });
        let promoted = match watch {
            Some(p) => p.await?,
            None => None,
        };
        if injected.now.contains(&Undo::Heal) {
            self.bar.set_message("partitioned: waiting to heal");
            tokio::time::sleep_until((at + self.cfg.heal_after).into()).await;
        }
        if !injected.now.is_empty() {
            self.bar.set_message("bringing the master back");
            fault::undo(self.topo, self.lab, &injected.now).await?;
        }
        // Writes must resume (after the promotion, or the master's return).
        let resumed_from = match (&promoted, window) {
            (Some(p), _) => Some(p.1),
            (None, Some(_)) => Some(ms_since(self.start, Instant::now())),
            // The fault brought the topology back itself.
            (None, None) if self.cfg.fault == Fault::ColdRestart => {
                Some(ms_since(self.start, Instant::now()))
            }
            (None, None) => None,
        };
        if let Some(ms) = resumed_from {
            self.bar.set_message("waiting for writes to resume");
            wait_ack_after(self.shared, ms, Instant::now() + self.cfg.max_wait).await;
        }
        Ok((promoted, injected))
    }

    /// How long to watch for a failover that must not happen, if the fault
    /// is one where none may.
    fn no_failover_window(&self) -> Option<Duration> {
        let t = self.topo.filter(|_| self.cfg.fault.proves_no_failover())?;
        Some(fault::no_failover_window(t.opts.spec.down_after_ms))
    }

    /// Watches the replicas for a promotion: until `max_wait` where one is
    /// expected, for `window` where none may happen, else not at all.
    fn watch(&self, window: Option<Duration>) -> Option<Watch> {
        let cfg = self.cfg;
        if !cfg.fault.failover_expected() && window.is_none() {
            return None;
        }
        let deadline = Instant::now() + window.unwrap_or(cfg.max_wait);
        Some(tokio::spawn(watch_promotion(
            self.nodes.to_vec(),
            cfg.redis_access(),
            self.start,
            deadline,
        )))
    }
}

fn shared_for(cfg: &DrillConfig, start: Instant) -> Arc<Shared> {
    Arc::new(Shared {
        target: cfg.target.clone(),
        access: cfg.redis_access(),
        request_timeout: cfg.request_timeout,
        prefix: unique_prefix(),
        start,
        stop: AtomicBool::new(false),
        last_ack_us: AtomicU64::new(0),
        acked_counter: AtomicI64::new(0),
    })
}

/// Polls until a write is acknowledged after `ms` (since the start).
async fn wait_ack_after(shared: &Shared, ms: f64, deadline: Instant) {
    while (shared.last_ack_us.load(Ordering::Relaxed) as f64 / 1000.0) < ms
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Tells the writers to stop and collects what each saw.
async fn stop_writers(
    shared: &Shared,
    writers: Vec<tokio::task::JoinHandle<WriterLog>>,
) -> anyhow::Result<Vec<WriterLog>> {
    shared.stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await?);
    }
    Ok(logs)
}

/// Key prefix unique to this drill (a previous drill's keys stay apart).
fn unique_prefix() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("drill:{}:{}", std::process::id(), now.as_millis())
}

fn ms_since(from: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Undoes the fault (with `restore`), then waits for the old master to be a
/// replica again where it comes back; when it was.
async fn restore(
    cfg: &DrillConfig,
    topo: Option<&Topology>,
    lab: Option<&Lab>,
    undo: &[Undo],
    old_master: &str,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Option<Instant>> {
    if cfg.restore && (topo.is_some() || lab.is_some()) {
        bar.set_message("restoring the topology");
        fault::undo(topo, lab, undo).await?;
    }
    if !cfg.fault.old_master_returns(cfg.restore) {
        return Ok(None);
    }
    bar.set_message(format!("waiting for {old_master} to be a replica"));
    let deadline = Instant::now() + cfg.max_wait.min(Duration::from_secs(30));
    Ok(wait_replica(old_master, Some(&cfg.redis_access()), deadline).await)
}

/// Each writer's list and counter on `master`.
async fn final_states(
    master: &str,
    password: Option<&Access>,
    prefix: &str,
    writers: usize,
) -> anyhow::Result<Vec<FinalState>> {
    let mut c = Connection::connect_auth(master, password, Duration::from_secs(2))
        .await
        .with_context(|| format!("cannot verify on {master}"))?;
    c.timeout = Duration::from_secs(10);
    let mut out = Vec::new();
    for id in 0..writers {
        let list = c
            .request_ok(&["LRANGE", &writer::list_key(prefix, id), "0", "-1"])
            .await
            .with_context(|| format!("LRANGE on {master}"))?;
        let list = list
            .into_array()
            .ok_or_else(|| anyhow!("LRANGE on {master}: not an array"))?;
        let counter = c
            .request_ok(&["GET", &writer::counter_key(prefix, id)])
            .await
            .with_context(|| format!("GET on {master}"))?;
        out.push(FinalState {
            list: list.iter().filter_map(|f| f.as_text()).collect(),
            counter: counter.as_int().unwrap_or(0),
        });
    }
    Ok(out)
}
