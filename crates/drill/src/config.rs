//! What a drill is told: where to write, which cluster, which fault, how
//! long, and how to reach the nodes.

use crate::kind::{self, Fault};
use redis_ha_resp::tls::Tls;
use redis_ha_resp::{Access, Login};
use redis_ha_topology::Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct DrillConfig {
    /// Where the writers connect (the proxy, HAProxy, or a node).
    pub target: Addr,
    /// Local topology (needed for kill/stop and to restore afterwards).
    pub state_dir: Option<PathBuf>,
    pub sentinels: Vec<Addr>,
    pub master_name: String,
    /// Password of the Redis nodes (writers log in with it too).
    pub password: Option<String>,
    /// The sentinels' own password, if they have one.
    pub sentinel_password: Option<String>,
    /// TLS toward the target, the nodes and the sentinels (`up --tls`).
    pub tls: Option<Arc<Tls>>,
    pub fault: Fault,
    pub writers: usize,
    /// Steady writing before the fault.
    pub before: Duration,
    /// Steady writing after writes resume.
    pub after: Duration,
    /// Give up waiting for writes to resume after this long.
    pub max_wait: Duration,
    /// Per-request client timeout (should exceed the proxy's failover hold).
    pub request_timeout: Duration,
    /// Restart a killed node / resume a stopped one when done.
    pub restore: bool,
    pub progress: bool,
    /// The read endpoint: a reader there counts read errors and stale reads.
    pub read_target: Option<Addr>,
    /// The proxy's admin address: when it switched, from `/api/status`.
    pub admin: Option<Addr>,
    /// `--via`: the same load at the same time through another path,
    /// accounted apart: `HOST:PORT`, `haproxy` (started by the drill like
    /// the original's, on the drill's nodes) or `master` (the master at the
    /// start, directly).
    pub via: Option<String>,
    /// `--fault partition`: how long the master stays cut off.
    pub heal_after: Duration,
    /// `--fault partition`: `min-replicas-to-write` on the drill's own
    /// topology (1, like the local topology; 0 is Redis's default).
    pub min_replicas_to_write: u32,
    /// `--fault partition`: the drill's proxy runs with `--write-ack`.
    pub write_ack: Option<redis_ha_proxy::data::ack::WriteAck>,
    /// `--fault partition`: its topology is TLS only (`--tls`).
    pub partition_tls: bool,
    /// `--fault cold-restart`: the order, a stale replica, the sentinels'
    /// state.
    pub cold: kind::ColdRestart,
}

impl DrillConfig {
    /// How writers, readers and checks reach the target and the nodes.
    pub fn redis_access(&self) -> Access {
        Access {
            login: self.password.as_deref().map(Login::default_user),
            tls: self.tls.clone(),
        }
    }

    /// How the drill reaches the sentinels.
    pub fn sentinel_access(&self) -> Access {
        Access {
            login: self.sentinel_password.as_deref().map(Login::default_user),
            tls: self.tls.clone(),
        }
    }
}
