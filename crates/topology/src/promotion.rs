//! When a restarted replica may be promoted again. A node restarted from
//! its disk (anything but a first boot) starts as a replica with
//! `replica-priority 0`: until it has synced from its master, its data may
//! be stale and its replication offset is 0 (Redis keeps no offset in an
//! AOF), so Sentinel could not rank it and might promote it over the node
//! with the newest data (seen: sentinels back before the nodes failed the
//! absent master over to a stale replica). The replica guard
//! (`redis-ha replica-guard`) raises the priority once the node has synced
//! and the sentinels see its master up: from then on it holds the master's
//! data, and a failover may choose it.

/// The priority a synced replica gets back: Redis's default.
pub const PROMOTABLE_PRIORITY: u32 = 100;

/// How a node starts, as rendered into its redis.conf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promotion {
    /// Promotable at once: a first boot (no data anywhere to lose).
    Now,
    /// `replica-priority 0` until the guard sees it synced.
    AfterSync,
}

impl Promotion {
    /// A first boot starts promotable; any other start waits for a sync.
    pub fn for_start(first_boot: bool) -> Promotion {
        if first_boot {
            Promotion::Now
        } else {
            Promotion::AfterSync
        }
    }
}

/// What the guard sees of its node (its `INFO replication`) and of the
/// sentinels (how many of them see its master up, with no failover).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `slave_priority`; `None` when the node did not say.
    pub priority: Option<u32>,
    pub link: Link,
    /// Sentinels that answered and see the master as plainly `master`
    /// (not `s_down`, `o_down` or `failover_in_progress`).
    pub sentinels_see_master_up: usize,
    pub sentinels: usize,
}

/// The node's replication state as far as promotion goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// It is a master: nothing to sync from.
    Master,
    /// A replica whose link is down, or loading what the master sent.
    Syncing,
    /// A replica whose link is up with no sync in progress.
    Synced,
}

/// The guard's next move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Already promotable (or a master): nothing to do.
    Nothing,
    /// Still unpromotable, and rightly so; says what it waits for.
    Wait(&'static str),
    /// Synced with a master the sentinels see up: `CONFIG SET
    /// replica-priority` [`PROMOTABLE_PRIORITY`].
    Raise,
}

/// Pure: the guard's decision. Raising needs the sync (the data is the
/// master's) and a majority of the sentinels seeing that master up with no
/// failover under way: a failover already choosing a replica when the node
/// synced could otherwise promote it and drop what the master took since.
pub fn decide(s: &Seen) -> Action {
    if s.priority != Some(0) {
        return Action::Nothing;
    }
    match s.link {
        Link::Master => Action::Nothing,
        Link::Syncing => Action::Wait("its first sync from the master"),
        Link::Synced if s.sentinels_see_master_up * 2 <= s.sentinels => {
            Action::Wait("a majority of the sentinels to see its master up, with no failover")
        }
        Link::Synced => Action::Raise,
    }
}

/// The node's link from its `INFO replication` fields.
pub fn link_of(role: &str, link_status: Option<&str>, sync_in_progress: bool) -> Link {
    match (role, link_status) {
        ("master", _) => Link::Master,
        (_, Some("up")) if !sync_in_progress => Link::Synced,
        _ => Link::Syncing,
    }
}

/// Whether a sentinel's `flags` for the master say it is up with no
/// failover (exactly `master`).
pub fn master_up(flags: &str) -> bool {
    flags == "master"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(priority: Option<u32>, link: Link, up: usize) -> Seen {
        Seen {
            priority,
            link,
            sentinels_see_master_up: up,
            sentinels: 3,
        }
    }

    #[test]
    fn a_synced_replica_is_raised_once_a_majority_sees_its_master_up() {
        assert_eq!(decide(&seen(Some(0), Link::Synced, 2)), Action::Raise);
        assert_eq!(decide(&seen(Some(0), Link::Synced, 3)), Action::Raise);
        assert!(matches!(
            decide(&seen(Some(0), Link::Synced, 1)),
            Action::Wait(_)
        ));
    }

    #[test]
    fn a_replica_still_syncing_stays_unpromotable() {
        assert!(matches!(
            decide(&seen(Some(0), Link::Syncing, 3)),
            Action::Wait(_)
        ));
    }

    #[test]
    fn promotable_nodes_and_masters_are_left_alone() {
        assert_eq!(decide(&seen(Some(100), Link::Syncing, 0)), Action::Nothing);
        assert_eq!(decide(&seen(None, Link::Synced, 3)), Action::Nothing);
        assert_eq!(decide(&seen(Some(0), Link::Master, 3)), Action::Nothing);
    }

    #[test]
    fn the_link_is_synced_only_when_up_and_not_loading() {
        assert_eq!(link_of("master", None, false), Link::Master);
        assert_eq!(link_of("slave", Some("up"), false), Link::Synced);
        assert_eq!(link_of("slave", Some("up"), true), Link::Syncing);
        assert_eq!(link_of("slave", Some("down"), false), Link::Syncing);
        assert_eq!(link_of("slave", None, false), Link::Syncing);
    }

    #[test]
    fn only_plain_master_flags_mean_up() {
        assert!(master_up("master"));
        assert!(!master_up("master,s_down"));
        assert!(!master_up("master,s_down,o_down,failover_in_progress"));
    }

    #[test]
    fn only_a_first_boot_starts_promotable() {
        assert_eq!(Promotion::for_start(true), Promotion::Now);
        assert_eq!(Promotion::for_start(false), Promotion::AfterSync);
    }
}
