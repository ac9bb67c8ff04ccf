//! `redis-ha switchover`: a planned, zero-loss master switch (the
//! Kubernetes preStop hook of a Redis pod; by hand before maintenance).
//! Writes are paused on the master (a lease that lapses on its own if this
//! process dies), the replicas catch up, Sentinel fails over, the old master
//! is made a replica of the new one, and only then are writes released:
//! held writes are refused with READONLY there and the proxy sends them to
//! the new master, so no acknowledged write is lost and none runs twice.

use crate::topo::Options;
use anyhow::{anyhow, bail, Context};
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::tls::Tls;
use redis_ha_resp::{Access, Login};
use redis_ha_topology::info::{Replication, Role};
use redis_ha_topology::role::{self, Views};
use redis_ha_topology::{sentinel, split_addr, Addr};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);
/// How long a replica may take to come back linked before anything is paused.
const SETTLE: Duration = Duration::from_secs(10);

/// Hand the master role to a replica with no acknowledged write lost.
///
/// Steps (each printed with its elapsed time): find the master a majority
/// of the sentinels name; check its replicas are linked; pause writes on it
/// (CLIENT PAUSE WRITE, renewed while this runs, so a crash here leaves
/// writes paused for at most --pause); wait until every replica Sentinel
/// may promote has the master's replication offset; SENTINEL FAILOVER
/// (the next sentinel if one refuses); wait until a majority names the new
/// master; make the old master its replica; unpause (on every path).
///
/// Without --sentinel it works on the local topology in --state-dir.
///
/// Examples:
///   redis-ha switchover                       # the local topology (.redis-ha)
///   redis-ha switchover --json
///   redis-ha switchover --sentinel sentinel-0.sentinel-headless:26379 \
///     --sentinel sentinel-1.sentinel-headless:26379 --master-name mymaster \
///     --only-if-master redis-0.redis-headless:6379    # a preStop hook
///
/// Exit status: 0 switched (or nothing to do with --only-if-master), 1 not
/// switched (the message says why and what to check).
#[derive(clap::Args, Debug, Clone)]
#[command(verbatim_doc_comment)]
pub struct SwitchoverArgs {
    /// The sentinels (without --sentinel: the local topology's, with its
    /// master name, passwords and TLS), master name, passwords, TLS.
    #[command(flatten)]
    pub cluster: crate::cluster_args::ClusterArgs,
    /// Switch only if this node is the master now; otherwise do nothing and
    /// exit 0 (a preStop hook on every Redis pod).
    #[arg(long, value_name = "HOST:PORT")]
    pub only_if_master: Option<String>,
    /// The local topology to switch when no --sentinel is given.
    #[arg(long, default_value = ".redis-ha")]
    pub state_dir: PathBuf,
    /// Longest time writes stay paused if this process dies mid-way (the
    /// pause is renewed while the switchover runs, up to --timeout).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub pause: Duration,
    /// Give up (and unpause) when the switch is not done by then.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print a JSON summary on stdout (the steps go to stderr).
    #[arg(long)]
    pub json: bool,
    /// The same, built already (callers in process: the drill); wins over
    /// --tls.
    #[arg(skip)]
    pub tls: Option<Arc<Tls>>,
}

impl SwitchoverArgs {
    /// Defaults as the command line has them, for `sentinels` (empty: the
    /// local topology in `state_dir`).
    pub fn new(sentinels: Vec<String>, state_dir: PathBuf) -> SwitchoverArgs {
        SwitchoverArgs {
            cluster: crate::cluster_args::ClusterArgs::of(sentinels),
            only_if_master: None,
            state_dir,
            pause: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            json: false,
            tls: None,
        }
    }
}

/// The machine summary (`--json`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub master_name: String,
    /// `true` when a switch happened; `false` for an --only-if-master no-op.
    pub switched: bool,
    pub old_master: Addr,
    pub new_master: Option<Addr>,
    /// From the pause being in force to the unpause answered.
    pub pause_ms: Option<u64>,
    pub total_ms: u64,
    /// Why nothing was done, for a no-op.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where to find the topology and how to log in.
#[derive(Clone, Debug)]
struct Target {
    sentinels: Vec<Addr>,
    master_name: String,
    redis: Access,
    sentinel: Access,
}

/// A password login (the default user) over `tls`.
fn access(password: Option<&str>, tls: Option<Arc<Tls>>) -> Access {
    Access {
        login: password.map(Login::default_user),
        tls,
    }
}

// ---- pure decisions -------------------------------------------------------

/// What to do given the sentinels' views.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Switch away from this master.
    Switch(Addr),
    /// `--only-if-master` names another node: nothing to do.
    NotMaster { agreed: Addr },
}

/// Pure: the master named by more than half of *all* `n` sentinels.
pub fn majority_master(views: &Views, n: usize) -> Option<Addr> {
    let m = views.agreement.most_named()?;
    (views.votes_for(m) * 2 > n).then(|| m.clone())
}

/// Pure: switch, do nothing, or refuse (no majority: a failover may be under
/// way already, or the sentinels are split).
pub fn decide(views: &Views, n: usize, only_if: Option<&str>) -> Result<Decision, String> {
    let Some(m) = majority_master(views, n) else {
        return Err(format!(
            "no master is named by a majority of the {n} sentinels ({}): a failover may be in progress; check `redis-ha status` and retry",
            describe(views)
        ));
    };
    match only_if {
        Some(me) if !me.eq_ignore_ascii_case(&m) => Ok(Decision::NotMaster { agreed: m }),
        _ => Ok(Decision::Switch(m)),
    }
}

/// The sentinels' answers for a message: `s0: a:1, s1: unreachable (...)`.
fn describe(views: &Views) -> String {
    views
        .answers
        .iter()
        .map(|(s, v)| match v {
            Ok(Some(m)) => format!("{s} names {m}"),
            Ok(None) => format!("{s} knows no master"),
            Err(e) => format!("{s} unreachable: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Pure: the replicas Sentinel may promote, from `SENTINEL REPLICAS`: not
/// flagged down or disconnected, and not `replica-priority 0`.
pub fn candidates(entries: &[HashMap<String, String>]) -> Vec<Addr> {
    entries
        .iter()
        .filter(|e| sentinel::entry_flags(e) == ["slave"])
        .filter(|e| e.get("slave-priority").map(String::as_str) != Some("0"))
        .filter_map(sentinel::entry_addr)
        .collect()
}

/// A replica's replication state from its `INFO replication`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSync {
    pub link_up: bool,
    /// `slave_repl_offset`: how much of the master's stream it has.
    pub offset: Option<i64>,
}

impl ReplicaSync {
    pub fn from_info(info: &Replication) -> ReplicaSync {
        ReplicaSync {
            link_up: info.link.as_deref() == Some("up"),
            offset: info.replica_offset,
        }
    }
}

/// Pure: why each replica is not yet caught up with `master_offset` (the
/// master's `master_repl_offset` with writes paused); empty when all are.
pub fn lagging(master_offset: i64, replicas: &[(Addr, ReplicaSync)]) -> Vec<String> {
    replicas
        .iter()
        .filter_map(|(a, r)| match r.offset {
            _ if !r.link_up => Some(format!("{a}: link to the master is down")),
            None => Some(format!("{a}: reports no replication offset")),
            Some(o) if o < master_offset => {
                Some(format!("{a}: {} bytes behind", master_offset - o))
            }
            Some(_) => None,
        })
        .collect()
}

/// Pure: a sentinel's flags for the master (`SENTINEL MASTER`) show it
/// carrying out a failover.
pub fn failover_under_way(flags: &str) -> bool {
    flags.split(',').any(|f| f == "failover_in_progress")
}

/// Pure: the new master once more than half of the `n` sentinels name one
/// other than `old`.
pub fn switched_to(views: &Views, n: usize, old: &str) -> Option<Addr> {
    majority_master(views, n).filter(|m| m != old)
}

/// Pure: the order to ask sentinels for SENTINEL FAILOVER: those naming
/// `master` first (they see it as we do), then the rest.
pub fn failover_order(views: &Views, master: &str) -> Vec<Addr> {
    let names =
        |s: &&(Addr, Result<Option<Addr>, String>)| matches!(&s.1, Ok(Some(m)) if m == master);
    let (first, rest): (Vec<_>, Vec<_>) = views.answers.iter().partition(names);
    first
        .into_iter()
        .chain(rest)
        .map(|(s, _)| s.clone())
        .collect()
}

// ---- steps ----------------------------------------------------------------

/// Prints each step with the time since the start.
struct Log {
    start: Instant,
    to_stderr: bool,
}

impl Log {
    fn step(&self, msg: impl AsRef<str>) {
        let line = format!("[{:>6} ms] {}", self.ms(), msg.as_ref());
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

fn target(a: &SwitchoverArgs) -> anyhow::Result<Target> {
    let c = &a.cluster;
    if !c.sentinels.is_empty() {
        for s in &c.sentinels {
            anyhow::ensure!(split_addr(s).is_some(), "--sentinel {s:?} is not HOST:PORT");
        }
        let tls = match &a.tls {
            Some(t) => Some(t.clone()),
            None => c.tls.client()?,
        };
        return Ok(Target {
            sentinels: c.sentinels.clone(),
            master_name: c.master_name_or_default(),
            redis: access(c.password.as_deref(), tls.clone()),
            sentinel: access(c.sentinel_password.as_deref(), tls),
        });
    }
    let o = Options::load(&a.state_dir)
        .context("no --sentinel given (pass --sentinel HOST:PORT for a remote topology), and no local one to switch")?;
    let tls = o.client_tls()?;
    let pw = c.password.as_deref().or(o.spec.password.as_deref());
    let spw = c.sentinel_password.as_deref();
    let spw = spw.or(o.spec.sentinel_password.as_deref());
    Ok(Target {
        sentinels: o.sentinel_addrs(),
        redis: access(pw, tls.clone()),
        sentinel: access(spw, tls),
        master_name: c.master_name.clone().unwrap_or(o.spec.master_name),
    })
}

impl Target {
    async fn views(&self) -> Views {
        let spw = Some(&self.sentinel);
        role::ask(&self.sentinels, spw, &self.master_name, IO_TIMEOUT).await
    }

    async fn node(&self, a: &str, args: &[&str]) -> anyhow::Result<redis_ha_resp::Frame> {
        query_auth(a, Some(&self.redis), args, IO_TIMEOUT)
            .await
            .with_context(|| format!("{} on {a}", args.join(" ")))
    }

    async fn replication(&self, a: &str) -> anyhow::Result<Replication> {
        let f = self.node(a, &["INFO", "replication"]).await?;
        Ok(Replication::parse(&f.as_text().unwrap_or_default()))
    }

    /// The replicas any sentinel may promote (each sentinel chooses from its
    /// own list, and right after a failover some lists are still filling).
    async fn candidates(&self, order: &[Addr]) -> anyhow::Result<Vec<Addr>> {
        let spw = Some(&self.sentinel);
        let mut all: Option<Vec<Addr>> = None;
        for s in order {
            if let Ok(e) = sentinel::replicas(s, spw, &self.master_name, IO_TIMEOUT).await {
                let all = all.get_or_insert_with(Vec::new);
                for c in candidates(&e) {
                    if !all.contains(&c) {
                        all.push(c);
                    }
                }
            }
        }
        all.ok_or_else(|| anyhow!("no sentinel answers SENTINEL REPLICAS {}", self.master_name))
    }

    /// The sentinels whose view of the master carries a failover under way.
    async fn failing_over(&self) -> Vec<Addr> {
        let spw = Some(&self.sentinel);
        let mut busy = Vec::new();
        for s in &self.sentinels {
            let m = sentinel::master_info(s, spw, &self.master_name, IO_TIMEOUT).await;
            if m.is_ok_and(|m| failover_under_way(m.get("flags").map_or("", String::as_str))) {
                busy.push(s.clone());
            }
        }
        busy
    }

    async fn sync_states(&self, replicas: &[Addr]) -> Vec<(Addr, ReplicaSync)> {
        let mut out = Vec::new();
        for r in replicas {
            let s = match self.replication(r).await {
                Ok(i) => ReplicaSync::from_info(&i),
                Err(_) => ReplicaSync {
                    link_up: false,
                    offset: None,
                },
            };
            out.push((r.clone(), s));
        }
        out
    }
}

pub async fn run(a: SwitchoverArgs) -> anyhow::Result<u8> {
    let s = switchover(&a).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    }
    Ok(0)
}

/// The whole switchover; the summary, or why it could not switch.
pub async fn switchover(a: &SwitchoverArgs) -> anyhow::Result<Summary> {
    let log = Log {
        start: Instant::now(),
        to_stderr: a.json,
    };
    let t = target(a)?;
    let deadline = log.start + a.timeout;
    let n = t.sentinels.len();
    let (views, old) = match settled(&t, a, deadline, &log).await? {
        (views, Decision::Switch(m)) => (views, m),
        (_, Decision::NotMaster { agreed }) => return Ok(no_op(&log, &t, a, agreed)),
    };
    log.step(format!(
        "{} of {n} sentinels name master {old}",
        views.votes_for(&old)
    ));
    let order = failover_order(&views, &old);
    let settle = deadline.min(Instant::now() + SETTLE);
    let replicas = linked_candidates(&t, &order, settle, &log).await?;
    let pause = Pause::start(&t, &old, a.pause).await?;
    log.step(format!(
        "writes paused on {old} (CLIENT PAUSE {} WRITE, renewed while this runs)",
        a.pause.as_millis()
    ));
    let sync_deadline = deadline.min(Instant::now() + a.pause);
    let result = switch(&t, &old, &replicas, &order, sync_deadline, deadline, &log).await;
    let pause_ms = match pause.end(&t, &old).await {
        Ok(ms) => {
            log.step(format!("writes unpaused on {old} (paused {ms} ms)"));
            Some(ms)
        }
        Err(e) => {
            let lapse = a.pause.as_millis();
            log.step(format!(
                "could not unpause {old}: {e:#} (the pause lapses within {lapse} ms)"
            ));
            None
        }
    };
    let new = result?;
    let total_ms = log.ms();
    log.step(format!(
        "switched {}: {old} -> {new} in {total_ms} ms",
        t.master_name
    ));
    Ok(Summary {
        master_name: t.master_name,
        switched: true,
        old_master: old,
        new_master: Some(new),
        pause_ms,
        total_ms,
        note: None,
    })
}

/// The sentinels' views and the decision, once no sentinel is still
/// carrying out a failover (a switchover right after another waits for it:
/// starting a second one then would race the first).
async fn settled(
    t: &Target,
    a: &SwitchoverArgs,
    deadline: Instant,
    log: &Log,
) -> anyhow::Result<(Views, Decision)> {
    let mut told = false;
    loop {
        let views = t.views().await;
        let d = decide(&views, t.sentinels.len(), a.only_if_master.as_deref());
        let busy = t.failing_over().await;
        match d {
            Ok(d @ Decision::NotMaster { .. }) => return Ok((views, d)),
            Ok(d) if busy.is_empty() => return Ok((views, d)),
            Err(e) if busy.is_empty() || Instant::now() >= deadline => bail!(e),
            _ if Instant::now() >= deadline => bail!(
                "a failover is still under way on {} : retry once `redis-ha status` is healthy",
                busy.join(", ")
            ),
            _ if !told => {
                told = true;
                log.step(format!(
                    "waiting for the failover under way on {} to end",
                    busy.join(", ")
                ));
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn no_op(log: &Log, t: &Target, a: &SwitchoverArgs, agreed: Addr) -> Summary {
    let me = a.only_if_master.clone().unwrap_or_default();
    let note = format!("{me} is not the master ({agreed} is): nothing to do");
    log.step(&note);
    Summary {
        master_name: t.master_name.clone(),
        switched: false,
        old_master: agreed,
        new_master: None,
        pause_ms: None,
        total_ms: log.ms(),
        note: Some(note),
    }
}

/// The candidates, checked before anything is paused: at least one must be
/// linked to the master now.
/// A replica that is only reconnecting (just after a failover) gets until
/// `deadline`.
async fn linked_candidates(
    t: &Target,
    order: &[Addr],
    deadline: Instant,
    log: &Log,
) -> anyhow::Result<Vec<Addr>> {
    let (replicas, states) = loop {
        let replicas = t.candidates(order).await?;
        let states = t.sync_states(&replicas).await;
        if states.iter().any(|(_, s)| s.link_up) || Instant::now() >= deadline {
            break (replicas, states);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let up = states.iter().filter(|(_, s)| s.link_up).count();
    if up == 0 {
        bail!(
            "no replica Sentinel could promote is linked to the master ({}): nothing was paused; bring a replica up (`redis-ha status` shows them) and retry",
            if replicas.is_empty() { "the sentinels list none".to_string() } else { lagging(i64::MAX, &states).join("; ") }
        );
    }
    log.step(format!(
        "replicas Sentinel may promote: {} ({up} linked)",
        replicas.join(", ")
    ));
    Ok(replicas)
}

/// With writes paused: catch-up, failover, wait for the majority, demote the
/// old master. Returns the new master.
async fn switch(
    t: &Target,
    old: &str,
    replicas: &[Addr],
    order: &[Addr],
    sync_deadline: Instant,
    deadline: Instant,
    log: &Log,
) -> anyhow::Result<Addr> {
    let offset = wait_caught_up(t, old, replicas, sync_deadline).await?;
    log.step(format!("every replica has the master's offset {offset}"));
    let via = request_failover(t, order).await?;
    log.step(format!(
        "SENTINEL FAILOVER {} accepted by {via}",
        t.master_name
    ));
    let new = wait_switched(t, old, deadline).await?;
    log.step(format!(
        "a majority of the sentinels names the new master {new}"
    ));
    demote(t, old, &new).await?;
    log.step(format!("{old} is a replica of {new}"));
    Ok(new)
}

/// Polls until every candidate has the master's offset; the offset.
async fn wait_caught_up(
    t: &Target,
    master: &str,
    replicas: &[Addr],
    deadline: Instant,
) -> anyhow::Result<i64> {
    loop {
        let info = t.replication(master).await?;
        let offset: i64 = info
            .master_repl_offset
            .ok_or_else(|| anyhow!("{master} reports no master_repl_offset"))?;
        let behind = lagging(offset, &t.sync_states(replicas).await);
        if behind.is_empty() {
            return Ok(offset);
        }
        if Instant::now() >= deadline {
            bail!(
                "the replicas did not catch up with the paused master in time ({}): not switching, so no write is lost; check them with `redis-ha status`",
                behind.join("; ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One sentinel's refusal of SENTINEL FAILOVER, as the operator must read
/// it. A `NOPERM` means the ACL user redis-ha logs in to the sentinels as
/// (`--sentinel-password`, the `default` user) lacks the subcommand: the
/// message names the rule to add.
pub fn refusal(sentinel: &str, error: &str) -> String {
    if error.contains("NOPERM") {
        format!(
            "{sentinel}: {error} (the sentinel's ACL user may not run SENTINEL FAILOVER: add `+sentinel|failover` to it, e.g. `ACL SETUSER default +sentinel|failover` on every sentinel)"
        )
    } else {
        format!("{sentinel}: {error}")
    }
}

/// SENTINEL FAILOVER on the first sentinel that accepts it.
async fn request_failover(t: &Target, order: &[Addr]) -> anyhow::Result<Addr> {
    let spw = Some(&t.sentinel);
    let mut refusals = Vec::new();
    for s in order {
        let args = ["SENTINEL", "FAILOVER", t.master_name.as_str()];
        match query_auth(s, spw, &args, IO_TIMEOUT).await {
            Ok(_) => return Ok(s.clone()),
            // -NOGOODSLAVE, -INPROG, unreachable: the next one may do it.
            Err(e) => refusals.push(refusal(s, &e.to_string())),
        }
    }
    bail!(
        "no sentinel started the failover ({}): check the replicas and sentinels with `redis-ha status`",
        refusals.join("; ")
    )
}

async fn wait_switched(t: &Target, old: &str, deadline: Instant) -> anyhow::Result<Addr> {
    let n = t.sentinels.len();
    loop {
        let views = t.views().await;
        if let Some(m) = switched_to(&views, n, old) {
            return Ok(m);
        }
        if Instant::now() >= deadline {
            bail!(
                "no majority of the sentinels named a new master in time ({}): see `redis-ha status`; the sentinels may still finish the failover",
                describe(&views)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Makes the old master a replica of `new` (what Sentinel does seconds
/// later) before writes are released, so none is acknowledged by it.
async fn demote(t: &Target, old: &str, new: &str) -> anyhow::Result<()> {
    let f = t.node(old, &["ROLE"]).await?;
    if let Some(Role::Replica { master, .. }) = Role::from_frame(&f) {
        if master == new {
            return Ok(());
        }
    }
    let (h, p) = split_addr(new).ok_or_else(|| anyhow!("bad address {new}"))?;
    t.node(old, &["REPLICAOF", &h, &p.to_string()]).await?;
    Ok(())
}

/// Writes paused on a node, renewed in the background until [`Pause::end`].
struct Pause {
    since: Instant,
    stop: tokio::sync::oneshot::Sender<()>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Pause {
    async fn start(t: &Target, node: &str, lease: Duration) -> anyhow::Result<Pause> {
        let ms = lease.as_millis().max(1).to_string();
        t.node(node, &["CLIENT", "PAUSE", &ms, "WRITE"]).await?;
        let since = Instant::now();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (t2, node) = (t.clone(), node.to_string());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(lease / 3) => {}
                }
                // Not inside the select: a renewal is never cut half-sent.
                if let Err(e) = t2.node(&node, &["CLIENT", "PAUSE", &ms, "WRITE"]).await {
                    tracing::warn!("cannot renew the pause on {node}: {e:#}");
                }
            }
        });
        Ok(Pause {
            since,
            stop,
            renewer,
        })
    }

    /// Stops renewing, then unpauses; the pause's length in ms.
    async fn end(self, t: &Target, node: &str) -> anyhow::Result<u64> {
        let _ = self.stop.send(());
        let _ = self.renewer.await;
        t.node(node, &["CLIENT", "UNPAUSE"]).await?;
        Ok(self.since.elapsed().as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(answers: &[(&str, Option<&str>)]) -> Views {
        Views::from_answers(
            answers
                .iter()
                .map(|(s, m)| match m {
                    Some(m) => (s.to_string(), Ok(Some(m.to_string()))),
                    None => (s.to_string(), Err("refused".to_string())),
                })
                .collect(),
        )
    }

    #[test]
    fn switches_only_the_master_a_majority_of_all_sentinels_names() {
        let v = views(&[("s0", Some("a:1")), ("s1", Some("a:1")), ("s2", None)]);
        assert_eq!(decide(&v, 3, None), Ok(Decision::Switch("a:1".into())));
        assert_eq!(
            decide(&v, 3, Some("a:1")),
            Ok(Decision::Switch("a:1".into()))
        );
        assert_eq!(
            decide(&v, 3, Some("b:1")),
            Ok(Decision::NotMaster {
                agreed: "a:1".into()
            })
        );
        // One of three reachable: a majority of those answering, not of all.
        let v = views(&[("s0", Some("a:1")), ("s1", None), ("s2", None)]);
        assert!(decide(&v, 3, None)
            .unwrap_err()
            .contains("no master is named by a majority"));
        let v = views(&[("s0", Some("a:1")), ("s1", Some("b:1"))]);
        assert!(decide(&v, 2, Some("a:1")).is_err());
    }

    #[test]
    fn promotable_replicas_are_linked_and_not_priority_zero() {
        let e = |ip: &str, flags: &str, prio: &str| {
            HashMap::from([
                ("ip".to_string(), ip.to_string()),
                ("port".to_string(), "6379".to_string()),
                ("flags".to_string(), flags.to_string()),
                ("slave-priority".to_string(), prio.to_string()),
            ])
        };
        let list = [
            e("r1", "slave", "100"),
            e("r2", "s_down,slave,disconnected", "100"),
            e("r3", "slave", "0"),
            e("r4", "slave", "1"),
        ];
        assert_eq!(candidates(&list), vec!["r1:6379", "r4:6379"]);
    }

    #[test]
    fn caught_up_means_linked_and_at_the_masters_offset() {
        let info =
            Replication::parse("role:slave\r\nmaster_link_status:up\r\nslave_repl_offset:100\r\n");
        let up = ReplicaSync::from_info(&info);
        assert_eq!(
            up,
            ReplicaSync {
                link_up: true,
                offset: Some(100)
            }
        );
        let r = |s: ReplicaSync| vec![("r:1".to_string(), s)];
        assert!(lagging(100, &r(up.clone())).is_empty());
        assert!(lagging(90, &r(up.clone())).is_empty());
        assert_eq!(lagging(130, &r(up.clone())), vec!["r:1: 30 bytes behind"]);
        let down = ReplicaSync {
            link_up: false,
            offset: Some(100),
        };
        assert_eq!(
            lagging(100, &r(down)),
            vec!["r:1: link to the master is down"]
        );
        let none = ReplicaSync {
            link_up: true,
            offset: None,
        };
        assert_eq!(lagging(100, &r(none)).len(), 1);
    }

    #[test]
    fn the_switch_is_done_when_a_majority_names_another_master() {
        let v =
            |a: &str, b: &str, c: &str| views(&[("s0", Some(a)), ("s1", Some(b)), ("s2", Some(c))]);
        assert_eq!(switched_to(&v("a:1", "a:1", "b:1"), 3, "a:1"), None);
        assert_eq!(
            switched_to(&v("b:1", "a:1", "b:1"), 3, "a:1"),
            Some("b:1".into())
        );
        assert_eq!(switched_to(&v("b:1", "c:1", "a:1"), 3, "a:1"), None);
    }

    #[test]
    fn a_failover_under_way_shows_in_the_masters_flags() {
        assert!(failover_under_way(
            "master,failover_in_progress,force_failover"
        ));
        assert!(!failover_under_way("master"));
        assert!(!failover_under_way("master,disconnected"));
        assert!(!failover_under_way(""));
    }

    #[test]
    fn failover_is_asked_first_of_the_sentinels_that_see_the_master() {
        let v = views(&[("s0", None), ("s1", Some("b:1")), ("s2", Some("a:1"))]);
        assert_eq!(failover_order(&v, "a:1"), vec!["s2", "s0", "s1"]);
    }
}
