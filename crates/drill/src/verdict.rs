//! Whether a drill passed, so it can gate CI: an acknowledged write lost, a
//! write applied twice, two masters at the end (split brain), no failover
//! where the fault needs one, or a failover where none may happen (a
//! replica killed, no quorum), a write that ran although the proxy closed
//! its connection where it promises to close only between requests (a
//! drain), each fails it (exit code 2; 1 is a drill that could not run).

use serde::Serialize;

/// One reason a drill failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "failure")]
pub enum Failure {
    Lost {
        writes: u64,
    },
    Duplicated {
        writes: u64,
    },
    SplitBrain {
        masters: Vec<String>,
    },
    NoFailover,
    /// A replica was promoted although the fault allows no failover.
    UnexpectedFailover {
        to: String,
    },
    /// Writes that ran although their client got no reply, where the
    /// fault promises none does (the proxy's drain closes connections
    /// only between requests: a retry would apply them twice).
    RanWithoutReply {
        writes: u64,
    },
}

impl Failure {
    pub fn describe(&self) -> String {
        match self {
            Failure::Lost { writes } => format!("{writes} acknowledged writes lost"),
            Failure::Duplicated { writes } => format!("{writes} writes applied twice"),
            Failure::SplitBrain { masters } => {
                format!(
                    "split brain: {} masters ({})",
                    masters.len(),
                    masters.join(", ")
                )
            }
            Failure::NoFailover => "no failover happened".into(),
            Failure::UnexpectedFailover { to } => {
                format!("a failover to {to} happened where none may")
            }
            Failure::RanWithoutReply { writes } => format!(
                "{writes} writes ran although their connection was closed without a reply \
                 (a drain may close a connection only between requests)"
            ),
        }
    }
}

/// What the fault needs of the master.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// A replica must be promoted (kill, stop, failover...).
    #[default]
    Failover,
    /// None may be (a replica killed or wiped, no quorum).
    NoFailover,
    /// Either is right (a cold restart: the newest node leads, which may
    /// or may not be the master of before).
    Either,
}

/// What the verdict is made from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub lost: u64,
    pub duplicated: u64,
    /// Nodes answering ROLE as master at the end.
    pub masters_at_end: Vec<String>,
    /// What the fault needs of the master.
    pub expect: Expect,
    pub old_master: String,
    pub new_master: Option<String>,
    /// A replica the drill saw answer ROLE as master during the fault.
    pub promotion_seen: Option<String>,
    /// Unknown outcomes that ran (or cannot be told apart), counted only
    /// where the fault promises every unanswered write did not run.
    pub ran_without_reply: u64,
}

/// Every reason the drill failed; empty when it passed.
pub fn failures(f: &Facts) -> Vec<Failure> {
    let mut out = Vec::new();
    if f.lost > 0 {
        out.push(Failure::Lost { writes: f.lost });
    }
    if f.duplicated > 0 {
        out.push(Failure::Duplicated {
            writes: f.duplicated,
        });
    }
    if f.masters_at_end.len() > 1 {
        out.push(Failure::SplitBrain {
            masters: f.masters_at_end.clone(),
        });
    }
    let moved = f.new_master.as_ref().is_some_and(|m| *m != f.old_master);
    if f.expect == Expect::Failover && !moved {
        out.push(Failure::NoFailover);
    }
    if f.expect == Expect::NoFailover {
        let to = f
            .promotion_seen
            .clone()
            .or(moved.then(|| f.new_master.clone()).flatten());
        if let Some(to) = to {
            out.push(Failure::UnexpectedFailover { to });
        }
    }
    if f.ran_without_reply > 0 {
        out.push(Failure::RanWithoutReply {
            writes: f.ran_without_reply,
        });
    }
    out
}

/// The process exit code for these failures: 0 passed, 2 failed.
pub fn exit_code(failures: &[Failure]) -> u8 {
    if failures.is_empty() {
        0
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passing() -> Facts {
        Facts {
            masters_at_end: vec!["b".into()],
            expect: Expect::Failover,
            old_master: "a".into(),
            new_master: Some("b".into()),
            ..Facts::default()
        }
    }

    #[test]
    fn a_clean_failover_passes() {
        assert_eq!(failures(&passing()), []);
        assert_eq!(exit_code(&failures(&passing())), 0);
    }

    #[test]
    fn lost_duplicated_and_split_brain_each_fail() {
        let f = Facts {
            lost: 1,
            duplicated: 2,
            masters_at_end: vec!["a".into(), "b".into()],
            ..passing()
        };
        let got = failures(&f);
        assert_eq!(
            got,
            [
                Failure::Lost { writes: 1 },
                Failure::Duplicated { writes: 2 },
                Failure::SplitBrain {
                    masters: vec!["a".into(), "b".into()]
                }
            ]
        );
        assert_eq!(exit_code(&got), 2);
    }

    #[test]
    fn no_failover_fails_only_where_one_was_expected() {
        let stayed = Facts {
            new_master: Some("a".into()),
            masters_at_end: vec!["a".into()],
            ..passing()
        };
        assert_eq!(failures(&stayed), [Failure::NoFailover]);
        let replica_killed = Facts {
            expect: Expect::NoFailover,
            ..stayed.clone()
        };
        assert_eq!(failures(&replica_killed), []);
        // A cold restart: staying and moving are both right.
        let cold = Facts {
            expect: Expect::Either,
            ..stayed
        };
        assert_eq!(failures(&cold), []);
        let moved = Facts {
            new_master: Some("c".into()),
            promotion_seen: Some("c".into()),
            ..cold
        };
        assert_eq!(failures(&moved), []);
    }

    #[test]
    fn a_failover_where_none_may_happen_fails() {
        let no_quorum = Facts {
            expect: Expect::NoFailover,
            new_master: Some("a".into()),
            masters_at_end: vec!["a".into()],
            ..passing()
        };
        assert_eq!(failures(&no_quorum), []);
        let promoted = Facts {
            promotion_seen: Some("b".into()),
            ..no_quorum.clone()
        };
        let moved = Facts {
            new_master: Some("c".into()),
            ..no_quorum
        };
        for (f, to) in [(promoted, "b"), (moved, "c")] {
            let got = failures(&f);
            assert_eq!(got, [Failure::UnexpectedFailover { to: to.into() }]);
            assert_eq!(exit_code(&got), 2);
        }
    }

    #[test]
    fn a_write_that_ran_without_a_reply_fails_where_none_may() {
        let f = Facts {
            ran_without_reply: 1,
            ..passing()
        };
        let got = failures(&f);
        assert_eq!(got, [Failure::RanWithoutReply { writes: 1 }]);
        assert_eq!(exit_code(&got), 2);
        assert!(got[0].describe().contains("between requests"));
    }
}
