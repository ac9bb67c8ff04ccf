//! The local supervisor: runs a whole topology (Redis nodes, Sentinels and,
//! later, the proxy) as processes on one machine, each in its own directory
//! under a state dir. It is the default way to run redis-ha and the harness
//! every test, benchmark and drill uses.

pub mod boot;
pub mod cli;
pub mod cluster_args;
pub mod cold;
pub mod exporter;
pub mod info_period;
pub mod init_answer;
pub mod init_role;
pub mod live;
pub mod pki;
pub mod ports;
pub mod process;
pub mod proxy_restart;
pub mod replica_guard;
pub mod repoint;
pub mod secrets;
pub mod switchover;
pub mod tls_flags;
pub mod topo;

pub use topo::{NodeKind, Options, Topology};
