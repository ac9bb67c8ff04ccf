//! Exactly-once accounting: compares what the writers were told with what
//! the new master holds afterwards. Lost: acknowledged but missing.
//! Duplicated: a value twice in a list, or a counter above what was
//! acknowledged plus what had an unknown outcome. Every unknown outcome is
//! listed with whether it was in fact applied.

use crate::writer::{value, Command, Outcome, Write};
use serde::Serialize;
use std::collections::HashMap;

/// What the master holds for one writer at the end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FinalState {
    /// The writer's list (LRANGE 0 -1).
    pub list: Vec<String>,
    /// The writer's counter (0 if the key is missing).
    pub counter: i64,
}

/// A write whose outcome the client could not know, and the truth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnknownWrite {
    pub writer: usize,
    pub command: Command,
    pub seq: u64,
    /// What the client saw (`unknown_outcome`, `timeout`, `closed`...).
    pub kind: String,
    pub at_ms: f64,
    /// Whether the master holds it; `None` when the state cannot tell (an
    /// INCR among several unknown ones that were applied only in part).
    pub applied: Option<bool>,
}

/// The exactly-once verdict over all writers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Accounting {
    pub acked: u64,
    /// Writes refused with an error that means they did not run.
    pub refused: u64,
    pub unknown: u64,
    /// Acknowledged writes missing on the master.
    pub lost: u64,
    /// Writes applied more often than sent.
    pub duplicated: u64,
    pub unknown_writes: Vec<UnknownWrite>,
    pub lost_examples: Vec<String>,
    pub duplicate_examples: Vec<String>,
    /// When each lost RPUSH was acknowledged (ms since the drill started).
    pub lost_acked_at_ms: Vec<f64>,
}

const EXAMPLES: usize = 5;

impl Accounting {
    fn merge(&mut self, o: Accounting) {
        self.acked += o.acked;
        self.refused += o.refused;
        self.unknown += o.unknown;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.unknown_writes.extend(o.unknown_writes);
        self.lost_acked_at_ms.extend(o.lost_acked_at_ms);
        for (mine, theirs) in [
            (&mut self.lost_examples, o.lost_examples),
            (&mut self.duplicate_examples, o.duplicate_examples),
        ] {
            mine.extend(theirs);
            mine.truncate(EXAMPLES);
        }
    }

    /// Unknown outcomes that turned out applied / not applied.
    pub fn unknown_applied(&self) -> (u64, u64) {
        let n = |want| {
            self.unknown_writes
                .iter()
                .filter(|u| u.applied == Some(want))
                .count() as u64
        };
        (n(true), n(false))
    }
}

/// Accounts every writer: `logs[i]` is writer `i`'s writes, `states[i]`
/// what the master holds for it.
pub fn account_all(logs: &[&[Write]], states: &[FinalState]) -> Accounting {
    let mut all = Accounting::default();
    for (id, (writes, state)) in logs.iter().zip(states).enumerate() {
        all.merge(account(id, writes, state));
    }
    all
}

/// One writer's verdict.
pub fn account(id: usize, writes: &[Write], state: &FinalState) -> Accounting {
    let mut a = Accounting::default();
    for w in writes {
        match w.outcome {
            Outcome::Acked(_) => a.acked += 1,
            Outcome::Refused(_) => a.refused += 1,
            Outcome::Unknown(_) => a.unknown += 1,
        }
    }
    let pushes: Vec<&Write> = writes.iter().filter(|w| w.cmd == Command::Rpush).collect();
    let incrs: Vec<&Write> = writes.iter().filter(|w| w.cmd == Command::Incr).collect();
    account_list(id, &pushes, &state.list, &mut a);
    account_counter(id, &incrs, state.counter, &mut a);
    a
}

fn unknown(id: usize, w: &Write, applied: Option<bool>) -> Option<UnknownWrite> {
    let Outcome::Unknown(kind) = &w.outcome else {
        return None;
    };
    Some(UnknownWrite {
        writer: id,
        command: w.cmd,
        seq: w.seq,
        kind: kind.clone(),
        at_ms: w.at_ms,
        applied,
    })
}

/// RPUSH: every value is unique, so each write is checked by itself.
fn account_list(id: usize, pushes: &[&Write], list: &[String], a: &mut Accounting) {
    let mut count: HashMap<&str, u64> = HashMap::new();
    for v in list {
        *count.entry(v.as_str()).or_default() += 1;
    }
    for (v, n) in &count {
        if *n > 1 {
            a.duplicated += n - 1;
            a.duplicate_examples.push(format!("list {v} x{n}"));
        }
    }
    for w in pushes {
        let present = count.contains_key(value(id, w.seq).as_str());
        if matches!(w.outcome, Outcome::Acked(_)) && !present {
            a.lost += 1;
            a.lost_examples.push(format!("RPUSH {}", value(id, w.seq)));
            a.lost_acked_at_ms.push(w.at_ms);
        }
        a.unknown_writes.extend(unknown(id, w, Some(present)));
    }
    a.duplicate_examples.truncate(EXAMPLES);
    a.lost_examples.truncate(EXAMPLES);
}

/// INCR: the counter says how many ran; each acknowledged reply says how
/// many had run up to it, which places the unknown ones between two replies.
fn account_counter(id: usize, incrs: &[&Write], counter: i64, a: &mut Accounting) {
    let acked = incrs
        .iter()
        .filter(|w| matches!(w.outcome, Outcome::Acked(_)))
        .count() as i64;
    let unknowns = incrs
        .iter()
        .filter(|w| matches!(w.outcome, Outcome::Unknown(_)))
        .count() as i64;
    if counter < acked {
        a.lost += (acked - counter) as u64;
        a.lost_examples.push(format!(
            "INCR writer {id}: {counter} < {acked} acknowledged"
        ));
        // The lost ones are those whose reply counted past the final value:
        // their times place the loss (a master kill's replication tail).
        let past = |w: &&&Write| matches!(w.outcome, Outcome::Acked(n) if n > counter);
        a.lost_acked_at_ms
            .extend(incrs.iter().filter(past).map(|w| w.at_ms));
    }
    if counter > acked + unknowns {
        a.duplicated += (counter - acked - unknowns) as u64;
        a.duplicate_examples.push(format!(
            "INCR writer {id}: {counter} > {acked} acknowledged + {unknowns} unknown"
        ));
    }
    for (w, applied) in incrs.iter().zip(incr_applied(incrs, counter)) {
        a.unknown_writes.extend(unknown(id, w, applied));
    }
}

/// For each INCR, whether it was applied when its outcome was unknown. The
/// unknown INCRs between two acknowledged replies `p` and `n` (or the
/// final counter) number `k`, of which `n - p - 1` ran: all, none, or
/// (with several) cannot tell which.
fn incr_applied(incrs: &[&Write], counter: i64) -> Vec<Option<bool>> {
    let mut out = vec![None; incrs.len()];
    let mut prev = 0i64;
    let mut pending: Vec<usize> = Vec::new();
    for (i, w) in incrs.iter().enumerate() {
        match w.outcome {
            Outcome::Acked(n) => {
                settle(&mut pending, n - prev - 1, &mut out);
                prev = n;
            }
            Outcome::Unknown(_) => pending.push(i),
            Outcome::Refused(_) => {}
        }
    }
    settle(&mut pending, counter - prev, &mut out);
    out
}

/// `ran` of the `pending` unknown INCRs were applied.
fn settle(pending: &mut Vec<usize>, ran: i64, out: &mut [Option<bool>]) {
    let verdict = match ran {
        0 => Some(false),
        r if r == pending.len() as i64 => Some(true),
        _ => None,
    };
    for i in pending.drain(..) {
        out[i] = verdict;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(cmd: Command, seq: u64, outcome: Outcome) -> Write {
        Write {
            cmd,
            seq,
            at_ms: seq as f64,
            outcome,
        }
    }

    fn acked(cmd: Command, seq: u64, reply: i64) -> Write {
        w(cmd, seq, Outcome::Acked(reply))
    }

    fn unknown(cmd: Command, seq: u64) -> Write {
        w(cmd, seq, Outcome::Unknown("unknown_outcome".into()))
    }

    fn list(id: usize, seqs: &[u64]) -> Vec<String> {
        seqs.iter().map(|s| value(id, *s)).collect()
    }

    /// Writer 0: pushes 1 and 2 acknowledged, 3 unknown; INCRs 1 and 2
    /// acknowledged (replies 1, 2), 3 unknown.
    fn three_steps() -> Vec<Write> {
        use Command::*;
        vec![
            acked(Rpush, 1, 1),
            acked(Incr, 1, 1),
            acked(Rpush, 2, 2),
            acked(Incr, 2, 2),
            unknown(Rpush, 3),
            unknown(Incr, 3),
        ]
    }

    #[test]
    fn everything_present_once_is_clean() {
        let writes = three_steps();
        let s = FinalState {
            list: list(0, &[1, 2]),
            counter: 2,
        };
        let a = account(0, &writes, &s);
        assert_eq!((a.acked, a.unknown, a.lost, a.duplicated), (4, 2, 0, 0));
        assert_eq!(a.unknown_applied(), (0, 2), "{:?}", a.unknown_writes);
    }

    #[test]
    fn an_unknown_write_that_ran_is_reported_applied_not_duplicated() {
        let s = FinalState {
            list: list(0, &[1, 2, 3]),
            counter: 3,
        };
        let a = account(0, &three_steps(), &s);
        assert_eq!((a.lost, a.duplicated), (0, 0));
        assert_eq!(a.unknown_applied(), (2, 0));
    }

    #[test]
    fn missing_acknowledged_writes_are_lost() {
        let s = FinalState {
            list: list(0, &[1]),
            counter: 1,
        };
        let a = account(0, &three_steps(), &s);
        assert_eq!(a.lost, 2, "one push and one increment");
        assert_eq!(a.lost_examples[0], "RPUSH 0:2");
        // Both are placed in time (push 2 and increment 2, at 2 ms), so a
        // loss of only increments is placed too.
        assert_eq!(a.lost_acked_at_ms, [2.0, 2.0]);
    }

    #[test]
    fn a_value_twice_or_a_counter_ahead_is_duplicated() {
        let s = FinalState {
            list: list(0, &[1, 2, 2]),
            counter: 4,
        };
        let a = account(0, &three_steps(), &s);
        assert_eq!(a.duplicated, 2, "{:?}", a.duplicate_examples);
        assert_eq!(a.lost, 0);
    }

    #[test]
    fn unknown_increments_are_placed_by_the_next_reply() {
        use Command::Incr;
        // 1 acked, 2 unknown, 3 acked with reply 3: the unknown one ran.
        // 4 unknown, 5 acked with reply 4: it did not.
        let writes = [
            acked(Incr, 1, 1),
            unknown(Incr, 2),
            acked(Incr, 3, 3),
            unknown(Incr, 4),
            acked(Incr, 5, 4),
        ];
        let refs: Vec<&Write> = writes.iter().collect();
        let v = incr_applied(&refs, 4);
        assert_eq!(v[1], Some(true));
        assert_eq!(v[3], Some(false));
        // Two unknown ones of which one ran: cannot tell which.
        let writes = [unknown(Incr, 1), unknown(Incr, 2)];
        let refs: Vec<&Write> = writes.iter().collect();
        assert_eq!(incr_applied(&refs, 1), vec![None, None]);
    }

    #[test]
    fn writers_add_up() {
        let a = three_steps();
        let mut b = three_steps();
        b.truncate(4);
        let states = [
            FinalState {
                list: list(0, &[1, 2]),
                counter: 2,
            },
            FinalState {
                list: list(1, &[1]),
                counter: 2,
            },
        ];
        let all = account_all(&[&a, &b], &states);
        assert_eq!((all.acked, all.unknown, all.lost), (8, 2, 1));
    }
}
