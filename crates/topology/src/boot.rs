//! The boot decision: what a Redis node about to start becomes (master,
//! replica of whom, hand the master role over, or wait), from what the
//! sentinels answer, what this node holds on disk and what its peers hold.
//! Pure; the local supervisor (`up`, `node restart`) and the Kubernetes
//! init container (`redis-ha init-role`) gather the inputs, act on the
//! outcome and ask again after a [`Boot::Wait`] or a [`Boot::HandOver`].
//!
//! Rules, in order:
//! - fewer than a majority of the configured sentinels answer: wait
//!   (silence is never a first boot);
//! - no master named by a majority: wait (a failover in progress, a split);
//! - sentinels with no history (config epoch 0, no replica known: fresh, or
//!   their state was lost) and no data on any node: a first boot, the
//!   master they name leads;
//! - the same sentinels while some node holds data: the master is chosen by
//!   data (a running master, then the replication offset, then the newest
//!   disk), never by index; while a peer's data cannot be seen, wait;
//! - sentinels with history name another node: follow it;
//! - they name this node and it holds data: master;
//! - they name this node and it is empty: hand over to a replica with data
//!   (ask Sentinel to fail over) and follow the new master; master only
//!   when every peer is seen and none holds data.

use crate::Addr;
use std::fmt;

/// One configured sentinel's answer about the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SentinelAnswer {
    /// No answer (down, still starting, unreachable).
    Silent,
    /// It answers but monitors no master by that name.
    NoMaster,
    /// It names a master. `epoch`: the config epoch (0 until a failover);
    /// `replicas`: how many replicas of it the sentinel knows.
    Names {
        master: Addr,
        epoch: u64,
        replicas: usize,
    },
}

/// What a node holds on disk (its RDB or AOF files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    /// No data file: a new or wiped volume.
    Empty,
    /// Data files, last written at `written_ms` (Unix ms): a node that was
    /// down while others took writes wrote last earlier. `master_since_ms`:
    /// its role record (its config as Sentinel last rewrote it, or the
    /// Kubernetes role file the replica guard keeps) says it was made
    /// master then; `None`: it was last a replica, or no record.
    HasData {
        written_ms: u64,
        master_since_ms: Option<u64>,
    },
}

/// Last writes within this of the newest count as "as new": a replica
/// writes each write a moment after its master, so by time alone the
/// replica missing the master's last writes can look newest. Among such
/// nodes the one most recently made master leads (it had every write its
/// replicas had, and those they had not yet received). Well below the
/// second a stale node has been away.
pub const SAME_WRITE_WINDOW_MS: u64 = 500;

/// A running node's replication state (`INFO replication`, `DBSIZE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub is_master: bool,
    pub replid: String,
    pub offset: u64,
    pub keys: u64,
}

impl Running {
    fn has_data(&self) -> bool {
        self.keys > 0 || self.offset > 0
    }
}

/// What is known of another Redis node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Not reachable, and its disk cannot be seen (another pod).
    Unknown,
    /// Not running; its disk is seen (the local supervisor).
    Stopped(Disk),
    Running(Running),
}

impl Peer {
    fn has_data(&self) -> bool {
        match self {
            Peer::Unknown => false,
            Peer::Stopped(d) => matches!(d, Disk::HasData { .. }),
            Peer::Running(r) => r.has_data(),
        }
    }
}

/// Everything the decision looks at.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// This node's address as the sentinels know it.
    pub me: &'a str,
    /// One answer per configured sentinel.
    pub sentinels: &'a [SentinelAnswer],
    pub disk: Disk,
    /// Every other Redis node.
    pub peers: &'a [(Addr, Peer)],
    /// The master a first boot starts with (`redis-0`).
    pub first_master: &'a str,
}

/// Why a node starts in the role it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Sentinels with no history, no data anywhere.
    FirstBoot,
    /// A majority of the sentinels names this master.
    Named,
    /// The sentinels have no history but nodes hold data: chosen by data.
    ByData,
    /// Named master, empty, and every peer is seen empty too.
    NobodyHasData,
}

/// What a node must wait for before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Fewer than a majority of the sentinels answer.
    Sentinels {
        answering: usize,
        total: usize,
        has_data: bool,
    },
    /// No master is named by a majority (`(master, votes)`).
    Split(Vec<(Addr, usize)>),
    /// Sentinels without history while data exists; these peers cannot be
    /// seen to compare their data.
    Compare(Vec<Addr>),
    /// This node is empty and named master; no replica with data is
    /// running to hand over to.
    ReplicaWithData,
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    Master(Reason),
    ReplicaOf(Addr, Reason),
    /// Empty and named master while a replica holds data: ask the
    /// sentinels to fail over (to a replica with data), then decide again.
    HandOver,
    Wait(Wait),
}

/// The decision (see the module doc for the rules).
pub fn decide(i: &Inputs) -> Boot {
    let total = i.sentinels.len();
    let need = total / 2 + 1;
    let answering = i
        .sentinels
        .iter()
        .filter(|a| **a != SentinelAnswer::Silent)
        .count();
    if answering < need {
        return Boot::Wait(Wait::Sentinels {
            answering,
            total,
            has_data: i.disk != Disk::Empty,
        });
    }
    let Some((master, fresh)) = named(i.sentinels, need, i.first_master) else {
        return Boot::Wait(Wait::Split(votes(i.sentinels)));
    };
    if fresh {
        return without_history(i, &master);
    }
    if master != i.me {
        return Boot::ReplicaOf(master, Reason::Named);
    }
    if i.disk != Disk::Empty {
        return Boot::Master(Reason::Named);
    }
    empty_named_master(i)
}

/// The master a majority names and whether those sentinels have no history
/// (config epoch 0 and no replica known). A majority that monitors no
/// master counts as no history naming the first master.
fn named(answers: &[SentinelAnswer], need: usize, first: &str) -> Option<(Addr, bool)> {
    let no_master = answers
        .iter()
        .filter(|a| **a == SentinelAnswer::NoMaster)
        .count();
    if no_master >= need {
        return Some((first.to_string(), true));
    }
    let (master, n) = votes(answers).into_iter().max_by_key(|(_, n)| *n)?;
    if n < need {
        return None;
    }
    let fresh = answers.iter().all(|a| match a {
        SentinelAnswer::Names {
            master: m,
            epoch,
            replicas,
        } if *m == master => *epoch == 0 && *replicas == 0,
        _ => true,
    });
    Some((master, fresh))
}

/// How many sentinels name each master, in the order first named.
fn votes(answers: &[SentinelAnswer]) -> Vec<(Addr, usize)> {
    let mut v: Vec<(Addr, usize)> = Vec::new();
    for a in answers {
        if let SentinelAnswer::Names { master, .. } = a {
            match v.iter_mut().find(|(m, _)| m == master) {
                Some((_, n)) => *n += 1,
                None => v.push((master.clone(), 1)),
            }
        }
    }
    v
}

/// Sentinels without history: a first boot when no node holds data, else
/// the node with the newest data leads.
fn without_history(i: &Inputs, named: &str) -> Boot {
    let data_anywhere = i.disk != Disk::Empty || i.peers.iter().any(|(_, p)| p.has_data());
    if !data_anywhere {
        return follow(i.me, named, Reason::FirstBoot);
    }
    let unseen: Vec<Addr> = i
        .peers
        .iter()
        .filter(|(_, p)| *p == Peer::Unknown)
        .map(|(a, _)| a.clone())
        .collect();
    if !unseen.is_empty() {
        return Boot::Wait(Wait::Compare(unseen));
    }
    match newest(i) {
        Some(best) => follow(i.me, &best, Reason::ByData),
        // Unreachable: data exists and every node is seen.
        None => Boot::Wait(Wait::Compare(vec![])),
    }
}

fn follow(me: &str, master: &str, why: Reason) -> Boot {
    if master == me {
        Boot::Master(why)
    } else {
        Boot::ReplicaOf(master.to_string(), why)
    }
}

/// How good a node's data is: a running master with data first, then a
/// running replica by replication offset, then a stopped node by when its
/// disk was written last. `None`: no data, or a running replica that has
/// not replicated since it started (its data is no candidate).
fn rank(p: &Peer) -> Option<(u8, u64)> {
    match p {
        Peer::Running(r) if r.is_master && r.has_data() => Some((3, r.offset)),
        // A replica's offset counts once it has replicated since it started
        // (a restart from the AOF begins at 0 whatever it holds).
        Peer::Running(r) if r.offset > 0 => Some((2, r.offset)),
        Peer::Stopped(Disk::HasData { written_ms, .. }) => Some((1, *written_ms)),
        _ => None,
    }
}

/// The node with the newest data (this one counts as stopped).
fn newest(i: &Inputs) -> Option<Addr> {
    let mut all = vec![(i.me.to_string(), Peer::Stopped(i.disk))];
    all.extend(i.peers.iter().cloned());
    newest_of(&all)
}

/// The node with the newest data (see [`rank`]); exact ties go to the
/// lowest address, so that every node picks the same one. Among stopped
/// nodes whose last writes are within [`SAME_WRITE_WINDOW_MS`] of the
/// newest, the one most recently made master wins. `None`: none holds data.
pub fn newest_of(nodes: &[(Addr, Peer)]) -> Option<Addr> {
    let (best_rank, best) = nodes
        .iter()
        .filter_map(|(a, p)| Some((rank(p)?, a)))
        .max_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| b.cmp(a)))?;
    if best_rank.0 != 1 {
        return Some(best.clone());
    }
    let last_master = nodes
        .iter()
        .filter_map(|(a, p)| match p {
            Peer::Stopped(Disk::HasData {
                written_ms,
                master_since_ms: Some(since),
            }) if written_ms + SAME_WRITE_WINDOW_MS >= best_rank.1 => Some((*since, a)),
            _ => None,
        })
        .max_by(|(sa, a), (sb, b)| sa.cmp(sb).then_with(|| b.cmp(a)));
    Some(last_master.map_or(best, |(_, a)| a).clone())
}

/// The master most named by the sentinels that have a history (a config
/// epoch or known replicas): what a sentinel starting without its state
/// should monitor. `None`: none has one.
pub fn named_with_history(answers: &[SentinelAnswer]) -> Option<Addr> {
    let with: Vec<SentinelAnswer> = answers
        .iter()
        .filter(|a| matches!(a, SentinelAnswer::Names { epoch, replicas, .. } if *epoch > 0 || *replicas > 0))
        .cloned()
        .collect();
    let v = votes(&with);
    let best = v.iter().map(|(_, n)| *n).max()?;
    v.into_iter().find(|(_, n)| *n == best).map(|(m, _)| m)
}

/// Named master with an empty disk: hand over to a running replica with
/// data; master only when every peer is seen and none holds data.
fn empty_named_master(i: &Inputs) -> Boot {
    if i.peers
        .iter()
        .any(|(_, p)| matches!(p, Peer::Running(r) if r.has_data()))
    {
        return Boot::HandOver;
    }
    let all_seen_empty = i
        .peers
        .iter()
        .all(|(_, p)| *p != Peer::Unknown && !p.has_data());
    if all_seen_empty {
        return Boot::Master(Reason::NobodyHasData);
    }
    Boot::Wait(Wait::ReplicaWithData)
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Sentinels {
                answering,
                total,
                has_data,
            } => {
                write!(
                    f,
                    "waiting for the sentinels: {answering} of {total} answer, {} needed",
                    total / 2 + 1
                )?;
                if *has_data {
                    write!(f, "; this node holds data, so this is not a first boot")
                } else {
                    write!(
                        f,
                        "; silence is not a first boot, so no role is chosen without them"
                    )
                }
            }
            Wait::Split(v) => write!(
                f,
                "waiting for a majority of the sentinels to name one master (now {})",
                v.iter()
                    .map(|(m, n)| format!("{m}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Wait::Compare(unseen) => write!(
                f,
                "the sentinels have no history (new, or their state was lost) but data exists: the master is chosen by data, and these nodes cannot be seen to compare: {}; no node accepts writes meanwhile",
                unseen.join(", ")
            ),
            Wait::ReplicaWithData => write!(
                f,
                "this node is empty and the sentinels name it master: waiting for a replica with data to hand the role to (it does not start as an empty master)"
            ),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::FirstBoot => "first boot: new sentinels and no node holds data",
            Reason::Named => "a majority of the sentinels name this master",
            Reason::ByData => {
                "the sentinels have no history, so chosen by data: the newest node leads"
            }
            Reason::NobodyHasData => "named master and no node holds data",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a:1";
    const B: &str = "b:1";
    const C: &str = "c:1";

    fn names(m: &str, epoch: u64, replicas: usize) -> SentinelAnswer {
        SentinelAnswer::Names {
            master: m.into(),
            epoch,
            replicas,
        }
    }

    fn data(ms: u64) -> Disk {
        Disk::HasData {
            written_ms: ms,
            master_since_ms: None,
        }
    }

    fn master_data(ms: u64, since: u64) -> Disk {
        Disk::HasData {
            written_ms: ms,
            master_since_ms: Some(since),
        }
    }

    #[test]
    fn the_last_master_wins_over_a_replica_that_wrote_a_moment_later() {
        let s = [names(A, 0, 0), names(A, 0, 0), names(A, 0, 0)];
        // B was master (since 50), C its replica: C's files were written
        // 3 ms after B's last write, but C may lack B's last writes.
        let peers = [
            (B, Peer::Stopped(master_data(10_000, 50))),
            (C, Peer::Stopped(data(10_003))),
        ];
        assert_eq!(
            decide_for(A, &s, data(8_000), &peers),
            Boot::ReplicaOf(B.into(), Reason::ByData)
        );
        // Two with a master record: the later one (a failover since).
        let peers = [
            (B, Peer::Stopped(master_data(10_000, 50))),
            (C, Peer::Stopped(master_data(10_002, 70))),
        ];
        assert_eq!(
            decide_for(A, &s, data(8_000), &peers),
            Boot::ReplicaOf(C.into(), Reason::ByData)
        );
        // A master record on a node that stopped writing a second before
        // the newest is stale: the newest data leads.
        let peers = [
            (B, Peer::Stopped(master_data(9_000, 90))),
            (C, Peer::Stopped(data(10_000))),
        ];
        assert_eq!(
            decide_for(A, &s, data(8_000), &peers),
            Boot::ReplicaOf(C.into(), Reason::ByData)
        );
        // A running node still outranks every disk.
        let peers = [
            (B, Peer::Stopped(master_data(10_000, 50))),
            (C, running(false, 5, 1)),
        ];
        assert_eq!(
            decide_for(A, &s, data(8_000), &peers),
            Boot::ReplicaOf(C.into(), Reason::ByData)
        );
    }

    fn running(is_master: bool, offset: u64, keys: u64) -> Peer {
        Peer::Running(Running {
            is_master,
            replid: "r".into(),
            offset,
            keys,
        })
    }

    fn decide_for(me: &str, s: &[SentinelAnswer], disk: Disk, peers: &[(&str, Peer)]) -> Boot {
        let peers: Vec<(Addr, Peer)> = peers
            .iter()
            .map(|(a, p)| (a.to_string(), p.clone()))
            .collect();
        decide(&Inputs {
            me,
            sentinels: s,
            disk,
            peers: &peers,
            first_master: A,
        })
    }

    use SentinelAnswer::Silent;

    #[test]
    fn silence_is_never_a_first_boot() {
        let s = [Silent, Silent, Silent];
        for disk in [Disk::Empty, data(5)] {
            let b = decide_for(A, &s, disk, &[(B, Peer::Unknown), (C, Peer::Unknown)]);
            let Boot::Wait(w) = &b else { panic!("{b:?}") };
            let line = w.to_string();
            assert!(line.contains("0 of 3 answer"), "{line}");
            if disk != Disk::Empty {
                assert!(line.contains("not a first boot"), "{line}");
            }
        }
        // One of three is not a majority, whatever it says.
        let b = decide_for(A, &[names(A, 0, 0), Silent, Silent], Disk::Empty, &[]);
        assert!(matches!(
            b,
            Boot::Wait(Wait::Sentinels { answering: 1, .. })
        ));
    }

    #[test]
    fn a_genuine_first_boot_is_recognised() {
        let s = [names(A, 0, 0), names(A, 0, 0), Silent];
        let peers = [(B, Peer::Unknown), (C, Peer::Unknown)];
        assert_eq!(
            decide_for(A, &s, Disk::Empty, &peers),
            Boot::Master(Reason::FirstBoot)
        );
        let peers = [(A, Peer::Unknown), (C, Peer::Unknown)];
        assert_eq!(
            decide_for(B, &s, Disk::Empty, &peers),
            Boot::ReplicaOf(A.into(), Reason::FirstBoot)
        );
        // Sentinels that monitor nothing yet: the same first boot.
        let none = [SentinelAnswer::NoMaster, SentinelAnswer::NoMaster, Silent];
        assert_eq!(
            decide_for(A, &none, Disk::Empty, &[(B, Peer::Stopped(Disk::Empty))]),
            Boot::Master(Reason::FirstBoot)
        );
    }

    #[test]
    fn sentinels_with_history_are_followed() {
        let s = [names(C, 2, 2), names(C, 2, 2), names(A, 1, 2)];
        // The stale node, with or without data, follows the named master.
        for disk in [Disk::Empty, data(1)] {
            assert_eq!(
                decide_for(A, &s, disk, &[(B, Peer::Unknown), (C, Peer::Unknown)]),
                Boot::ReplicaOf(C.into(), Reason::Named)
            );
        }
        assert_eq!(
            decide_for(C, &s, data(9), &[(A, Peer::Unknown), (B, Peer::Unknown)]),
            Boot::Master(Reason::Named)
        );
        // Epoch 0 but replicas known: a cluster that never failed over.
        let s0 = [names(A, 0, 2), names(A, 0, 2), names(A, 0, 2)];
        assert_eq!(
            decide_for(A, &s0, data(1), &[(B, Peer::Unknown)]),
            Boot::Master(Reason::Named)
        );
    }

    #[test]
    fn no_majority_for_one_master_waits() {
        let s = [names(A, 1, 2), names(B, 2, 2), Silent];
        let b = decide_for(C, &s, data(1), &[]);
        assert_eq!(
            b,
            Boot::Wait(Wait::Split(vec![(A.into(), 1), (B.into(), 1)]))
        );
    }

    #[test]
    fn an_empty_named_master_hands_over_to_a_replica_with_data() {
        let s = [names(A, 0, 2), names(A, 0, 2), names(A, 0, 2)];
        let peers = [(B, running(false, 0, 1000)), (C, running(false, 0, 1000))];
        assert_eq!(decide_for(A, &s, Disk::Empty, &peers), Boot::HandOver);
        // No replica with data running yet: wait, never an empty master.
        let peers = [(B, Peer::Stopped(data(5))), (C, Peer::Unknown)];
        assert_eq!(
            decide_for(A, &s, Disk::Empty, &peers),
            Boot::Wait(Wait::ReplicaWithData)
        );
        // Once the sentinels name the replica, the node follows it.
        let after = [names(B, 1, 2), names(B, 1, 2), names(A, 0, 2)];
        assert_eq!(
            decide_for(A, &after, Disk::Empty, &peers),
            Boot::ReplicaOf(B.into(), Reason::Named)
        );
        // Every peer seen and empty too: nothing to lose, master.
        let empty = [(B, running(false, 0, 0)), (C, Peer::Stopped(Disk::Empty))];
        assert_eq!(
            decide_for(A, &s, Disk::Empty, &empty),
            Boot::Master(Reason::NobodyHasData)
        );
    }

    #[test]
    fn sentinels_that_lost_their_state_choose_by_data_never_by_index() {
        // Recreated sentinels name redis-0 (epoch 0, no replica known).
        let s = [names(A, 0, 0), names(A, 0, 0), names(A, 0, 0)];
        // A is stale (written last at 100), C the newest (300).
        let peers = [(B, Peer::Stopped(data(200))), (C, Peer::Stopped(data(300)))];
        assert_eq!(
            decide_for(A, &s, data(100), &peers),
            Boot::ReplicaOf(C.into(), Reason::ByData)
        );
        let peers = [(A, Peer::Stopped(data(100))), (B, Peer::Stopped(data(200)))];
        assert_eq!(
            decide_for(C, &s, data(300), &peers),
            Boot::Master(Reason::ByData)
        );
        // A running master with data outranks disks; then offsets.
        let peers = [(B, running(true, 10, 5)), (C, Peer::Stopped(data(300)))];
        assert_eq!(
            decide_for(A, &s, data(100), &peers),
            Boot::ReplicaOf(B.into(), Reason::ByData)
        );
        let peers = [(B, running(false, 10, 5)), (C, running(false, 20, 5))];
        assert_eq!(
            decide_for(A, &s, Disk::Empty, &peers),
            Boot::ReplicaOf(C.into(), Reason::ByData)
        );
        // A peer whose data cannot be seen (another pod): wait, no writes.
        let peers = [(B, Peer::Unknown), (C, Peer::Stopped(data(1)))];
        let b = decide_for(A, &s, data(100), &peers);
        assert_eq!(b, Boot::Wait(Wait::Compare(vec![B.into()])));
        assert!(b_line(&b).contains("no node accepts writes"));
    }

    fn b_line(b: &Boot) -> String {
        match b {
            Boot::Wait(w) => w.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_sentinel_without_state_monitors_what_others_know_or_the_newest_data() {
        let s = [names(A, 0, 0), names(C, 2, 2), Silent, names(C, 2, 1)];
        assert_eq!(named_with_history(&s), Some(C.into()));
        assert_eq!(named_with_history(&[names(A, 0, 0), Silent]), None);
        let nodes = [
            (A.to_string(), Peer::Stopped(data(100))),
            (B.to_string(), Peer::Stopped(Disk::Empty)),
            (C.to_string(), Peer::Stopped(data(300))),
        ];
        assert_eq!(newest_of(&nodes), Some(C.into()));
        // A replica restarted from its AOF (offset 0) is no candidate.
        let nodes = [
            (A.to_string(), running(false, 0, 10)),
            (C.to_string(), Peer::Stopped(data(300))),
        ];
        assert_eq!(newest_of(&nodes), Some(C.into()));
        assert_eq!(
            newest_of(&[(B.to_string(), Peer::Stopped(Disk::Empty))]),
            None
        );
    }

    #[test]
    fn a_cold_start_in_any_order_ends_with_the_newest_node_master() {
        // Sentinels kept their state and name C (master after a switchover;
        // A was down while C took writes). Whatever order the nodes start
        // in, and whatever the others are doing, each decides the same.
        let s = [names(C, 3, 2), names(C, 3, 2), names(C, 3, 2)];
        let states = [
            Peer::Unknown,
            Peer::Stopped(data(1)),
            running(false, 0, 10),
            running(true, 0, 10),
        ];
        for p in &states {
            for q in &states {
                let pa = [(B, p.clone()), (C, q.clone())];
                assert_eq!(
                    decide_for(A, &s, data(100), &pa),
                    Boot::ReplicaOf(C.into(), Reason::Named)
                );
                let pc = [(A, p.clone()), (B, q.clone())];
                assert_eq!(
                    decide_for(C, &s, data(300), &pc),
                    Boot::Master(Reason::Named)
                );
            }
        }
        // With no history in the sentinels and every disk seen, every node
        // picks the same master (the newest), in any order.
        let fresh = [names(A, 0, 0), names(A, 0, 0), names(A, 0, 0)];
        let disks = [(A, data(100)), (B, data(300)), (C, data(200))];
        for (me, disk) in disks {
            let peers: Vec<(&str, Peer)> = disks
                .iter()
                .filter(|(a, _)| *a != me)
                .map(|(a, d)| (*a, Peer::Stopped(*d)))
                .collect();
            assert_eq!(
                decide_for(me, &fresh, disk, &peers),
                follow(me, B, Reason::ByData)
            );
        }
    }
}
