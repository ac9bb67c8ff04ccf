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
