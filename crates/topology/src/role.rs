//! The boot-role decision: a Redis node that (re)starts must follow the
//! *current* master. Written once; the local supervisor and the Kubernetes
//! init step both call it.

use crate::sentinel;
use crate::Addr;
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

/// Asks every sentinel for the master and decides. Unreachable sentinels are
/// skipped; the most common answer wins.
pub async fn decide_boot(
    sentinels: &[Addr],
    sentinel_pw: Option<&str>,
    master_name: &str,
    me: &str,
    first_boot_master: &str,
    timeout: Duration,
) -> Boot {
    let views = sentinel::ask_master_all(sentinels, sentinel_pw, master_name, timeout).await;
    let known = sentinel::most_common(
        views
            .iter()
            .filter_map(|(_, v)| v.as_ref().ok().cloned().flatten()),
    );
    boot_role(me, known.as_deref(), first_boot_master)
}

#[cfg(test)]
mod tests {
    use super::*;

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
