//! Where a session's requests go, one policy per endpoint: writes to the
//! master; reads to the replica the session is on, else a balanced pick of
//! the replicas in rotation, else the fallback. Both skip a node to
//! [`Avoid`]: one that answered READONLY, or whose link was just lost.

use super::error::ClientError;
use crate::config::{ProxyConfig, ReadBalance, ReadFallback};
use crate::route::{Endpoint, Routes};
use redis_ha_topology::Addr;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session waits before reconnecting to a node whose link it lost.
pub const COOLDOWN: Duration = Duration::from_millis(100);

/// A node one session does not send to for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Avoid {
    /// It answered READONLY: not until the routing table moves on.
    ReadOnly { addr: Addr, epoch: u64 },
    /// The link to it was just lost: not before `until`. A node killed -9
    /// still completes connections for a moment (the kernel's accept
    /// queue) and then resets them: a request sent there would be lost with
    /// an unknown outcome although it never ran.
    Lost { addr: Addr, until: Instant },
}

impl Avoid {
    /// Whether `addr` is to be avoided now, at routing `epoch`.
    pub fn blocks(&self, addr: &str, epoch: u64, now: Instant) -> bool {
        match self {
            Avoid::ReadOnly { addr: a, epoch: e } => a == addr && *e == epoch,
            Avoid::Lost { addr: a, until } => a == addr && now < *until,
        }
    }
}

/// An endpoint's routing policy, shared by its sessions.
pub enum Policy {
    Write,
    Read {
        balancer: Balancer,
        fallback: ReadFallback,
    },
}

impl Policy {
    pub fn new(endpoint: Endpoint, cfg: &ProxyConfig) -> Policy {
        match endpoint {
            Endpoint::write => Policy::Write,
            Endpoint::read => Policy::Read {
                balancer: Balancer::new(cfg.read_balance),
                fallback: cfg.read_fallback,
            },
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        match self {
            Policy::Write => Endpoint::write,
            Policy::Read { .. } => Endpoint::read,
        }
    }

    /// The node for the next requests, borrowed from `routes`; `current` is
    /// the session's link, `avoid` a node to skip and the time now. This runs
    /// per batch, so the clock is read only when there is a node to avoid,
    /// and the address is not copied (an allocation per request at P1).
    /// `None`: wait (no master, or only nodes to avoid).
    pub fn target<'r>(
        &self,
        routes: &'r Routes,
        current: Option<&Addr>,
        avoid: Option<(&Avoid, Instant)>,
    ) -> Result<Option<&'r Addr>, ClientError> {
        let ok = |a: &&Addr| !avoid.is_some_and(|(x, now)| x.blocks(a, routes.epoch, now));
        match self {
            Policy::Write => Ok(routes.master.as_ref().filter(ok)),
            Policy::Read { balancer, fallback } => {
                if let Some(c) = current.filter(|c| routes.serves(Endpoint::read, c) && ok(c)) {
                    return Ok(routes.node(c));
                }
                if !routes.replicas.is_empty() {
                    let open: Vec<&Addr> = routes.replicas.iter().filter(ok).collect();
                    if !open.is_empty() || *fallback == ReadFallback::Error {
                        return Ok(balancer.pick(&open));
                    }
                    // Every replica's link was just lost (Sentinel's CLIENT
                    // KILL when it reconfigures them): the master meanwhile,
                    // rather than a pause of the cooldown.
                    return Ok(routes.master.as_ref().filter(ok));
                }
                match fallback {
                    ReadFallback::Master => Ok(routes.master.as_ref().filter(ok)),
                    ReadFallback::Error => Err(ClientError::NoReplica),
                }
            }
        }
    }

    /// A session's link to `addr` opened (counted for least-outstanding).
    pub fn bind(&self, addr: &str) {
        if let Policy::Read { balancer, .. } = self {
            balancer.bind(addr);
        }
    }

    pub fn release(&self, addr: &str) {
        if let Policy::Read { balancer, .. } = self {
            balancer.release(addr);
        }
    }
}

/// Spreads read sessions over the healthy replicas.
pub struct Balancer {
    mode: ReadBalance,
    next: AtomicUsize,
    bound: Mutex<HashMap<Addr, usize>>,
}

impl Balancer {
    pub fn new(mode: ReadBalance) -> Balancer {
        Balancer {
            mode,
            next: AtomicUsize::new(0),
            bound: Mutex::new(HashMap::new()),
        }
    }

    pub fn pick<'r>(&self, replicas: &[&'r Addr]) -> Option<&'r Addr> {
        if replicas.is_empty() {
            return None;
        }
        let r = match self.mode {
            ReadBalance::RoundRobin => {
                replicas[self.next.fetch_add(1, Ordering::Relaxed) % replicas.len()]
            }
            ReadBalance::LeastOutstanding => {
                let bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
                *replicas
                    .iter()
                    .min_by_key(|r| bound.get(**r).copied().unwrap_or(0))?
            }
        };
        Some(r)
    }

    pub fn bind(&self, addr: &str) {
        *self
            .bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr.to_string())
            .or_default() += 1;
    }

    pub fn release(&self, addr: &str) {
        if let Some(n) = self
            .bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(addr)
        {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(master: Option<&str>, replicas: &[&str]) -> Routes {
        Routes {
            epoch: 3,
            master: master.map(str::to_string),
            replicas: replicas.iter().map(|r| r.to_string()).collect(),
            closed: None,
        }
    }

    fn read(fallback: ReadFallback, balance: ReadBalance) -> Policy {
        Policy::Read {
            balancer: Balancer::new(balance),
            fallback,
        }
    }

    #[test]
    fn writes_go_to_the_master_unless_it_is_avoided() {
        let now = Instant::now();
        let r = routes(Some("m:1"), &["r:1"]);
        let t = |avoid: Option<&Avoid>| {
            Policy::Write
                .target(&r, None, avoid.map(|a| (a, now)))
                .unwrap()
        };
        assert_eq!(t(None).map(String::as_str), Some("m:1"));
        let ro = Avoid::ReadOnly {
            addr: "m:1".into(),
            epoch: 3,
        };
        assert_eq!(t(Some(&ro)), None);
        // The table moved on (a new epoch): READONLY no longer blocks it.
        let old = Avoid::ReadOnly {
            addr: "m:1".into(),
            epoch: 2,
        };
        assert_eq!(t(Some(&old)).map(String::as_str), Some("m:1"));
        let lost = Avoid::Lost {
            addr: "m:1".into(),
            until: now + COOLDOWN,
        };
        assert_eq!(t(Some(&lost)), None);
        let over = Avoid::Lost {
            addr: "m:1".into(),
            until: now,
        };
        assert_eq!(t(Some(&over)).map(String::as_str), Some("m:1"));
        assert_eq!(
            Policy::Write.target(&routes(None, &["r:1"]), None, None),
            Ok(None)
        );
    }

    #[test]
    fn reads_stay_on_their_replica_then_balance_then_fall_back() {
        let now = Instant::now();
        let p = read(ReadFallback::Master, ReadBalance::RoundRobin);
        let r = routes(Some("m:1"), &["r:1", "r:2"]);
        let on = "r:2".to_string();
        assert_eq!(p.target(&r, Some(&on), None).unwrap(), Some(&on));
        let picks: Vec<_> = (0..4)
            .map(|_| p.target(&r, None, None).unwrap().unwrap().as_str())
            .collect();
        assert_eq!(picks, ["r:1", "r:2", "r:1", "r:2"]);
        // A replica whose link was just lost is skipped, the session's too.
        let lost = Avoid::Lost {
            addr: "r:2".into(),
            until: now + COOLDOWN,
        };
        for _ in 0..3 {
            assert_eq!(
                p.target(&r, Some(&on), Some((&lost, now)))
                    .unwrap()
                    .map(String::as_str),
                Some("r:1")
            );
        }
        // Every replica just lost: the master meanwhile (or wait, strict).
        let one = routes(Some("m:1"), &["r:2"]);
        assert_eq!(
            p.target(&one, Some(&on), Some((&lost, now)))
                .unwrap()
                .map(String::as_str),
            Some("m:1")
        );
        let strict = read(ReadFallback::Error, ReadBalance::RoundRobin);
        assert_eq!(strict.target(&one, None, Some((&lost, now))), Ok(None));
        // No replica in rotation: the master, or an error.
        assert_eq!(
            p.target(&routes(Some("m:1"), &[]), None, None)
                .unwrap()
                .map(String::as_str),
            Some("m:1")
        );
        assert_eq!(
            strict.target(&routes(Some("m:1"), &[]), None, None),
            Err(ClientError::NoReplica)
        );
    }

    #[test]
    fn least_outstanding_picks_the_least_bound_replica() {
        let p = read(ReadFallback::Master, ReadBalance::LeastOutstanding);
        let r = routes(Some("m:1"), &["r:1", "r:2"]);
        p.bind("r:1");
        p.bind("r:1");
        p.bind("r:2");
        assert_eq!(
            p.target(&r, None, None).unwrap().map(String::as_str),
            Some("r:2")
        );
        p.release("r:1");
        p.release("r:1");
        assert_eq!(
            p.target(&r, None, None).unwrap().map(String::as_str),
            Some("r:1")
        );
    }
}
