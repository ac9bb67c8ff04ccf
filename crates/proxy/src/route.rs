//! The contract between control and data: the routing table the control
//! plane publishes, and the refresh requests the data path sends back.

use prometheus_client::encoding::EncodeLabelValue;
use redis_ha_topology::Addr;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Where traffic goes right now. Published whole on every change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routes {
    /// Bumped each time a new master is adopted. Backend connections opened
    /// to the master of an older epoch are fenced (closed or moved).
    pub epoch: u64,
    /// Where writes go. `None` while no verified master is known: the write
    /// endpoint holds commands (up to `failover_hold`) instead of guessing.
    pub master: Option<Addr>,
    /// Healthy replicas for the read endpoint, in a stable order.
    pub replicas: Vec<Addr>,
    /// Why there is no master, when known: failing closed (no sentinel
    /// majority and no master), a master refusing connections, sentinels that
    /// cannot be reached or do not know the master name. Given to clients
    /// whose held commands time out, and shown in `/api/status`.
    pub closed: Option<String>,
}

/// A client-facing port: what its requests are for decides where they go.
/// Lower case: it is the `endpoint` label of the metrics.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue, serde::Serialize)]
#[allow(non_camel_case_types)]
pub enum Endpoint {
    /// To the master.
    write,
    /// To the replicas in rotation.
    read,
}

impl Routes {
    /// The table's own copy of `addr`, if it is a node of it.
    pub fn node(&self, addr: &str) -> Option<&Addr> {
        self.master
            .iter()
            .chain(&self.replicas)
            .find(|a| a.as_str() == addr)
    }

    /// Whether `addr` takes new requests for `ep`: the master for writes; a
    /// replica in rotation, or the master when none is left, for reads.
    pub fn serves(&self, ep: Endpoint, addr: &str) -> bool {
        let master = self.master.as_deref() == Some(addr);
        match ep {
            Endpoint::write => master,
            Endpoint::read => {
                self.replicas.iter().any(|r| r == addr) || (self.replicas.is_empty() && master)
            }
        }
    }

    /// Whether a link to `addr` must stop taking new requests for `ep`: the
    /// table no longer has it there. With no master known at all a write
    /// link stays: the master may be busy, not gone, and Sentinel decides.
    pub fn moved_from(&self, ep: Endpoint, addr: &str) -> bool {
        let unknown = ep == Endpoint::write && self.master.is_none();
        !unknown && !self.serves(ep, addr)
    }
}

/// Why the data path wants the control plane to look again, now.
#[derive(Clone, Debug, PartialEq)]
pub enum Refresh {
    /// A node answered `-READONLY`: it is no longer master.
    ReadOnly(Addr),
    /// A backend connection failed or was dropped.
    BackendDown(Addr),
}

/// Handles the data path gets from the control plane.
#[derive(Clone)]
pub struct RouteHandle {
    pub routes: watch::Receiver<Arc<Routes>>,
    pub refresh: mpsc::UnboundedSender<Refresh>,
}

impl RouteHandle {
    pub fn current(&self) -> Arc<Routes> {
        self.routes.borrow().clone()
    }

    /// Asks the control plane for an immediate refresh (never blocks).
    pub fn refresh(&self, why: Refresh) {
        let _ = self.refresh.send(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(master: Option<&str>, replicas: &[&str]) -> Routes {
        Routes {
            master: master.map(str::to_string),
            replicas: replicas.iter().map(|r| r.to_string()).collect(),
            ..Routes::default()
        }
    }

    #[test]
    fn who_serves_each_endpoint() {
        let r = routes(Some("m:1"), &["r:1", "r:2"]);
        assert!(r.serves(Endpoint::write, "m:1"));
        assert!(!r.serves(Endpoint::write, "r:1"));
        assert!(r.serves(Endpoint::read, "r:2"));
        assert!(!r.serves(Endpoint::read, "m:1"));
        // No replica left: the master serves reads too.
        assert!(routes(Some("m:1"), &[]).serves(Endpoint::read, "m:1"));
    }

    #[test]
    fn node_is_the_tables_own_copy() {
        let r = routes(Some("m:1"), &["r:1", "r:2"]);
        assert!(std::ptr::eq(r.node("r:2").unwrap(), &r.replicas[1]));
        assert_eq!(r.node("m:1"), r.master.as_ref());
        assert_eq!(r.node("x:1"), None);
    }

    #[test]
    fn a_link_moves_only_when_the_table_names_somewhere_else() {
        let r = routes(Some("m:2"), &["r:1"]);
        assert!(r.moved_from(Endpoint::write, "m:1"));
        assert!(!r.moved_from(Endpoint::write, "m:2"));
        assert!(r.moved_from(Endpoint::read, "r:9"));
        // No master known: a write link stays (busy is not down); reads move.
        let none = routes(None, &[]);
        assert!(!none.moved_from(Endpoint::write, "m:1"));
        assert!(none.moved_from(Endpoint::read, "r:1"));
    }
}
