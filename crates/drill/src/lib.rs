//! Failover drills: run steady non-idempotent writers against an endpoint,
//! inject a fault (kill -9, SIGSTOP, a planned `SENTINEL FAILOVER` or a
//! zero-loss switchover on the master, kill -9 of a replica, of one or two
//! sentinels and then the master, a rolling restart), and
//! report what the clients saw: the write outage, errors by kind, every
//! Sentinel event on a timeline beside the original's expected one, and
//! exactly-once accounting (lost, duplicated, unknown outcomes and whether
//! each was applied), with a chart on request.

pub mod account;
pub mod chart;
pub mod cli;
pub mod config;
pub mod events;
pub mod explain;
pub mod fault;
pub mod haproxy;
pub mod kind;
pub mod observe;
pub mod partition;
pub mod render;
pub mod report;
pub mod restart_proxy;
pub mod roles;
pub mod run;
pub mod timeline;
pub mod verdict;
pub mod writer;

pub use config::DrillConfig;
pub use kind::Fault;
pub use report::DrillReport;
pub use run::run_drill;
