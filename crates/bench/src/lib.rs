//! `redis-ha bench`: a memtier-style Redis load generator that keeps going
//! through failovers.
//!
//! [`workload`] turns memtier's flags into request templates and key
//! generators, [`worker`] drives one connection (pipelined, optionally
//! open-loop rate limited, reconnecting with backoff), [`stats`] aggregates
//! HdrHistograms, a per-second timeline, errors by kind and outage windows,
//! [`report`] renders memtier's ALL STATS table, JSON and charts, and
//! [`scenario`] composes runs (the original's write-then-read benchmark);
//! TLS (the client config and the plain-or-TLS stream) is
//! [`redis_ha_resp::tls`], shared with the proxy's backend connections.

pub mod chart;
pub mod cli;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod worker;
pub mod workload;

pub use run::{run, RunOptions};
