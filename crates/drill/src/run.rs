//! The drill itself: writers, Sentinel event recorder, fault, promotion
//! watcher, exactly-once verification, restore, report.

use crate::account::{self, Accounting, FinalState, UnknownWrite};
use crate::chart::{self, Bucket};
use crate::events::{Event, Kind, Recorder};
use crate::fault::{self, Fault, Injected, Undo};
use crate::haproxy::Haproxy;
use crate::observe::{self, ProxySwitch, ReadStats};
use crate::partition::Lab;
use crate::timeline::{self, Measured, Row};
use crate::verdict::{self, Facts, Failure};
use crate::writer::{self, Outcome, Shared, WriterLog};
use anyhow::{anyhow, bail, Context};
use redis_ha_local::Topology;
use redis_ha_proxy::config::ProxyConfig;
use redis_ha_proxy::data::ack::WriteAck;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::tls::Tls;
use redis_ha_resp::Connection;
use redis_ha_resp::{Access, Login};
use redis_ha_topology::info::Role;
use redis_ha_topology::{role, sentinel, Addr};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct DrillConfig {
    /// Where the writers connect (the proxy, HAProxy, or a node).
    pub target: Addr,
    /// Local topology (needed for kill/stop and to restore afterwards).
    pub state_dir: Option<PathBuf>,
    pub sentinels: Vec<Addr>,
    pub master_name: String,
    /// Password of the Redis nodes (writers log in with it too).
    pub password: Option<String>,
    /// The sentinels' own password, if they have one.
    pub sentinel_password: Option<String>,
    /// TLS toward the target, the nodes and the sentinels (`up --tls`).
    pub tls: Option<Arc<Tls>>,
    pub fault: Fault,
    pub writers: usize,
    /// Steady writing before the fault.
    pub before: Duration,
    /// Steady writing after writes resume.
    pub after: Duration,
    /// Give up waiting for writes to resume after this long.
    pub max_wait: Duration,
    /// Per-request client timeout (should exceed the proxy's failover hold).
    pub request_timeout: Duration,
    /// Restart a killed node / resume a stopped one when done.
    pub restore: bool,
    pub progress: bool,
    /// The read endpoint: a reader there counts read errors and stale reads.
    pub read_target: Option<Addr>,
    /// The proxy's admin address: when it switched, from `/api/status`.
    pub admin: Option<Addr>,
    /// `--via`: the same load at the same time through another path,
    /// accounted apart: `HOST:PORT`, `haproxy` (started by the drill like
    /// the original's, on the drill's nodes) or `master` (the master at the
    /// start, directly).
    pub via: Option<String>,
    /// `--fault partition`: how long the master stays cut off.
    pub heal_after: Duration,
    /// `--fault partition`: `min-replicas-to-write` on the drill's own
    /// topology (1, like the local topology; 0 is Redis's default).
    pub min_replicas_to_write: u32,
    /// `--fault partition`: the drill's proxy runs with `--write-ack`.
    pub write_ack: Option<redis_ha_proxy::data::ack::WriteAck>,
    /// `--fault partition`: its topology is TLS only (`--tls`).
    pub partition_tls: bool,
}

impl DrillConfig {
    /// How writers, readers and checks reach the target and the nodes.
    pub fn redis_access(&self) -> Access {
        Access {
            login: self.password.as_deref().map(Login::default_user),
            tls: self.tls.clone(),
        }
    }

    /// How the drill reaches the sentinels.
    pub fn sentinel_access(&self) -> Access {
        Access {
            login: self.sentinel_password.as_deref().map(Login::default_user),
            tls: self.tls.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub target: Addr,
    pub fault: Fault,
    /// The fault needs a failover; otherwise one is a failure.
    pub failover_expected: bool,
    pub old_master: Addr,
    pub new_master: Option<Addr>,
    pub writers: usize,
    pub writes_acked: u64,
    /// Requests that got an error or no answer, and failed connections.
    pub writes_failed: u64,
    /// Errors seen by the clients, by kind (`READONLY`, `timeout`,
    /// `unknown_outcome`...).
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged writes missing on the new master afterwards.
    pub lost_writes: u64,
    pub lost_examples: Vec<String>,
    /// When the lost RPUSH writes were acknowledged: the first and the last,
    /// ms since the fault.
    pub lost_acked_between_ms: Option<(f64, f64)>,
    /// Writes applied more often than sent (a value twice in a list, a
    /// counter above acknowledged + unknown).
    pub duplicated_writes: u64,
    pub duplicate_examples: Vec<String>,
    /// Writes whose outcome the client could not know, and how many of them
    /// the master turned out to hold.
    pub unknown_outcomes: u64,
    pub unknown_applied: u64,
    pub unknown_not_applied: u64,
    pub unknown_writes: Vec<UnknownWrite>,
    /// Milliseconds from the fault to a replica reporting `role:master`.
    pub promoted_after_ms: Option<f64>,
    /// Milliseconds from the fault to the first `+switch-master` event.
    pub switch_master_after_ms: Option<f64>,
    /// Milliseconds from the fault to the proxy adopting the new master
    /// (the first failover in its `/api/status` with an adoption).
    pub proxy_switched_after_ms: Option<f64>,
    /// Every failover the proxy recorded from the fault on.
    pub proxy_switches: Vec<ProxySwitch>,
    /// The reader on the read endpoint.
    pub reads: Option<ReadStats>,
    /// `--via`: the same load through the other path, in the same run.
    pub via: Option<ViaReport>,
    /// Milliseconds from the promotion to the first write acknowledged
    /// through the target (the proxy's own reaction lag).
    pub first_ack_after_promotion_ms: Option<f64>,
    /// Longest gap between acknowledged writes (any writer).
    pub write_outage_ms: f64,
    /// That gap, in seconds since the drill started.
    pub outage_window_s: Option<(f64, f64)>,
    /// Errors seen during that outage window.
    pub errors_in_outage: u64,
    /// Every gap of more than [`PAUSE_MS`] between acknowledged writes:
    /// (start, end) in ms since the fault. A failover can pause writes more
    /// than once (the promotion, then the sentinels' switch).
    pub pauses: Vec<(f64, f64)>,
    /// Measured steps beside the original's expected timeline.
    pub timeline: Vec<Row>,
    /// The first event of each Sentinel channel after the fault.
    pub first_events: Vec<Event>,
    /// Every Sentinel event from the subscription on.
    pub events: Vec<Event>,
    /// Nodes answering ROLE as master at the end.
    pub masters_at_end: Vec<Addr>,
    /// Why the drill failed (empty: passed; see `--help` for exit codes).
    pub failures: Vec<Failure>,
    /// What the numbers mean where a fault is expected to cost something
    /// (a partition's lost writes).
    pub notes: Vec<String>,
    /// The fault, in seconds since the drill started.
    pub fault_at_s: f64,
    pub writes_per_100ms: Vec<Bucket>,
    /// Where the chart was written (`--chart`).
    pub chart: Option<PathBuf>,
    pub duration_s: f64,
}

/// What the `--via` writers (and reader, for HAProxy) saw, accounted like
/// the target's; it does not change the drill's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct ViaReport {
    /// As given: `haproxy`, `master` or `HOST:PORT`.
    pub via: String,
    pub endpoint: Addr,
    pub writes_acked: u64,
    pub writes_failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub unknown_outcomes: u64,
    pub unknown_applied: u64,
    pub lost_writes: u64,
    pub lost_examples: Vec<String>,
    pub lost_acked_between_ms: Option<(f64, f64)>,
    pub duplicated_writes: u64,
    pub duplicate_examples: Vec<String>,
    /// Longest gap between acknowledged writes, counting the end of writing
    /// as one: a path that never came back is out until the writers stop.
    pub write_outage_ms: f64,
    /// That gap ran until the writers stopped (at least that long, then).
    pub out_at_end: bool,
    pub first_ack_after_promotion_ms: Option<f64>,
    pub reads: Option<ReadStats>,
}

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

/// The `--via` path's figures, from its writers' logs and final state.
fn via_report(
    v: &ViaPath,
    logs: &[WriterLog],
    states: &[FinalState],
    reads: Option<ReadStats>,
    fault_at: f64,
    promoted_ms: Option<f64>,
) -> ViaReport {
    let a = account::account_all(
        &logs.iter().map(|l| l.writes.as_slice()).collect::<Vec<_>>(),
        states,
    );
    let (errors, _) = errors_of(logs);
    let acks = acked_times(logs);
    let first_after = promoted_ms.and_then(|p| acks.iter().find(|a| **a > p).map(|f| f - p));
    let mut points = acks.clone();
    if acks.last().is_none_or(|l| *l < v.ended_ms) {
        points.push(v.ended_ms);
    }
    let gap = longest_gap(&points);
    let (applied, _) = a.unknown_applied();
    ViaReport {
        via: v.via.clone(),
        endpoint: v.shared.target.clone(),
        writes_acked: a.acked,
        writes_failed: errors.values().sum(),
        errors,
        unknown_outcomes: a.unknown,
        unknown_applied: applied,
        lost_writes: a.lost,
        lost_acked_between_ms: min_max(&a.lost_acked_at_ms)
            .map(|(f, l)| (f - fault_at, l - fault_at)),
        lost_examples: a.lost_examples,
        duplicated_writes: a.duplicated,
        duplicate_examples: a.duplicate_examples,
        write_outage_ms: gap.map_or(0.0, |(s, e)| e - s),
        out_at_end: gap.is_some_and(|(s, e)| e == v.ended_ms && e - s > PAUSE_MS),
        first_ack_after_promotion_ms: first_after,
        reads,
    }
}

fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let min = v.iter().copied().min_by(f64::total_cmp)?;
    let max = v.iter().copied().max_by(f64::total_cmp)?;
    Some((min, max))
}

/// Every acknowledgement's time (ms since the start), sorted.
fn acked_times(logs: &[WriterLog]) -> Vec<f64> {
    let mut acks: Vec<f64> = logs
        .iter()
        .flat_map(|l| l.writes.iter())
        .filter(|w| matches!(w.outcome, Outcome::Acked(_)))
        .map(|w| w.at_ms)
        .collect();
    acks.sort_by(f64::total_cmp);
    acks
}

/// Polls ROLE on `nodes` every few ms; returns the first that is master.
async fn watch_promotion(
    nodes: Vec<Addr>,
    access: Access,
    start: Instant,
    deadline: Instant,
) -> Option<(Addr, f64)> {
    let mut conns: Vec<(Addr, Option<Connection>)> = nodes.into_iter().map(|a| (a, None)).collect();
    while Instant::now() < deadline {
        for (a, c) in conns.iter_mut() {
            if c.is_none() {
                *c = Connection::connect_auth(a, Some(&access), Duration::from_millis(200))
                    .await
                    .ok();
            }
            let Some(conn) = c.as_mut() else { continue };
            conn.timeout = Duration::from_millis(200);
            match conn.request(&["ROLE"]).await {
                Ok(f) => {
                    if let Some(Role::Master { .. }) = Role::from_frame(&f) {
                        return Some((a.clone(), start.elapsed().as_secs_f64() * 1000.0));
                    }
                }
                Err(_) => *c = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// The node's ROLE, if it answers within half a second.
async fn role(node: &str, pw: Option<&Access>) -> Option<Role> {
    let f = query_auth(node, pw, &["ROLE"], Duration::from_millis(500))
        .await
        .ok()?;
    Role::from_frame(&f)
}

/// Polls until `node` is a replica linked to its master; when it was.
pub(crate) async fn wait_replica(
    node: &str,
    pw: Option<&Access>,
    deadline: Instant,
) -> Option<Instant> {
    loop {
        if let Some(Role::Replica { state, .. }) = role(node, pw).await {
            if state == "connected" {
                return Some(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a restarted old master may still say master: until Sentinel's
/// REPLICAOF reaches it (about a second; seen past the restore on Valkey 8).
const SETTLE: Duration = Duration::from_secs(10);

/// The masters once the topology settled: polled until at most one is left
/// or [`SETTLE`] passed, so a split brain is one that lasts.
async fn settled_masters(nodes: &[Addr], pw: Option<&Access>) -> Vec<Addr> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let m = masters(nodes, pw).await;
        if m.len() <= 1 || Instant::now() >= deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The nodes that answer ROLE as master.
async fn masters(nodes: &[Addr], pw: Option<&Access>) -> Vec<Addr> {
    let roles = futures::future::join_all(nodes.iter().map(|n| role(n, pw))).await;
    nodes
        .iter()
        .zip(roles)
        .filter(|(_, r)| matches!(r, Some(Role::Master { .. })))
        .map(|(n, _)| n.clone())
        .collect()
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
            Some(via_report(&v, &logs, &states, reads, fault_at, promoted_ms))
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
    let mut r = report(
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

/// `min-replicas-to-write` on `node` (`None`: it did not say).
async fn min_replicas_to_write(node: &str, pw: Option<&Access>) -> Option<u32> {
    let f = query_auth(
        node,
        pw,
        &["CONFIG", "GET", "min-replicas-to-write"],
        Duration::from_secs(1),
    )
    .await
    .ok()?;
    f.as_array()?.get(1)?.as_text()?.parse().ok()
}

/// What a partition's lost writes mean.
pub fn partition_note(lost: u64, min_replicas: Option<u32>) -> String {
    let min = match min_replicas {
        Some(0) => "min-replicas-to-write is 0 on this master (Redis's default, as in the local topology), so nothing stopped it".to_string(),
        Some(n) => format!("min-replicas-to-write is {n} on this master: it refuses writes once its replicas have been silent for min-replicas-max-lag (10 s), which bounds the window, not closes it"),
        None => "the master did not report min-replicas-to-write".to_string(),
    };
    if lost == 0 {
        format!("partition: no acknowledged write was lost; {min}")
    } else {
        format!(
            "partition: {lost} acknowledged writes lost, the expected finding with asynchronous replication: the cut-off master went on acknowledging writes its replicas never received, and discarded them when it rejoined as a replica; {min}"
        )
    }
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

/// A gap between acknowledged writes longer than this is a pause.
pub const PAUSE_MS: f64 = 100.0;

/// Every gap of more than `min_ms` between consecutive `acks` (sorted).
pub fn gaps_over(acks: &[f64], min_ms: f64) -> Vec<(f64, f64)> {
    acks.windows(2)
        .filter(|w| w[1] - w[0] > min_ms)
        .map(|w| (w[0], w[1]))
        .collect()
}

/// The longest gap between consecutive `acks` (sorted): (start, end).
pub fn longest_gap(acks: &[f64]) -> Option<(f64, f64)> {
    acks.windows(2)
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
}

/// Errors by kind and their times (ms since the start), from the writes
/// that were not acknowledged and the connections that failed.
fn errors_of(logs: &[WriterLog]) -> (BTreeMap<String, u64>, Vec<f64>) {
    let mut kinds = BTreeMap::new();
    let mut at = Vec::new();
    for l in logs {
        let failed = l.writes.iter().filter_map(|w| match &w.outcome {
            Outcome::Acked(_) => None,
            Outcome::Refused(k) | Outcome::Unknown(k) => Some((w.at_ms, k)),
        });
        let connects = l.connect_failures.iter().map(|(t, k)| (*t, k));
        for (t, k) in failed.chain(connects) {
            *kinds.entry(k.clone()).or_insert(0) += 1;
            at.push(t);
        }
    }
    (kinds, at)
}

/// Times the report is built from: ms since the start unless named.
struct Times {
    fault_at: f64,
    /// Since the fault.
    proxy_switched_ms: Option<f64>,
    /// The replica seen answering ROLE master, and when.
    promoted: Option<(Addr, f64)>,
    /// Since the fault.
    old_master_back_ms: Option<f64>,
    duration_s: f64,
}

#[allow(clippy::too_many_arguments)]
fn report(
    cfg: &DrillConfig,
    logs: &[WriterLog],
    a: Accounting,
    events: Vec<Event>,
    t: &Times,
    old_master: Addr,
    new_master: Option<Addr>,
    masters_at_end: Vec<Addr>,
) -> DrillReport {
    let (errors, err_ms) = errors_of(logs);
    let promoted_ms = t.promoted.as_ref().map(|p| p.1);
    let acks = acked_times(logs);
    let gap = longest_gap(&acks);
    let first_after = promoted_ms.and_then(|p| acks.iter().find(|a| **a > p).copied());
    let since_fault = |v: f64| v - t.fault_at;
    let measured = Measured {
        promotion_seen_ms: promoted_ms.map(since_fault),
        first_ack_after_promotion_ms: first_after.map(since_fault),
        // Only a real pause is an outage on the timeline (a replica kill
        // has none, just its slowest write).
        outage_ms: gap
            .filter(|(s, e)| e - s > PAUSE_MS)
            .map(|(s, e)| (since_fault(s), since_fault(e))),
        old_master_replica_ms: t.old_master_back_ms,
        proxy_switched_ms: t.proxy_switched_ms,
    };
    let failures = verdict::failures(&Facts {
        lost: a.lost,
        duplicated: a.duplicated,
        masters_at_end: masters_at_end.clone(),
        failover_expected: cfg.fault.failover_expected(),
        old_master: old_master.clone(),
        new_master: new_master.clone(),
        promotion_seen: t.promoted.as_ref().map(|p| p.0.clone()),
    });
    let (applied, not_applied) = a.unknown_applied();
    let end_ms = t.duration_s * 1000.0;
    let notes = crate::explain::sentinel_notes(&events);
    DrillReport {
        target: cfg.target.clone(),
        fault: cfg.fault,
        failover_expected: cfg.fault.failover_expected(),
        timeline: timeline::rows(&events, &old_master, &measured),
        first_events: timeline::first_per_channel(&events),
        switch_master_after_ms: events
            .iter()
            .filter(|e| e.kind == Kind::SwitchMaster && e.at_ms >= 0.0)
            .map(|e| e.at_ms)
            .min_by(f64::total_cmp),
        events,
        old_master,
        new_master,
        writers: cfg.writers,
        writes_acked: a.acked,
        writes_failed: errors.values().sum(),
        errors_in_outage: gap.map_or(0, |(s, e)| {
            err_ms.iter().filter(|t| **t >= s && **t <= e).count() as u64
        }),
        writes_per_100ms: chart::buckets(&acks, &err_ms, end_ms),
        errors,
        lost_writes: a.lost,
        lost_acked_between_ms: min_max(&a.lost_acked_at_ms)
            .map(|(f, l)| (since_fault(f), since_fault(l))),
        lost_examples: a.lost_examples,
        duplicated_writes: a.duplicated,
        duplicate_examples: a.duplicate_examples,
        unknown_outcomes: a.unknown,
        unknown_applied: applied,
        unknown_not_applied: not_applied,
        unknown_writes: a.unknown_writes,
        promoted_after_ms: promoted_ms.map(since_fault),
        proxy_switched_after_ms: t.proxy_switched_ms,
        proxy_switches: vec![],
        reads: None,
        via: None,
        first_ack_after_promotion_ms: promoted_ms.and_then(|p| first_after.map(|f| f - p)),
        write_outage_ms: gap.map_or(0.0, |(s, e)| e - s),
        outage_window_s: gap.map(|(s, e)| (s / 1000.0, e / 1000.0)),
        pauses: gaps_over(&acks, PAUSE_MS)
            .into_iter()
            .map(|(s, e)| (since_fault(s), since_fault(e)))
            .collect(),
        masters_at_end,
        failures,
        notes,
        fault_at_s: t.fault_at / 1000.0,
        chart: None,
        duration_s: t.duration_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_between_acknowledgements_is_the_outage() {
        assert_eq!(longest_gap(&[]), None);
        assert_eq!(longest_gap(&[1.0]), None);
        assert_eq!(longest_gap(&[1.0, 2.0, 50.0, 51.0]), Some((2.0, 50.0)));
    }

    #[test]
    fn every_long_gap_is_a_pause() {
        let acks = [0.0, 10.0, 300.0, 310.0, 900.0, 1000.0];
        assert_eq!(gaps_over(&acks, 100.0), [(10.0, 300.0), (310.0, 900.0)]);
        assert_eq!(gaps_over(&acks[..2], 100.0), []);
    }
}
