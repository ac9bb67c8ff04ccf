//! Failover drills: run steady writers against an endpoint, inject a fault
//! (kill -9, SIGSTOP or a planned `SENTINEL FAILOVER`) on the master, and
//! report what the clients saw: the write outage, errors by kind, the lag
//! between the new master accepting writes and the first write acknowledged
//! through the endpoint, and any acknowledged write that is missing after.

pub mod cli;
pub mod run;

pub use run::{run_drill, DrillConfig, DrillReport, Fault};
