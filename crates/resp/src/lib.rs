//! RESP2/RESP3 wire protocol: frames, an incremental parser, an encoder and a
//! small async connection for control-plane use.
//!
//! Kept apart as in mini-redis: [`frame`] is the data model, [`parse`] turns
//! bytes into frames (or just measures them, for zero-copy forwarding),
//! [`request`] is the resumable form of request parsing for client reads,
//! [`encode`] turns frames back into bytes, and [`conn`] moves them over TCP
//! or TLS ([`tls`]); [`login`] is what a connection presents.

pub mod conn;
pub mod encode;
pub mod frame;
pub mod login;
pub mod parse;
pub mod request;
pub mod tls;

pub use conn::{ConnError, Connection};
pub use frame::Frame;
pub use login::{Access, Credentials, Login};
pub use parse::{Command, Limits, ProtocolError};
pub use request::{Detached, RequestParser};
