//! `redis-ha replica-guard`: makes a restarted replica promotable again once
//! it has synced (see [`redis_ha_topology::promotion`]). A node restarted
//! from its disk starts with `replica-priority 0`; this watches it and,
//! when it has synced from a master that a majority of the sentinels see
//! up, sets its priority back. On Kubernetes it is a sidecar of each Redis
//! pod (it runs as long as the pod); the local supervisor starts one per
//! restarted node, until that node is promotable.

use crate::boot::Role;
use crate::cluster_args::ClusterArgs;
use anyhow::Context;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::{Access, Login};
use redis_ha_topology::info::parse_info;
use redis_ha_topology::promotion::{self, Action, Link, Promotion, Seen, PROMOTABLE_PRIORITY};
use redis_ha_topology::{sentinel, split_addr, Addr};
use std::time::{Duration, Instant};

/// Watch a Redis node and raise its `replica-priority` from 0 once it has
/// synced from a master the sentinels see up. Redis starts a restarted
/// node unpromotable (`replica-priority 0` in its config) because its
/// replication offset is 0 until it syncs, so Sentinel cannot tell it from
/// a stale one.
///
/// Example (the Redis pods' sidecar):
///   redis-ha replica-guard --node localhost:6379 \
///     --sentinel sentinel-0.sentinel-headless:26379 --master-name mymaster
#[derive(clap::Args, Debug, Clone)]
pub struct GuardArgs {
    /// The sentinels (every configured one: a majority must see the
    /// master up), master name, passwords, TLS.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The Redis node to watch.
    #[arg(long, value_name = "HOST:PORT", default_value = "localhost:6379")]
    pub node: String,
    /// Exit once the node is promotable, or when it has not answered for
    /// --gone-after (the local supervisor's use); default: watch for as
    /// long as the process runs (a restarted container starts at 0 again).
    #[arg(long)]
    pub until_promotable: bool,
    /// With --until-promotable: exit when the node has not answered this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub gone_after: Duration,
    /// Keep this role file (the Kubernetes pod's `/data/role.conf`, which
    /// `init-role` writes) in step with the node's role as Sentinel changes
    /// it, as `CONFIG REWRITE` keeps a writable redis.conf: after a stop of
    /// every node with the sentinels' state lost, it says which node was
    /// master last.
    #[arg(long, value_name = "FILE")]
    pub role_file: Option<std::path::PathBuf>,
    /// How often to look while the node is not promotable (once a second
    /// otherwise): soon after the sync, so Sentinel's next INFO of the
    /// replica (every second while its link was down) already sees it.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub every: Duration,
}

/// Where the guard looks, resolved from its arguments.
pub struct Target {
    pub node: Addr,
    /// The role file to keep in step (see [`GuardArgs::role_file`]).
    pub role_file: Option<std::path::PathBuf>,
    pub node_access: Access,
    pub sentinels: Vec<Addr>,
    pub sentinel_access: Access,
    pub master_name: String,
}

/// When the guard stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Once the node is promotable, or gone for this long.
    Promotable { gone_after: Duration },
    /// Never (a sidecar).
    Forever,
}

const TIMEOUT: Duration = Duration::from_secs(2);
/// How often a sidecar looks while its node is promotable.
const IDLE: Duration = Duration::from_secs(1);

pub async fn run(a: GuardArgs) -> anyhow::Result<u8> {
    let c = &a.cluster;
    anyhow::ensure!(
        !c.sentinels.is_empty(),
        "replica-guard needs every sentinel: --sentinel HOST:PORT (repeatable)"
    );
    for s in c.sentinels.iter().chain([&a.node]) {
        anyhow::ensure!(split_addr(s).is_some(), "{s:?} is not HOST:PORT");
    }
    let tls = c.tls.client()?;
    let t = Target {
        node: a.node.clone(),
        role_file: a.role_file.clone(),
        node_access: Access {
            login: c.password.as_deref().map(Login::default_user),
            tls: tls.clone(),
        },
        sentinels: c.sentinels.clone(),
        sentinel_access: Access {
            login: c.sentinel_password.as_deref().map(Login::default_user),
            tls,
        },
        master_name: c.master_name_or_default(),
    };
    let until = match a.until_promotable {
        true => Until::Promotable {
            gone_after: a.gone_after,
        },
        false => Until::Forever,
    };
    watch(&t, until, a.every, &|l| println!("{l}")).await;
    Ok(0)
}

/// Looks every `every`, raising the priority when [`promotion::decide`]
/// says so; each change of what it waits for is said once.
pub async fn watch(t: &Target, until: Until, every: Duration, say: &(dyn Fn(&str) + Sync)) {
    let mut last_line = String::new();
    let mut last_answer = Instant::now();
    loop {
        let mut pause = every;
        let line = match look(t).await {
            Ok((seen, role)) => {
                last_answer = Instant::now();
                if let Some(f) = &t.role_file {
                    match record_role(f, &role) {
                        Ok(true) => say(&format!(
                            "{}: role file {} now says {role:?}",
                            t.node,
                            f.display()
                        )),
                        Ok(false) => {}
                        Err(e) => say(&format!("{}: {e:#}", t.node)),
                    }
                }
                match promotion::decide(&seen) {
                    Action::Nothing if until != Until::Forever => return,
                    Action::Nothing => {
                        // Promotable: only a restart of the node (back at 0)
                        // changes that, and it must sync first anyway.
                        pause = IDLE;
                        String::new()
                    }
                    Action::Wait(what) => {
                        format!("{}: not promotable yet, waiting for {what}", t.node)
                    }
                    Action::Raise => match raise(t).await {
                        Ok(()) => {
                            say(&format!(
                                "{}: synced; replica-priority {PROMOTABLE_PRIORITY}",
                                t.node
                            ));
                            continue;
                        }
                        Err(e) => format!("{}: cannot raise its replica-priority: {e:#}", t.node),
                    },
                }
            }
            Err(e) => match until {
                Until::Promotable { gone_after } if last_answer.elapsed() > gone_after => {
                    say(&format!(
                        "{}: gone for {gone_after:?}; the guard stops",
                        t.node
                    ));
                    return;
                }
                _ => format!("{}: {e:#}", t.node),
            },
        };
        if line != last_line && !line.is_empty() {
            say(&line);
        }
        last_line = line;
        tokio::time::sleep(pause).await;
    }
}

/// The node's INFO replication and the sentinels' view of its master.
async fn look(t: &Target) -> anyhow::Result<(Seen, Role)> {
    let info = query_auth(
        &t.node,
        Some(&t.node_access),
        &["INFO", "replication"],
        TIMEOUT,
    )
    .await
    .context("no answer")?;
    if let Some(e) = info.error_message() {
        anyhow::bail!("{e}"); // LOADING while it reads its AOF, or a login refused
    }
    let text = info.as_text().unwrap_or_default();
    let f = parse_info(&text);
    let get = |k: &str| f.get(k).map(String::as_str);
    let link = promotion::link_of(
        get("role").unwrap_or(""),
        get("master_link_status"),
        get("master_sync_in_progress") == Some("1"),
    );
    let priority = get("slave_priority").or(get("replica_priority"));
    let priority = priority.and_then(|p| p.parse().ok());
    // Only worth asking the sentinels when the answer could matter.
    let up = match (priority, link) {
        (Some(0), Link::Synced) => sentinels_see_master_up(t).await,
        _ => 0,
    };
    let role = match (link, get("master_host"), get("master_port")) {
        (Link::Master, _, _) => Role::Master,
        (_, Some(h), Some(p)) => Role::ReplicaOf(format!("{h}:{p}")),
        _ => anyhow::bail!("a replica without master_host/master_port"),
    };
    let seen = Seen {
        priority,
        link,
        sentinels_see_master_up: up,
        sentinels: t.sentinels.len(),
    };
    Ok((seen, role))
}

/// Rewrites the role file when it no longer says `role` (a restart of the
/// container in place then starts in the role Sentinel gave, and a
/// replica unpromotable until synced). Atomic: a new file, renamed.
fn record_role(file: &std::path::Path, role: &Role) -> anyhow::Result<bool> {
    let old = std::fs::read_to_string(file).unwrap_or_default();
    if role_in(&old).as_ref() == Some(role) {
        return Ok(false);
    }
    // A restart in place comes back from its disk: a replica then waits
    // for its sync, as after init-role.
    let promotion = match role {
        Role::Master => Promotion::Now,
        Role::ReplicaOf(_) => Promotion::AfterSync,
    };
    let text = crate::init_role::include_for(role, promotion)?;
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot replace {}", file.display()))?;
    Ok(true)
}

/// Pure: the role a role file gives (`None`: unreadable `replicaof`).
fn role_in(text: &str) -> Option<Role> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("replicaof"));
    match line {
        None => Some(Role::Master),
        Some(l) => match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, h, p] => Some(Role::ReplicaOf(format!("{h}:{p}"))),
            _ => None,
        },
    }
}

async fn sentinels_see_master_up(t: &Target) -> usize {
    let asks = t.sentinels.iter().map(|s| async move {
        let m = sentinel::master_info(s, Some(&t.sentinel_access), &t.master_name, TIMEOUT).await;
        m.is_ok_and(|m| m.get("flags").is_some_and(|f| promotion::master_up(f)))
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .filter(|up| *up)
        .count()
}

async fn raise(t: &Target) -> anyhow::Result<()> {
    let p = PROMOTABLE_PRIORITY.to_string();
    let args = ["CONFIG", "SET", "replica-priority", p.as_str()];
    let f = query_auth(&t.node, Some(&t.node_access), &args, TIMEOUT).await?;
    match f.error_message() {
        Some(e) => anyhow::bail!("{e}"),
        None => Ok(()),
    }
}

/// Starts the guard for redis-`i` of a local topology that was just
/// restarted unpromotable: in this process when it owns the nodes (they
/// die with it) or is not the redis-ha binary (a test embedding the
/// supervisor: its runtime outlives the drill), else as a detached
/// `redis-ha replica-guard --until-promotable` beside the node, logging
/// to its directory.
pub fn start_local(t: &crate::Topology, i: usize) -> anyhow::Result<()> {
    let o = &t.opts;
    let node = o.redis_addrs()[i].clone();
    let bin = crate::topo::own_binary()?;
    let is_redis_ha = bin.file_stem().is_some_and(|n| n == "redis-ha");
    if t.attached() || !is_redis_ha {
        let target = Target {
            node,
            role_file: None,
            node_access: t.redis_access().clone(),
            sentinels: o.sentinel_addrs(),
            sentinel_access: t.sentinel_access().clone(),
            master_name: o.spec.master_name.clone(),
        };
        let until = Until::Promotable {
            gone_after: Duration::from_secs(30),
        };
        tokio::spawn(async move {
            watch(&target, until, Duration::from_millis(50), &|l| {
                tracing::info!("{l}")
            })
            .await
        });
        return Ok(());
    }
    let mut args: Vec<String> = vec!["replica-guard".into(), "--node".into(), node];
    for s in o.sentinel_addrs() {
        args.extend(["--sentinel".into(), s]);
    }
    args.extend(["--master-name".into(), o.spec.master_name.clone()]);
    args.push("--until-promotable".into());
    if let Some(p) = o.pki() {
        args.extend(["--tls".into(), "--cacert".into(), path(&p.ca())]);
        args.extend(["--cert".into(), path(&p.client_cert())]);
        args.extend(["--key".into(), path(&p.client_key())]);
    }
    // Passwords by environment, not on the command line (`ps`).
    let env = crate::topo::password_env(&o.spec.password, &o.spec.sentinel_password);
    let dir = o.node_dir(&redis_ha_topology::Spec::redis_name(i));
    crate::process::spawn_args(&bin, &args, &env, &dir.join("guard.log"), false)?;
    Ok(())
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_file_reads_as_init_role_writes_it() {
        assert_eq!(role_in(""), Some(Role::Master));
        let r = Role::ReplicaOf("redis-1.h:6379".into());
        let text = crate::init_role::include_for(&r, Promotion::AfterSync).unwrap();
        assert_eq!(role_in(&text), Some(r));
        assert_eq!(role_in("replicaof h"), None);
    }

    #[test]
    fn the_role_file_is_rewritten_only_when_the_role_changed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("role.conf");
        std::fs::write(&f, "").unwrap();
        assert!(!record_role(&f, &Role::Master).unwrap());
        let r = Role::ReplicaOf("m:6379".into());
        assert!(record_role(&f, &r).unwrap());
        assert_eq!(
            role_in(&std::fs::read_to_string(&f).unwrap()),
            Some(r.clone())
        );
        assert!(std::fs::read_to_string(&f)
            .unwrap()
            .contains("replica-priority 0"));
        assert!(!record_role(&f, &r).unwrap());
        assert!(record_role(&f, &Role::Master).unwrap());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "");
    }
}
