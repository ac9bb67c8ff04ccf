//! The boot-role decision: a Redis node that (re)starts must follow the
//! *current* master. Written once; the local supervisor and the Kubernetes
//! init step both call it.

use crate::sentinel;
use crate::Addr;
use redis_ha_resp::Credentials;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    Master,
    ReplicaOf(Addr),
}

/// Pure decision. `known_master` is what the sentinels agree on (if any);
/// only when they know nothing does `first_boot_master` (redis-0) lead.
pub fn boot_role(me: &str, known_master: Option<&str>, first_boot_master: &str) -> Boot {
    match known_master {
        // The sentinels still consider this node the master (it restarted
        // before a failover): it resumes from its own data as master.
        Some(m) if m == me => Boot::Master,
        Some(m) => Boot::ReplicaOf(m.to_string()),
        None if me == first_boot_master => Boot::Master,
        None => Boot::ReplicaOf(first_boot_master.to_string()),
    }
}

/// What the reachable sentinels say about the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// A majority of the sentinels that answered names this master.
    Agreed(Addr),
    /// None answered, or none knows a master: a first boot.
    NoneKnown,
    /// They answer but no master has a majority of them (a failover in
    /// progress, or a split): no node may decide to be master now.
    Split(Vec<(Addr, usize)>),
}

/// Pure: the answers of the sentinels that replied (`None` = knows no master).
pub fn agreement(answers: &[Option<Addr>]) -> Agreement {
    let mut votes: Vec<(Addr, usize)> = Vec::new();
    for a in answers.iter().flatten() {
        match votes.iter_mut().find(|(m, _)| m == a) {
            Some((_, n)) => *n += 1,
            None => votes.push((a.clone(), 1)),
        }
    }
    if votes.is_empty() {
        return Agreement::NoneKnown;
    }
    let need = answers.len() / 2 + 1;
    match votes.iter().find(|(_, n)| *n >= need) {
        Some((m, _)) => Agreement::Agreed(m.clone()),
        None => Agreement::Split(votes),
    }
}

impl Agreement {
    /// The master most sentinels name (ties: the first named), majority or
    /// not: what a caller reporting a split, or one that must pick some
    /// master to look at, uses. `None` when none knows one.
    pub fn most_named(&self) -> Option<&Addr> {
        match self {
            Agreement::Agreed(m) => Some(m),
            Agreement::NoneKnown => None,
            Agreement::Split(votes) => {
                let best = votes.iter().map(|(_, n)| *n).max()?;
                votes.iter().find(|(_, n)| *n == best).map(|(m, _)| m)
            }
        }
    }

    /// The master a majority names, if any.
    pub fn agreed(&self) -> Option<&Addr> {
        match self {
            Agreement::Agreed(m) => Some(m),
            _ => None,
        }
    }
}

/// Every sentinel's answer, in the order asked, and what they agree on.
#[derive(Clone, Debug)]
pub struct Views {
    /// `(sentinel, Ok(master it names, if any) or Err(why it did not answer))`.
    pub answers: Vec<(Addr, Result<Option<Addr>, String>)>,
    pub agreement: Agreement,
}

impl Views {
    /// Pure: the agreement of the sentinels that answered.
    pub fn from_answers(answers: Vec<(Addr, Result<Option<Addr>, String>)>) -> Views {
        let named: Vec<Option<Addr>> = answers
            .iter()
            .filter_map(|(_, v)| v.as_ref().ok().cloned())
            .collect();
        Views {
            agreement: agreement(&named),
            answers,
        }
    }

    /// How many sentinels name `master`.
    pub fn votes_for(&self, master: &str) -> usize {
        self.answers
            .iter()
            .filter(|(_, v)| matches!(v, Ok(Some(m)) if m == master))
            .count()
    }
}

/// Asks every sentinel (concurrently) for the master; unreachable ones do
/// not vote.
pub async fn ask<L: Credentials + ?Sized + Sync>(
    sentinels: &[Addr],
    sentinel_pw: Option<&L>,
    master_name: &str,
    timeout: Duration,
) -> Views {
    let answers = sentinel::ask_master_all(sentinels, sentinel_pw, master_name, timeout)
        .await
        .into_iter()
        .map(|(s, v)| (s, v.map_err(|e| e.to_string())))
        .collect();
    Views::from_answers(answers)
}

/// The boot role from the sentinels' agreement: follow the agreed master;
/// on a first boot `first_boot_master` leads; with no majority, refuse (the
/// caller retries) rather than risk a second master.
pub fn boot_from(me: &str, agreement: &Agreement, first_boot_master: &str) -> Result<Boot, String> {
    match agreement {
        Agreement::Agreed(m) => Ok(boot_role(me, Some(m), first_boot_master)),
        Agreement::NoneKnown => Ok(boot_role(me, None, first_boot_master)),
        Agreement::Split(votes) => Err(format!(
            "the sentinels do not agree on a master ({}); not starting as master or replica until a majority does: retry in a few seconds",
            votes.iter().map(|(m, n)| format!("{m}: {n}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Asks every sentinel and decides (see [`boot_from`]).
pub async fn decide_boot<L: Credentials + ?Sized + Sync>(
    sentinels: &[Addr],
    sentinel_pw: Option<&L>,
    master_name: &str,
    me: &str,
    first_boot_master: &str,
    timeout: Duration,
) -> Result<Boot, String> {
    let a = ask(sentinels, sentinel_pw, master_name, timeout).await;
    boot_from(me, &a.agreement, first_boot_master)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_of_the_answers_decides() {
        let (a, b) = (Some("a:1".to_string()), Some("b:1".to_string()));
        assert_eq!(
            agreement(&[a.clone(), a.clone(), b.clone()]),
            Agreement::Agreed("a:1".into())
        );
        assert_eq!(
            agreement(std::slice::from_ref(&a)),
            Agreement::Agreed("a:1".into())
        );
        assert_eq!(agreement(&[]), Agreement::NoneKnown);
        assert_eq!(agreement(&[None, None]), Agreement::NoneKnown);
        // One of three knows a master: no majority, no guess.
        assert!(matches!(
            agreement(&[a.clone(), None, None]),
            Agreement::Split(_)
        ));
        assert!(matches!(
            agreement(&[a.clone(), b.clone()]),
            Agreement::Split(_)
        ));
        // The restarted first master is told to follow the agreed one.
        let agreed = agreement(&[b.clone(), b.clone(), a.clone()]);
        assert_eq!(
            boot_from("a:1", &agreed, "a:1"),
            Ok(Boot::ReplicaOf("b:1".into()))
        );
        assert!(boot_from("a:1", &agreement(&[a, b]), "a:1").is_err());
    }

    #[test]
    fn the_most_named_master_is_the_plurality_first_seen_on_ties() {
        let v = |m: &str| Some(m.to_string());
        assert_eq!(
            agreement(&[v("a:1"), v("a:1"), v("b:1")]).most_named(),
            Some(&"a:1".into())
        );
        // No majority, but b is named most: status and drills look at it.
        let split = agreement(&[v("a:1"), v("b:1"), v("b:1"), None, None]);
        assert!(split.agreed().is_none());
        assert_eq!(split.most_named(), Some(&"b:1".into()));
        assert_eq!(
            agreement(&[v("b:1"), v("a:1")]).most_named(),
            Some(&"b:1".into())
        );
        assert_eq!(agreement(&[None]).most_named(), None);
    }

    #[test]
    fn views_count_only_the_sentinels_that_answered() {
        let views = Views::from_answers(vec![
            ("s0".into(), Ok(Some("a:1".into()))),
            ("s1".into(), Err("connection refused".into())),
            ("s2".into(), Ok(Some("a:1".into()))),
        ]);
        assert_eq!(views.agreement, Agreement::Agreed("a:1".into()));
        assert_eq!(views.votes_for("a:1"), 2);
        assert_eq!(views.votes_for("b:1"), 0);
    }

    #[test]
    fn decisions() {
        assert_eq!(boot_role("a:1", None, "a:1"), Boot::Master);
        assert_eq!(boot_role("b:1", None, "a:1"), Boot::ReplicaOf("a:1".into()));
        assert_eq!(
            boot_role("a:1", Some("b:1"), "a:1"),
            Boot::ReplicaOf("b:1".into())
        );
        assert_eq!(boot_role("b:1", Some("b:1"), "a:1"), Boot::Master);
    }
}
