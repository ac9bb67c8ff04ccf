//! Parsing of `INFO` text and `ROLE` replies.

use redis_ha_resp::Frame;
use std::collections::HashMap;

/// `INFO` output as `field -> value` (section headers and blanks dropped).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A replica as its master's `INFO replication` lists it
/// (`slaveN:ip=..,port=..,state=..,offset=..,lag=..`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLine {
    pub addr: crate::Addr,
    /// `online`, `wait_bgsave`, `send_bulk`...
    pub state: String,
    pub offset: i64,
    /// Seconds since its last `REPLCONF ACK` (sent every second).
    pub lag: Option<i64>,
}

/// `INFO replication`, typed: the one parser of it that status, the
/// proxy's health checks and the switchover share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    /// `master` or `slave`, as Redis says it.
    pub role: String,
    pub master_repl_offset: Option<i64>,
    /// A replica's master (`master_host:master_port`).
    pub master: Option<crate::Addr>,
    /// A replica's `master_link_status` (`up`, `down`).
    pub link: Option<String>,
    /// A replica's `master_link_down_since_seconds` while its link is down
    /// (`-1`, or absent: never up).
    pub link_down_since: Option<i64>,
    pub last_io_seconds: Option<i64>,
    /// A replica's `slave_repl_offset`: how much of the master's stream it has.
    pub replica_offset: Option<i64>,
    /// A master's replicas.
    pub replicas: Vec<ReplicaLine>,
}

impl Replication {
    pub fn parse(text: &str) -> Replication {
        let info = parse_info(text);
        let int = |k: &str| info.get(k).and_then(|v| v.parse::<i64>().ok());
        let master = match (info.get("master_host"), int("master_port")) {
            (Some(h), Some(p)) => Some(crate::addr(h, p as u16)),
            _ => None,
        };
        let mut replicas: Vec<(u32, ReplicaLine)> = info
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("slave")?.parse().ok()?, replica_line(v)?)))
            .collect();
        replicas.sort_by_key(|(i, _)| *i);
        Replication {
            role: info.get("role").cloned().unwrap_or_default(),
            master_repl_offset: int("master_repl_offset"),
            master,
            link: info.get("master_link_status").cloned(),
            link_down_since: int("master_link_down_since_seconds"),
            last_io_seconds: int("master_last_io_seconds_ago"),
            replica_offset: int("slave_repl_offset"),
            replicas: replicas.into_iter().map(|(_, r)| r).collect(),
        }
    }

    pub fn is_replica(&self) -> bool {
        self.role == "slave"
    }

    /// The master's entry for `addr`, if it lists that replica.
    pub fn replica(&self, addr: &str) -> Option<&ReplicaLine> {
        self.replicas.iter().find(|r| r.addr == addr)
    }
}

fn replica_line(v: &str) -> Option<ReplicaLine> {
    let f: HashMap<&str, &str> = v.split(',').filter_map(|kv| kv.split_once('=')).collect();
    Some(ReplicaLine {
        addr: crate::addr(f.get("ip")?, f.get("port")?.parse().ok()?),
        state: f.get("state").unwrap_or(&"").to_string(),
        offset: f.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
        lag: f.get("lag").and_then(|o| o.parse().ok()),
    })
}

/// What a node says it is, from `ROLE`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Role {
    Master {
        offset: i64,
        replicas: Vec<(String, i64)>,
    },
    Replica {
        master: String,
        state: String,
        offset: i64,
    },
    Sentinel {
        masters: Vec<String>,
    },
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Master { .. } => "master",
            Role::Replica { .. } => "replica",
            Role::Sentinel { .. } => "sentinel",
        }
    }

    pub fn from_frame(f: &Frame) -> Option<Role> {
        let v = f.as_array()?;
        let kind = v.first()?.as_text()?;
        match kind.as_str() {
            "master" => {
                let replicas = v
                    .get(2)
                    .and_then(|r| r.as_array())
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|r| {
                        let r = r.as_array()?;
                        let addr = crate::addr(&r.first()?.as_text()?, r.get(1)?.as_int()? as u16);
                        Some((addr, r.get(2)?.as_int()?))
                    })
                    .collect();
                Some(Role::Master {
                    offset: v.get(1)?.as_int()?,
                    replicas,
                })
            }
            "slave" | "replica" => Some(Role::Replica {
                master: crate::addr(&v.get(1)?.as_text()?, v.get(2)?.as_int()? as u16),
                state: v.get(3)?.as_text()?,
                offset: v.get(4)?.as_int()?,
            }),
            "sentinel" => Some(Role::Sentinel {
                masters: v
                    .get(1)?
                    .as_array()?
                    .iter()
                    .filter_map(|m| m.as_text())
                    .collect(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields() {
        let m = parse_info("# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n\r\n");
        assert_eq!(m["role"], "slave");
        assert_eq!(m["master_link_status"], "up");
    }

    #[test]
    fn replication_of_a_master_and_a_replica() {
        let m = Replication::parse(
            "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
             slave1:ip=127.0.0.1,port=6383,state=wait_bgsave,offset=0,lag=3\r\n\
             slave0:ip=127.0.0.1,port=6382,state=online,offset=877,lag=0\r\n\
             master_repl_offset:877\r\n",
        );
        assert!(!m.is_replica());
        assert_eq!(m.master_repl_offset, Some(877));
        assert_eq!(m.replicas.len(), 2);
        assert_eq!(m.replicas[0].addr, "127.0.0.1:6382");
        assert_eq!(
            m.replica("127.0.0.1:6383").map(|r| r.state.as_str()),
            Some("wait_bgsave")
        );
        assert_eq!(m.replica("127.0.0.1:6383").and_then(|r| r.lag), Some(3));
        let r = Replication::parse(
            "role:slave\r\nmaster_host:redis-0.svc\r\nmaster_port:6379\r\n\
             master_link_status:up\r\nmaster_last_io_seconds_ago:1\r\nslave_repl_offset:870\r\n",
        );
        assert!(r.is_replica());
        assert_eq!(r.master.as_deref(), Some("redis-0.svc:6379"));
        assert_eq!(
            (r.link.as_deref(), r.last_io_seconds, r.replica_offset),
            (Some("up"), Some(1), Some(870))
        );
        assert!(r.replicas.is_empty());
    }

    #[test]
    fn role_replies() {
        let f = Frame::Array(vec![
            Frame::bulk("slave"),
            Frame::bulk("127.0.0.1"),
            Frame::Integer(7000),
            Frame::bulk("connected"),
            Frame::Integer(42),
        ]);
        assert_eq!(
            Role::from_frame(&f),
            Some(Role::Replica {
                master: "127.0.0.1:7000".into(),
                state: "connected".into(),
                offset: 42
            })
        );
    }
}
