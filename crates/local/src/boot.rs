//! Runs the boot decision ([`redis_ha_topology::boot`]) for a node about to
//! start, as both callers need it (the local supervisor and `redis-ha
//! init-role`): gather the inputs, decide, and on a wait ask again with
//! backoff (saying what it waits for), on a hand-over ask the sentinels to
//! fail over first. Returns only a master or replica role.

use anyhow::bail;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::{Access, ConnError};
use redis_ha_topology::boot::{self, Boot, Peer, Reason, SentinelAnswer};
use redis_ha_topology::promotion::Promotion;
use redis_ha_topology::{boot_inputs, Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The role a node starts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    ReplicaOf(Addr),
}

/// Whether a node started in `role` for `why` may be promoted before it
/// has synced: only when no node can hold data it lacks (a first boot).
pub fn promotion(role: &Role, why: &Reason) -> Promotion {
    let nothing_to_lose = matches!(why, Reason::FirstBoot | Reason::NobodyHasData);
    match role {
        Role::ReplicaOf(_) => Promotion::for_start(nothing_to_lose),
        Role::Master => Promotion::Now,
    }
}

/// Where to look for the decision's inputs.
pub struct Query<'a> {
    pub sentinels: &'a [Addr],
    pub sentinel_access: &'a Access,
    pub redis_access: &'a Access,
    pub master_name: &'a str,
    /// This node as the sentinels know it, and its data directory.
    pub me: &'a str,
    pub data_dir: PathBuf,
    /// The other Redis nodes, with their data directory when it is on this
    /// machine (the local supervisor); `None`: only seen while running.
    pub peers: Vec<(Addr, Option<PathBuf>)>,
    pub first_master: &'a str,
    pub timeout: Duration,
    /// Give up after this long (`None`: wait as long as it takes).
    pub max_wait: Option<Duration>,
}

/// Longest pause between two looks. Short: once the sentinels answer, the
/// node they name must be up before their down-after runs out (from their
/// own start), or they fail over a master that was merely waiting here,
/// and the writes it took meanwhile go with it (seen with 2 s).
const MAX_BACKOFF: Duration = Duration::from_millis(250);
/// A wait line is repeated this often while nothing changes.
const REPEAT: Duration = Duration::from_secs(10);

/// Decides, waiting and handing over as told; each line it has to say
/// (waits, hand-over, the outcome) goes to `say`.
pub async fn decide(q: &Query<'_>, say: &(dyn Fn(&str) + Sync)) -> anyhow::Result<(Role, Reason)> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut last_line = String::new();
    let mut last_said = start;
    let mut asked_failover = None::<Instant>;
    loop {
        let (answers, unusable) = sentinel_answers(q).await;
        let peers = peers(q).await;
        let disk = boot_inputs::disk(&q.data_dir);
        let inputs = boot::Inputs {
            me: q.me,
            sentinels: &answers,
            disk,
            peers: &peers,
            first_master: q.first_master,
        };
        let line = match boot::decide(&inputs) {
            Boot::Master(why) => return Ok((Role::Master, why)),
            Boot::ReplicaOf(m, why) => return Ok((Role::ReplicaOf(m), why)),
            Boot::Wait(w) => match (&w, &unusable) {
                // Waiting will not help a sentinel it cannot talk to: say
                // what to check in the same line.
                (boot::Wait::Sentinels { .. }, Some(why)) => format!("{}: {w}; {why}", q.me),
                _ => format!("{}: {w}", q.me),
            },
            Boot::HandOver => {
                // Once per failover timeout at most: a failover in progress
                // answers INPROG, and a new request would only be refused.
                if asked_failover.is_none_or(|t| t.elapsed() > Duration::from_secs(15)) {
                    asked_failover = Some(Instant::now());
                    let via = request_failover(q).await;
                    say(&format!(
                        "{}: this node is empty and the sentinels name it master while a replica holds data: asked the sentinels to fail over ({via}); it starts as a replica of the new master",
                        q.me
                    ));
                }
                format!(
                    "{}: waiting for a majority of the sentinels to name the new master",
                    q.me
                )
            }
        };
        if line != last_line || last_said.elapsed() >= REPEAT {
            say(&line);
            last_line = line.clone();
            last_said = Instant::now();
        }
        if let Some(max) = q.max_wait {
            if start.elapsed() >= max {
                bail!("{line} (gave up after {max:?})");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One answer per sentinel (those it cannot talk to count as silent), and
/// the first such sentinel as a message saying what to check.
async fn sentinel_answers(q: &Query<'_>) -> (Vec<SentinelAnswer>, Option<String>) {
    let all = boot_inputs::ask_sentinels(
        q.sentinels,
        Some(q.sentinel_access),
        q.master_name,
        q.timeout,
    )
    .await;
    let mut unusable = None;
    let answers = all
        .into_iter()
        .map(|(s, a)| {
            a.unwrap_or_else(|e| {
                unusable.get_or_insert_with(|| cannot_talk(&s, &e));
                SentinelAnswer::Silent
            })
        })
        .collect();
    (answers, unusable)
}

/// A sentinel that is there but cannot be talked to, as what to check.
fn cannot_talk(s: &str, e: &ConnError) -> String {
    format!(
        "sentinel {s} is there but did not answer ({e}): if the sentinels are on TLS, pass --tls (and --cacert, --cert, --key); if they have a password, --sentinel-password"
    )
}

/// Each peer: running (its replication state), or deciding in its own
/// init-role (the disk it reports), else its disk when it is on this
/// machine, else unknown.
async fn peers(q: &Query<'_>) -> Vec<(Addr, Peer)> {
    let futs = q.peers.iter().map(|(a, dir)| async move {
        let p = match boot_inputs::look(a, Some(q.redis_access), q.timeout).await {
            Peer::Unknown => match dir {
                Some(d) => Peer::Stopped(boot_inputs::disk(d)),
                None => Peer::Unknown,
            },
            seen => seen,
        };
        (a.clone(), p)
    });
    futures::future::join_all(futs).await
}

/// Asks each sentinel in turn for SENTINEL FAILOVER; what happened, as a
/// phrase (`accepted by ...`, or every refusal: the next look retries).
async fn request_failover(q: &Query<'_>) -> String {
    let mut refusals = Vec::new();
    for s in q.sentinels {
        let args = ["SENTINEL", "FAILOVER", q.master_name];
        match query_auth(s, Some(q.sentinel_access), &args, q.timeout).await {
            Ok(_) => return format!("accepted by {s}"),
            Err(e) if e.to_string().contains("INPROG") => {
                return format!("{s}: a failover is already in progress")
            }
            Err(e) => refusals.push(crate::switchover::refusal(s, &e.to_string())),
        }
    }
    format!("refused: {}", refusals.join("; "))
}

/// The outcome as one line, e.g. `redis-1:6379: replica of redis-2:6379
/// (a majority of the sentinels name this master)`.
pub fn describe(me: &str, role: &Role, why: &Reason) -> String {
    match role {
        Role::Master => format!("{me}: master ({why})"),
        Role::ReplicaOf(m) => format!("{me}: replica of {m} ({why})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_replica_on_a_restart_waits_for_its_sync() {
        let r = Role::ReplicaOf("m:1".into());
        assert_eq!(promotion(&r, &Reason::Named), Promotion::AfterSync);
        assert_eq!(promotion(&r, &Reason::ByData), Promotion::AfterSync);
        assert_eq!(promotion(&r, &Reason::FirstBoot), Promotion::Now);
        assert_eq!(promotion(&r, &Reason::NobodyHasData), Promotion::Now);
        assert_eq!(promotion(&Role::Master, &Reason::Named), Promotion::Now);
    }
}
