//! The contract between control and data: the routing table the control
//! plane publishes, and the refresh requests the data path sends back.

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
