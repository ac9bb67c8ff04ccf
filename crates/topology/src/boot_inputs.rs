//! Gathers the inputs of the boot decision ([`crate::boot`]) from real
//! parts: each sentinel's answer (`SENTINEL MASTER`), a node's data files,
//! a running peer's replication state (`INFO replication`, `DBSIZE`), and
//! the disk of a peer still deciding in its own `init-role` (its answer).

use crate::boot::{Disk, Peer, Running, SentinelAnswer};
use crate::info::parse_info;
use crate::Addr;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::{ConnError, Credentials, Frame};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// One sentinel's answer (see [`classify`]).
pub async fn ask_sentinel<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Result<SentinelAnswer, ConnError> {
    classify(query_auth(sentinel, pw, &["SENTINEL", "MASTER", name], timeout).await)
}

/// Pure: a `SENTINEL MASTER name` reply as an answer. Absence (refused,
/// silent) is `Silent`; an unknown master `NoMaster`; `Err` for a sentinel
/// that is there but did not answer (a reset while it starts, or TLS, a
/// password, a protocol mismatch): it does not vote either, and the caller
/// can say what to check.
pub fn classify(reply: Result<Frame, ConnError>) -> Result<SentinelAnswer, ConnError> {
    let f = match reply {
        Ok(f) => f,
        Err(ConnError::Connect { .. } | ConnError::Timeout(_)) => {
            return Ok(SentinelAnswer::Silent)
        }
        Err(ConnError::Server(e)) if e.contains("No such master") => {
            return Ok(SentinelAnswer::NoMaster)
        }
        Err(e) => return Err(e),
    };
    if let Some(e) = f.error_message() {
        if e.contains("No such master") {
            return Ok(SentinelAnswer::NoMaster);
        }
        return Err(ConnError::Server(e.to_string()));
    }
    let m: std::collections::HashMap<String, String> = f.into_pairs().into_iter().collect();
    let get = |k: &str| m.get(k).cloned().unwrap_or_default();
    let Ok(port) = get("port").parse::<u16>() else {
        return Ok(SentinelAnswer::NoMaster);
    };
    Ok(SentinelAnswer::Names {
        master: crate::addr(&get("ip"), port),
        epoch: get("config-epoch").parse().unwrap_or(0),
        replicas: get("num-slaves").parse().unwrap_or(0),
    })
}

/// Every sentinel's answer, asked concurrently, in the order given.
pub async fn ask_sentinels<L: Credentials + ?Sized + Sync>(
    sentinels: &[Addr],
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Vec<(Addr, Result<SentinelAnswer, ConnError>)> {
    let futs = sentinels
        .iter()
        .map(|s| async move { (s.clone(), ask_sentinel(s, pw, name, timeout).await) });
    futures::future::join_all(futs).await
}

/// What `redis-ha init-role` answers every request with on its node's
/// port while it decides: an error (so Sentinel and clients count the node
/// as down, as when nothing listens) that tells its peers what its disk
/// holds: a Kubernetes init container sees only its own volume.
pub const INIT_ROLE_ERROR: &str = "INITROLE";

/// Pure: that answer, for node `me` whose disk is `d`.
pub fn init_role_reply(me: &str, d: Disk) -> String {
    let data = match d {
        Disk::Empty => "none".to_string(),
        Disk::HasData {
            written_ms,
            master_since_ms: None,
        } => format!("written_ms={written_ms}"),
        Disk::HasData {
            written_ms,
            master_since_ms: Some(since),
        } => format!("written_ms={written_ms} master_since_ms={since}"),
    };
    format!("{INIT_ROLE_ERROR} {me} is choosing its role (redis-ha init-role); data: {data}")
}

/// Pure: the disk such an answer reports; `None` for any other message.
pub fn parse_init_role_reply(msg: &str) -> Option<Disk> {
    let rest = msg.trim_start_matches('-').strip_prefix(INIT_ROLE_ERROR)?;
    let data = rest.rsplit_once("data: ")?.1.trim();
    if data == "none" {
        return Some(Disk::Empty);
    }
    let mut words = data.split_whitespace();
    let ms = words.next()?.strip_prefix("written_ms=")?.parse().ok()?;
    let since = match words.next() {
        None => None,
        Some(w) => Some(w.strip_prefix("master_since_ms=")?.parse().ok()?),
    };
    Some(Disk::HasData {
        written_ms: ms,
        master_since_ms: since,
    })
}

/// A peer as seen over the network: running (its replication state), in
/// its init-role (its disk, as when stopped), or unknown.
pub async fn look<L: Credentials + ?Sized + Sync>(
    node: &str,
    pw: Option<&L>,
    timeout: Duration,
) -> Peer {
    match running(node, pw, timeout).await {
        Ok(r) => Peer::Running(r),
        Err(ConnError::Server(m)) => parse_init_role_reply(&m).map_or(Peer::Unknown, Peer::Stopped),
        Err(_) => Peer::Unknown,
    }
}

/// A running node's replication state; `None` when it does not answer.
pub async fn probe<L: Credentials + ?Sized + Sync>(
    node: &str,
    pw: Option<&L>,
    timeout: Duration,
) -> Option<Running> {
    running(node, pw, timeout).await.ok()
}

async fn running<L: Credentials + ?Sized + Sync>(
    node: &str,
    pw: Option<&L>,
    timeout: Duration,
) -> Result<Running, ConnError> {
    let bad = |what: &str| ConnError::Server(format!("{node}: unexpected {what} reply"));
    let info = query_auth(node, pw, &["INFO", "replication"], timeout).await?;
    let info = parse_info(&info.as_text().ok_or_else(|| bad("INFO"))?);
    let keys = query_auth(node, pw, &["DBSIZE"], timeout)
        .await?
        .as_int()
        .ok_or_else(|| bad("DBSIZE"))?;
    Ok(Running {
        is_master: info.get("role").map(String::as_str) == Some("master"),
        replid: info.get("master_replid").cloned().unwrap_or_default(),
        offset: info
            .get("master_repl_offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0),
        keys: keys.max(0) as u64,
    })
}

/// What a node's data directory holds: its RDB (`dump.rdb`) and AOF files
/// (`appendonlydir/`). A missing or empty directory is [`Disk::Empty`];
/// otherwise the newest modification time of those files says when the
/// node last wrote (Redis appends every write to the AOF).
pub fn disk(dir: &Path) -> Disk {
    let mut files = vec![dir.join("dump.rdb")];
    if let Ok(rd) = std::fs::read_dir(dir.join("appendonlydir")) {
        files.extend(rd.flatten().map(|e| e.path()));
    }
    let newest = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .filter(|m| m.is_file() && m.len() > 0)
        .filter_map(|m| m.modified().ok())
        .max();
    match newest {
        None => Disk::Empty,
        Some(t) => Disk::HasData {
            written_ms: unix_ms(t),
            master_since_ms: master_since(dir),
        },
    }
}

fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a node's role is recorded, beside its data: on Kubernetes the
/// role file in the data volume (`init-role` writes it, the replica guard
/// rewrites it when Sentinel changes the role); locally the node's
/// `redis.conf`, one level up, which Sentinel's `CONFIG REWRITE` keeps.
pub fn role_record(dir: &Path) -> Option<std::path::PathBuf> {
    [dir.join(ROLE_FILE), dir.join("..").join("redis.conf")]
        .into_iter()
        .find(|f| f.is_file())
}

/// The Kubernetes role file's name in the data volume.
pub const ROLE_FILE: &str = "role.conf";

/// When the role record says this node was made master (its last change),
/// `None` when it says replica (a `replicaof` line) or there is none.
pub fn master_since(dir: &Path) -> Option<u64> {
    let f = role_record(dir)?;
    let text = std::fs::read_to_string(&f).ok()?;
    if says_replica(&text) {
        return None;
    }
    Some(unix_ms(std::fs::metadata(&f).ok()?.modified().ok()?))
}

/// Pure: whether a config text makes the node a replica.
pub fn says_replica(conf: &str) -> bool {
    conf.lines().any(|l| {
        let w = l.split_whitespace().next().unwrap_or("");
        w.eq_ignore_ascii_case("replicaof") || w.eq_ignore_ascii_case("slaveof")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::bulk(s.to_string())
    }

    #[test]
    fn sentinel_replies_are_classified() {
        let pairs = [
            "name",
            "m",
            "ip",
            "10.0.0.2",
            "port",
            "6379",
            "config-epoch",
            "3",
            "num-slaves",
            "2",
        ];
        let f = Frame::Array(pairs.iter().map(|s| bulk(s)).collect());
        assert_eq!(
            classify(Ok(f)).unwrap(),
            SentinelAnswer::Names {
                master: "10.0.0.2:6379".into(),
                epoch: 3,
                replicas: 2
            }
        );
        let unknown = Frame::Error("ERR No such master with that name".into());
        assert_eq!(
            classify(Err(ConnError::Server(
                "ERR No such master with that name".into()
            )))
            .unwrap(),
            SentinelAnswer::NoMaster
        );
        assert_eq!(classify(Ok(unknown)).unwrap(), SentinelAnswer::NoMaster);
        let refused = ConnError::Connect {
            addr: "s:1".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(classify(Err(refused)).unwrap(), SentinelAnswer::Silent);
        assert_eq!(
            classify(Err(ConnError::Timeout(Duration::from_secs(1)))).unwrap(),
            SentinelAnswer::Silent
        );
        // There, but cannot be talked to: not a vote, and an explanation.
        assert!(classify(Err(ConnError::Closed)).is_err());
        let noauth = Frame::Error("NOAUTH Authentication required.".into());
        assert!(classify(Ok(noauth)).is_err());
    }

    #[test]
    fn an_init_role_answer_carries_its_disk_and_nothing_else_parses() {
        for d in [
            Disk::Empty,
            Disk::HasData {
                written_ms: 1_765_000_000_123,
                master_since_ms: None,
            },
            Disk::HasData {
                written_ms: 1_765_000_000_123,
                master_since_ms: Some(1_765_000_000_001),
            },
        ] {
            let r = init_role_reply("redis-1.h:6379", d);
            assert!(r.starts_with("INITROLE redis-1.h:6379 is choosing its role"));
            assert_eq!(parse_init_role_reply(&r), Some(d));
            assert_eq!(parse_init_role_reply(&format!("-{r}")), Some(d));
        }
        assert_eq!(parse_init_role_reply("LOADING Redis is loading"), None);
        assert_eq!(
            parse_init_role_reply("INITROLE x; data: written_ms=zz"),
            None
        );
        assert_eq!(parse_init_role_reply("ERR data: none"), None);
        assert_eq!(
            parse_init_role_reply("INITROLE x; data: written_ms=1 since=2"),
            None
        );
    }

    #[test]
    fn a_missing_or_empty_data_dir_is_empty_and_files_are_data() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(disk(&d.path().join("nope")), Disk::Empty);
        assert_eq!(disk(d.path()), Disk::Empty);
        std::fs::create_dir(d.path().join("appendonlydir")).unwrap();
        std::fs::write(d.path().join("appendonlydir/appendonly.aof.1.incr.aof"), "").unwrap();
        assert_eq!(disk(d.path()), Disk::Empty);
        std::fs::write(
            d.path().join("appendonlydir/appendonly.aof.1.incr.aof"),
            "x",
        )
        .unwrap();
        assert!(
            matches!(disk(d.path()), Disk::HasData { written_ms, master_since_ms: None } if written_ms > 0)
        );
        // A role record without `replicaof`: master since its last change.
        std::fs::write(d.path().join(ROLE_FILE), "").unwrap();
        assert!(matches!(disk(d.path()), Disk::HasData { master_since_ms: Some(t), .. } if t > 0));
        std::fs::write(
            d.path().join(ROLE_FILE),
            "replicaof m 6379\nreplica-priority 0\n",
        )
        .unwrap();
        assert!(matches!(
            disk(d.path()),
            Disk::HasData {
                master_since_ms: None,
                ..
            }
        ));
    }

    #[test]
    fn a_config_is_a_replica_s_when_it_has_replicaof_or_slaveof() {
        assert!(says_replica("port 1\nreplicaof h 6379\n"));
        assert!(says_replica("slaveof h 6379"));
        assert!(!says_replica("# replicaof h 6379\nport 1\n"));
        assert!(!says_replica(""));
    }
}
