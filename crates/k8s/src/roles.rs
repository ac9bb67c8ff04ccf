//! Which pod is the master, and whether the deployment is healthy, from the
//! text `redis-cli ROLE` and `SENTINEL get-master-addr-by-name` print.

use serde::Serialize;

/// What one Redis pod says it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Role {
    Master {
        replicas: usize,
    },
    Replica {
        master: String,
        link: Link,
    },
    /// The pod could not be asked (not running, exec failed, error reply).
    Unknown {
        error: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    Up,
    Down,
}

/// The first DNS label: the pod name in `redis-1.redis-headless.ns.svc...`.
pub fn pod_of(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Parses `redis-cli ROLE` (one value per line, as redis-cli prints
/// without a terminal). Master: `master`, offset, then host/port/offset per
/// replica. Replica: `slave`, host, port, state, offset.
pub fn parse_role(out: &str) -> Role {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.first().copied() {
        Some("master") => Role::Master {
            replicas: lines.len().saturating_sub(2) / 3,
        },
        Some("slave") if lines.len() >= 4 => Role::Replica {
            master: pod_of(lines[1]).to_string(),
            link: if lines[3] == "connected" {
                Link::Up
            } else {
                Link::Down
            },
        },
        _ => Role::Unknown {
            error: format!("unexpected ROLE reply: {:?}", out.trim()),
        },
    }
}

/// Parses `SENTINEL get-master-addr-by-name` (host and port lines) into
/// the master's pod name.
pub fn parse_sentinel_master(out: &str) -> Option<String> {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [host, port] if port.parse::<u16>().is_ok() => Some(pod_of(host).to_string()),
        _ => None,
    }
}

/// The deployment's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "health", rename_all = "snake_case")]
pub enum Verdict {
    Healthy {
        master: String,
    },
    /// Writes work, but something needs attention.
    Degraded {
        master: String,
        problems: Vec<String>,
    },
    /// No single master the sentinels agree on.
    Unhealthy {
        problems: Vec<String>,
    },
}

impl Verdict {
    /// 0 healthy, 1 degraded, 2 unhealthy.
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Healthy { .. } => 0,
            Verdict::Degraded { .. } => 1,
            Verdict::Unhealthy { .. } => 2,
        }
    }
}

/// Decides the verdict: exactly one pod must say master, at least `quorum`
/// sentinels must name it, and every other pod must replicate from it
/// with its link up.
pub fn verdict(
    pods: &[(String, Role)],
    sentinels: &[(String, Option<String>)],
    quorum: usize,
) -> Verdict {
    let masters: Vec<&str> = pods
        .iter()
        .filter(|(_, r)| matches!(r, Role::Master { .. }))
        .map(|(p, _)| p.as_str())
        .collect();
    let master = match masters.as_slice() {
        [one] => one.to_string(),
        [] => {
            return Verdict::Unhealthy {
                problems: vec!["no pod reports role master".into()],
            }
        }
        many => {
            return Verdict::Unhealthy {
                problems: vec![format!(
                    "split brain: {} all report role master",
                    many.join(", ")
                )],
            }
        }
    };
    let agree = sentinels
        .iter()
        .filter(|(_, m)| m.as_deref() == Some(&master))
        .count();
    if agree < quorum {
        let views: Vec<String> = sentinels
            .iter()
            .map(|(s, m)| format!("{s}: {}", m.as_deref().unwrap_or("no answer")))
            .collect();
        return Verdict::Unhealthy {
            problems: vec![format!(
                "only {agree} sentinels name {master} as master (quorum {quorum}): {}",
                views.join(", ")
            )],
        };
    }
    let problems = replica_problems(pods, &master, sentinels.len() - agree);
    if problems.is_empty() {
        Verdict::Healthy { master }
    } else {
        Verdict::Degraded { master, problems }
    }
}

fn replica_problems(pods: &[(String, Role)], master: &str, disagreeing: usize) -> Vec<String> {
    let mut problems: Vec<String> = pods
        .iter()
        .filter_map(|(pod, role)| match role {
            Role::Master { .. } => None,
            Role::Replica { master: m, .. } if m != master => {
                Some(format!("{pod} replicates from {m}, not {master}"))
            }
            Role::Replica {
                link: Link::Down, ..
            } => Some(format!("{pod}: link to {master} down")),
            Role::Replica { .. } => None,
            Role::Unknown { error } => Some(format!("{pod}: {error}")),
        })
        .collect();
    if disagreeing > 0 {
        problems.push(format!("{disagreeing} sentinels do not name {master}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "master\n3051\nredis-1.redis-headless.ns.svc.cluster.local\n6379\n3051\nredis-2.redis-headless.ns.svc.cluster.local\n6379\n3037\n";
    const REPLICA: &str =
        "slave\nredis-0.redis-headless.ns.svc.cluster.local\n6379\nconnected\n3051\n";

    fn p(name: &str, out: &str) -> (String, Role) {
        (name.to_string(), parse_role(out))
    }

    fn s(name: &str, master: &str) -> (String, Option<String>) {
        (name.to_string(), Some(master.to_string()))
    }

    #[test]
    fn parses_role_replies() {
        assert_eq!(parse_role(MASTER), Role::Master { replicas: 2 });
        assert_eq!(
            parse_role(REPLICA),
            Role::Replica {
                master: "redis-0".into(),
                link: Link::Up
            }
        );
        let sync = REPLICA.replace("connected", "sync");
        assert!(matches!(
            parse_role(&sync),
            Role::Replica {
                link: Link::Down,
                ..
            }
        ));
        assert!(matches!(
            parse_role("NOAUTH Authentication required."),
            Role::Unknown { .. }
        ));
        assert_eq!(
            parse_sentinel_master("redis-0.redis-headless.ns.svc.cluster.local\n6379\n"),
            Some("redis-0".into())
        );
        assert_eq!(parse_sentinel_master(""), None);
    }

    #[test]
    fn one_master_named_by_the_sentinels_is_healthy() {
        let pods = [
            p("redis-0", MASTER),
            p("redis-1", REPLICA),
            p("redis-2", REPLICA),
        ];
        let sentinels = [
            s("sentinel-0", "redis-0"),
            s("sentinel-1", "redis-0"),
            s("sentinel-2", "redis-0"),
        ];
        assert_eq!(
            verdict(&pods, &sentinels, 2),
            Verdict::Healthy {
                master: "redis-0".into()
            }
        );
        let one_off = [
            s("sentinel-0", "redis-0"),
            s("sentinel-1", "redis-0"),
            ("sentinel-2".into(), None),
        ];
        assert!(matches!(
            verdict(&pods, &one_off, 2),
            Verdict::Degraded { .. }
        ));
    }

    #[test]
    fn two_masters_is_split_brain() {
        let pods = [
            p("redis-0", MASTER),
            p("redis-1", MASTER),
            p("redis-2", REPLICA),
        ];
        let sentinels = [s("sentinel-0", "redis-0"), s("sentinel-1", "redis-0")];
        let v = verdict(&pods, &sentinels, 2);
        assert!(
            matches!(&v, Verdict::Unhealthy { problems } if problems[0].contains("split brain"))
        );
        assert_eq!(v.exit_code(), 2);
    }

    #[test]
    fn no_master_or_no_quorum_is_unhealthy() {
        let pods = [p("redis-1", REPLICA), p("redis-2", REPLICA)];
        assert!(matches!(verdict(&pods, &[], 2), Verdict::Unhealthy { .. }));
        let pods = [p("redis-0", MASTER), p("redis-1", REPLICA)];
        let split = [s("sentinel-0", "redis-0"), s("sentinel-1", "redis-1")];
        assert!(matches!(
            verdict(&pods, &split, 2),
            Verdict::Unhealthy { .. }
        ));
    }

    #[test]
    fn wrong_master_or_down_link_is_degraded() {
        let wrong = REPLICA.replace("redis-0", "redis-2");
        let pods = [p("redis-0", MASTER), p("redis-1", &wrong)];
        let sentinels = [s("sentinel-0", "redis-0"), s("sentinel-1", "redis-0")];
        let v = verdict(&pods, &sentinels, 2);
        assert!(
            matches!(&v, Verdict::Degraded { problems, .. } if problems[0].contains("redis-2"))
        );
        assert_eq!(v.exit_code(), 1);
    }
}
