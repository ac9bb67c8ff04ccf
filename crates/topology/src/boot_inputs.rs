//! Gathers the inputs of the boot decision ([`crate::boot`]) from real
//! parts: each sentinel's answer (`SENTINEL MASTER`), a node's data files,
//! and a running peer's replication state (`INFO replication`, `DBSIZE`).

use crate::boot::{Disk, Running, SentinelAnswer};
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

/// A running node's replication state; `None` when it does not answer.
pub async fn probe<L: Credentials + ?Sized + Sync>(
    node: &str,
    pw: Option<&L>,
    timeout: Duration,
) -> Option<Running> {
    let info = query_auth(node, pw, &["INFO", "replication"], timeout)
        .await
        .ok()?;
    let info = parse_info(&info.as_text()?);
    let keys = query_auth(node, pw, &["DBSIZE"], timeout)
        .await
        .ok()?
        .as_int()?;
    Some(Running {
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
            written_ms: t
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        },
    }
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
        assert!(matches!(disk(d.path()), Disk::HasData { written_ms } if written_ms > 0));
    }
}
