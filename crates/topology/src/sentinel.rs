//! Sentinel queries used by the control plane: who is master, what each
//! sentinel sees, and quorum checks. `pw` is the sentinels' own password
//! (their `requirepass`), if they have one.

use crate::Addr;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::{ConnError, Connection, Credentials, Frame};
use std::collections::HashMap;
use std::time::Duration;

/// `SENTINEL GET-MASTER-ADDR-BY-NAME`; `Ok(None)` when the sentinel does not
/// know the master.
pub async fn master_addr<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Result<Option<Addr>, ConnError> {
    let f = query_auth(
        sentinel,
        pw,
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name],
        timeout,
    )
    .await?;
    Ok(parse_master_addr(&f))
}

pub fn parse_master_addr(f: &Frame) -> Option<Addr> {
    let v = f.as_array()?;
    Some(crate::addr(
        &v.first()?.as_text()?,
        v.get(1)?.as_int()? as u16,
    ))
}

/// Every sentinel's answer, in the order given, asked concurrently.
pub async fn ask_master_all<L: Credentials + ?Sized + Sync>(
    sentinels: &[Addr],
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Vec<(Addr, Result<Option<Addr>, ConnError>)> {
    let futs = sentinels
        .iter()
        .map(|s| async move { (s.clone(), master_addr(s, pw, name, timeout).await) });
    futures::future::join_all(futs).await
}

/// `SENTINEL MASTER name` as a field map (flags, num-slaves, quorum...).
pub async fn master_info<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Result<HashMap<String, String>, ConnError> {
    let f = query_auth(sentinel, pw, &["SENTINEL", "MASTER", name], timeout).await?;
    Ok(f.into_pairs().into_iter().collect())
}

/// Whether a sentinel is in TILT mode (`INFO sentinel`: `sentinel_tilt:1`).
/// Sentinel enters TILT when its timer saw a jump of more than 2 s (a
/// stalled process, a slow fsync of its config, a clock change) and then
/// takes no action, failovers included, until 30 s pass without one.
pub async fn in_tilt<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    timeout: Duration,
) -> Result<bool, ConnError> {
    let f = query_auth(sentinel, pw, &["INFO", "sentinel"], timeout).await?;
    Ok(parse_tilt(&f.as_text().unwrap_or_default()))
}

/// `sentinel_tilt:1` in `INFO sentinel` text.
pub fn parse_tilt(info: &str) -> bool {
    crate::info::parse_info(info)
        .get("sentinel_tilt")
        .is_some_and(|v| v == "1")
}

/// `SENTINEL REPLICAS name`, one field map per replica.
pub async fn replicas<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Result<Vec<HashMap<String, String>>, ConnError> {
    list(sentinel, pw, "REPLICAS", name, timeout).await
}

/// `SENTINEL SENTINELS name`: the *other* sentinels this one knows.
pub async fn sentinels<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Result<Vec<HashMap<String, String>>, ConnError> {
    list(sentinel, pw, "SENTINELS", name, timeout).await
}

async fn list<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    what: &str,
    name: &str,
    timeout: Duration,
) -> Result<Vec<HashMap<String, String>>, ConnError> {
    let f = query_auth(sentinel, pw, &["SENTINEL", what, name], timeout).await?;
    Ok(entries(f))
}

/// A SENTINEL REPLICAS/SENTINELS reply as one field map per entry.
fn entries(f: Frame) -> Vec<HashMap<String, String>> {
    f.into_array()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.into_pairs().into_iter().collect())
        .collect()
}

/// `SENTINEL CKQUORUM name`: `Ok(message)` when failover is possible.
pub async fn ckquorum<L: Credentials + ?Sized + Sync>(
    sentinel: &str,
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Result<String, ConnError> {
    let f = query_auth(sentinel, pw, &["SENTINEL", "CKQUORUM", name], timeout).await?;
    Ok(f.as_text().unwrap_or_default())
}

/// The `ip:port` of an entry from SENTINEL REPLICAS/SENTINELS.
pub fn entry_addr(e: &HashMap<String, String>) -> Option<Addr> {
    Some(crate::addr(e.get("ip")?, e.get("port")?.parse().ok()?))
}

/// Flags such as `s_down`, `o_down`, `disconnected`, `master`, `slave`.
/// A replica entry's `slave-priority` (0: Sentinel never promotes it).
pub fn entry_priority(e: &HashMap<String, String>) -> Option<u32> {
    e.get("slave-priority")
        .or(e.get("replica-priority"))
        .and_then(|p| p.parse().ok())
}

pub fn entry_flags(e: &HashMap<String, String>) -> Vec<String> {
    e.get("flags")
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// One sentinel's whole view of a master, read on one connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// `SENTINEL MASTER name` (ip, port, flags, config-epoch...).
    pub master: HashMap<String, String>,
    /// `SENTINEL REPLICAS name`.
    pub replicas: Vec<HashMap<String, String>>,
    /// `SENTINEL SENTINELS name`: the other sentinels it knows.
    pub peers: Vec<HashMap<String, String>>,
}

impl View {
    pub fn master_addr(&self) -> Option<Addr> {
        entry_addr(&self.master)
    }

    pub fn config_epoch(&self) -> u64 {
        self.master
            .get("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads a sentinel's [`View`] of master `name`.
pub async fn view<L: Credentials + ?Sized>(
    sentinel: &str,
    pw: Option<&L>,
    name: &str,
    timeout: Duration,
) -> Result<View, ConnError> {
    let mut c = Connection::connect_auth(sentinel, pw, timeout).await?;
    c.timeout = timeout;
    let mut ask = async |what: &str| c.request_ok(&["SENTINEL", what, name]).await;
    let master = ask("MASTER").await?.into_pairs().into_iter().collect();
    let replicas = entries(ask("REPLICAS").await?);
    let peers = entries(ask("SENTINELS").await?);
    Ok(View {
        master,
        replicas,
        peers,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_tilt;

    #[test]
    fn tilt_is_read_from_info_sentinel() {
        let on = "# Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:1\r\nsentinel_tilt_since_seconds:3\r\n";
        assert!(parse_tilt(on));
        assert!(!parse_tilt("# Sentinel\r\nsentinel_tilt:0\r\n"));
        assert!(!parse_tilt(""));
    }
}
