//! `redis-ha proxy`: a Sentinel-aware RESP proxy.
//!
//! Layers, each with one job:
//! - [`control`] watches Sentinel and the nodes and publishes a [`route::Routes`]
//!   table (who is master, which replicas are healthy) through a watch channel.
//! - [`data`] is the data path: it accepts clients on the write and read
//!   endpoints, forwards requests to the backend the current table names, and
//!   holds or retries commands across a failover. It never talks to Sentinel;
//!   it only reads the table and reports trouble (READONLY, a dropped backend)
//!   back through [`route::Refresh`].
//! - [`admin`] serves the dashboard, `/metrics`, `/api/status`, `/healthz`, `/readyz`.

pub mod admin;
pub mod cli;
pub mod config;
pub mod control;
pub mod data;
pub mod listen;
pub mod metrics;
pub mod route;
pub mod secret;
pub mod server;
