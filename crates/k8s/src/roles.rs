//! Which pod is the master, and whether the deployment is healthy, from the
//! text `redis-cli ROLE`, `SENTINEL get-master-addr-by-name` and `SENTINEL
//! REPLICAS` print.

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

/// Parses `SENTINEL REPLICAS name` as redis-cli prints it without a
/// terminal (every field name and value on a line of its own, each replica
/// starting at `name`; an empty value is an empty line) into the pods of
/// the replicas the sentinel can use: those it does not flag `s_down`,
/// `o_down` or `disconnected`, that answered its ping within 5 s and sent
/// its INFO within 30 s (`last-ok-ping-reply`, `info-refresh`, in ms), and
/// whose `slave-priority` is not 0 (a restart not yet synced):
/// Sentinel's own bounds for a replica it would promote. Flags alone lag:
/// a replica just added (the old master at `+switch-master`) or just
/// restarted at a new address is not flagged down for down-after ms.
/// `None` when the text is not such a reply (an error, no answer).
pub fn parse_sentinel_replicas(out: &str) -> Option<Vec<String>> {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    if lines.iter().all(|l| l.is_empty()) {
        // An empty list prints as one empty line.
        return (!out.is_empty()).then(Vec::new);
    }
    if !lines.len().is_multiple_of(2) || lines[0] != "name" {
        return None;
    }
    let mut entries: Vec<Vec<(&str, &str)>> = Vec::new();
    for kv in lines.chunks(2) {
        if kv[0] == "name" {
            entries.push(Vec::new());
        }
        entries.last_mut()?.push((kv[0], kv[1]));
    }
    let field = |e: &[(&str, &str)], k: &str| {
        e.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
    };
    let mut up = Vec::new();
    for e in &entries {
        let ip = field(e, "ip")?;
        let flags = field(e, "flags")?;
        let down = flags
            .split(',')
            .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"));
        let within = |k: &str, max: u64| {
            field(e, k)
                .and_then(|ms| ms.parse::<u64>().ok())
                .is_some_and(|ms| ms < max)
        };
        let heard = within("last-ok-ping-reply", PING_VALIDITY_MS)
            && within("info-refresh", INFO_VALIDITY_MS);
        // replica-priority 0: restarted and not yet synced (replica-guard).
        let promotable = field(e, "slave-priority").as_deref() != Some("0");
        if !down && heard && promotable {
            up.push(pod_of(&ip).to_string());
        }
    }
    Some(up)
}

/// How recent a replica's INFO and ping reply must be for Sentinel to
/// promote it (three INFO periods, five ping periods).
const INFO_VALIDITY_MS: u64 = 30_000;
const PING_VALIDITY_MS: u64 = 5_000;

/// What one sentinel answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SentinelView {
    /// The master's pod (`get-master-addr-by-name`); `None`: no answer.
    pub master: Option<String>,
    /// The replicas it can use ([`parse_sentinel_replicas`]); `None`: no
    /// answer.
    pub replicas: Option<Vec<String>>,
}

impl SentinelView {
    /// A sentinel that names `master` and knows `replicas` (tests).
    pub fn new(master: &str, replicas: &[&str]) -> SentinelView {
        SentinelView {
            master: Some(master.to_string()),
            replicas: Some(replicas.iter().map(|r| r.to_string()).collect()),
        }
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
/// with its link up; healthy also needs every sentinel to name it and to
/// know every other pod as a replica it does not flag down (a sentinel
/// learns replicas from the master's INFO only every 10 s, and a failover
/// it leads before then leaves the replica it missed following the old
/// master until the failover timeout).
pub fn verdict(
    pods: &[(String, Role)],
    sentinels: &[(String, SentinelView)],
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
        .filter(|(_, v)| v.master.as_deref() == Some(&master))
        .count();
    if agree < quorum {
        let views: Vec<String> = sentinels
            .iter()
            .map(|(s, v)| format!("{s}: {}", v.master.as_deref().unwrap_or("no answer")))
            .collect();
        return Verdict::Unhealthy {
            problems: vec![format!(
                "only {agree} sentinels name {master} as master (quorum {quorum}): {}",
                views.join(", ")
            )],
        };
    }
    let mut problems = replica_problems(pods, &master, sentinels.len() - agree);
    problems.extend(unknown_replicas(pods, sentinels, &master));
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

/// For each sentinel that names `master`, the pods other than the master
/// it does not know as a usable replica, as one line per sentinel.
fn unknown_replicas(
    pods: &[(String, Role)],
    sentinels: &[(String, SentinelView)],
    master: &str,
) -> Vec<String> {
    sentinels
        .iter()
        .filter(|(_, v)| v.master.as_deref() == Some(master))
        .filter_map(|(s, v)| {
            let Some(known) = &v.replicas else {
                return Some(format!("{s}: its replicas of {master} could not be read"));
            };
            let missing: Vec<&str> = pods
                .iter()
                .map(|(p, _)| p.as_str())
                .filter(|p| *p != master && !known.iter().any(|k| k == p))
                .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "{s} does not know {} as a replica of {master} (or flags it down)",
                    missing.join(", ")
                )
            })
        })
        .collect()
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

    /// A sentinel naming `master` and knowing every other pod of three.
    fn s(name: &str, master: &str) -> (String, SentinelView) {
        let others: Vec<String> = (0..3)
            .map(|i| format!("redis-{i}"))
            .filter(|p| p != master)
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        (name.to_string(), SentinelView::new(master, &others))
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
            ("sentinel-2".into(), SentinelView::default()),
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
        let pods = [
            p("redis-0", MASTER),
            p("redis-1", &wrong),
            p("redis-2", REPLICA),
        ];
        let sentinels = [s("sentinel-0", "redis-0"), s("sentinel-1", "redis-0")];
        let v = verdict(&pods, &sentinels, 2);
        assert!(
            matches!(&v, Verdict::Degraded { problems, .. } if problems[0].contains("redis-2"))
        );
        assert_eq!(v.exit_code(), 1);
    }

    /// The failover of issue 29: a sentinel that has not yet learnt a
    /// replica (or still flags it down) leaves the deployment degraded,
    /// saying which sentinel misses which replica.
    #[test]
    fn a_sentinel_missing_a_replica_is_degraded_and_named() {
        let pods = [
            p("redis-0", MASTER),
            p("redis-1", REPLICA),
            p("redis-2", REPLICA),
        ];
        let sentinels = [
            s("sentinel-0", "redis-0"),
            (
                "sentinel-1".into(),
                SentinelView::new("redis-0", &["redis-2"]),
            ),
            s("sentinel-2", "redis-0"),
        ];
        match verdict(&pods, &sentinels, 2) {
            Verdict::Degraded { master, problems } => {
                assert_eq!(master, "redis-0");
                assert_eq!(
                    problems,
                    ["sentinel-1 does not know redis-1 as a replica of redis-0 (or flags it down)"]
                );
            }
            v => panic!("{v:?}"),
        }
        // Replicas it could not be asked about are a problem too.
        let unread = [
            s("sentinel-0", "redis-0"),
            (
                "sentinel-1".into(),
                SentinelView {
                    master: Some("redis-0".into()),
                    replicas: None,
                },
            ),
        ];
        let v = verdict(&pods, &unread, 2);
        assert!(
            matches!(&v, Verdict::Degraded { problems, .. } if problems[0].contains("sentinel-1: its replicas")),
            "{v:?}"
        );
        // A sentinel naming another master is counted once, as such.
        let other = [
            s("sentinel-0", "redis-0"),
            s("sentinel-1", "redis-0"),
            ("sentinel-2".into(), SentinelView::new("redis-1", &[])),
        ];
        match verdict(&pods, &other, 2) {
            Verdict::Degraded { problems, .. } => {
                assert_eq!(problems, ["1 sentinels do not name redis-0"])
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn parses_sentinel_replicas() {
        // As redis-cli prints SENTINEL REPLICAS without a terminal (an empty
        // runid is an empty line).
        let entry = |pod: &str, runid: &str, flags: &str, ping: &str, refresh: &str| {
            format!(
                "name\n{pod}.redis-headless.ns.svc.cluster.local:6379\nip\n{pod}.redis-headless.ns.svc.cluster.local\n\
                 port\n6379\nrunid\n{runid}\nflags\n{flags}\nlast-ok-ping-reply\n{ping}\ninfo-refresh\n{refresh}\n"
            )
        };
        let out = [
            entry("redis-1", "", "slave", "412", "5012"),
            entry(
                "redis-2",
                "ab12",
                "s_down,slave,disconnected",
                "412",
                "5012",
            ),
            entry("redis-0", "cd34", "slave", "3", "812"),
            // Just added (the old master at +switch-master): no INFO yet.
            entry("redis-3", "", "slave", "20", "1796632412345"),
            // Restarted at a new address: not flagged yet, but silent.
            entry("redis-4", "ef56", "slave", "7046", "9012"),
            // Restarted from its disk, not yet synced: not promotable.
            entry("redis-5", "ab78", "slave", "3", "812") + "slave-priority\n0\n",
        ]
        .concat();
        assert_eq!(
            parse_sentinel_replicas(&out),
            Some(vec!["redis-1".to_string(), "redis-0".to_string()])
        );
        assert_eq!(parse_sentinel_replicas("\n"), Some(vec![]));
        assert_eq!(parse_sentinel_replicas(""), None);
        assert_eq!(
            parse_sentinel_replicas("ERR No such master with that name\n"),
            None
        );
        assert_eq!(parse_sentinel_replicas("name\nx\nport\n"), None);
    }
}
