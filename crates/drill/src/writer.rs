//! One drill writer: non-idempotent writes (RPUSH of a unique value to its
//! own list, then INCR of its own counter), one request at a time, each
//! reply judged as a client must judge it: acknowledged, refused (it did
//! not run) or unknown (it may or may not have run).

use redis_ha_resp::Access;
use redis_ha_resp::{ConnError, Connection, Frame};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The two non-idempotent commands a writer sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    /// `RPUSH list "<writer>:<seq>"`: a value applied twice shows twice.
    Rpush,
    /// `INCR counter`: applied twice, the counter runs ahead.
    Incr,
}

/// What a client can conclude from one reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server's integer reply (RPUSH: the list's length, INCR: the
    /// counter's new value).
    Acked(i64),
    /// An error reply that means the write did not run (`READONLY`, the
    /// proxy's "no master"...), by kind.
    Refused(String),
    /// No way to know whether it ran, by kind: the proxy's
    /// `ERR redis-ha: unknown outcome: ...` (`unknown_outcome`), a timeout,
    /// or a connection lost after sending.
    Unknown(String),
}

/// One write as sent and judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub cmd: Command,
    pub seq: u64,
    /// Milliseconds since the drill started, when the reply (or failure) came.
    pub at_ms: f64,
    pub outcome: Outcome,
}

/// Everything one writer saw.
#[derive(Clone, Debug, Default)]
pub struct WriterLog {
    pub writes: Vec<Write>,
    /// Failed connection attempts (nothing was sent): when, and the kind.
    pub connect_failures: Vec<(f64, String)>,
}

/// The keys a writer uses under the drill's `prefix`.
pub fn list_key(prefix: &str, id: usize) -> String {
    format!("{prefix}:{id}:list")
}

pub fn counter_key(prefix: &str, id: usize) -> String {
    format!("{prefix}:{id}:n")
}

/// The unique value writer `id` pushes as its `seq`th write.
pub fn value(id: usize, seq: u64) -> String {
    format!("{id}:{seq}")
}

/// An error reply's kind: `unknown_outcome` when the proxy says it could
/// not know whether the write ran, else its first word (`READONLY`...).
pub fn reply_kind(msg: &str) -> String {
    if msg.contains("unknown outcome") {
        return "unknown_outcome".into();
    }
    // --write-ack: it ran on the master, unconfirmed by the replicas (Redis's
    // own NOREPLICAS, from min-replicas-to-write, means it did not run).
    if msg.starts_with("NOREPLICAS redis-ha:") {
        return "not_replicated".into();
    }
    msg.split_whitespace().next().unwrap_or("ERR").to_string()
}

/// A transport failure's kind (`timeout`, `closed`, `io:...`).
pub fn error_kind(e: &ConnError) -> String {
    match e {
        ConnError::Timeout(_) => "timeout".into(),
        ConnError::Connect { .. } => "connect".into(),
        ConnError::Closed => "closed".into(),
        ConnError::Io(io) => format!("io:{:?}", io.kind()),
        ConnError::Protocol(_) => "protocol".into(),
        ConnError::Server(s) => reply_kind(s),
        ConnError::Tls(_) => "tls".into(),
    }
}

/// Judges the reply to a write that was sent.
pub fn judge(reply: &Result<Frame, ConnError>) -> Outcome {
    match reply {
        Ok(Frame::Integer(n)) => Outcome::Acked(*n),
        Ok(Frame::Error(e)) => {
            let kind = reply_kind(&String::from_utf8_lossy(e));
            if kind == "unknown_outcome" || kind == "not_replicated" {
                Outcome::Unknown(kind)
            } else {
                Outcome::Refused(kind)
            }
        }
        // Not an answer RPUSH or INCR gives: nothing can be concluded.
        Ok(_) => Outcome::Unknown("unexpected-reply".into()),
        // Nothing was sent if the connection could not even be made.
        Err(e @ ConnError::Connect { .. }) => Outcome::Refused(error_kind(e)),
        Err(e) => Outcome::Unknown(error_kind(e)),
    }
}

/// What a writer task needs, shared by all of them.
pub struct Shared {
    pub target: String,
    /// Login and TLS toward the target.
    pub access: Access,
    pub request_timeout: Duration,
    pub prefix: String,
    pub start: Instant,
    pub stop: AtomicBool,
    /// Microseconds since `start` of the latest acknowledgement (any writer).
    pub last_ack_us: AtomicU64,
    /// Writer 0's counter as its latest acknowledged INCR returned it (the
    /// reader's measure of a stale read).
    pub acked_counter: AtomicI64,
}

impl Shared {
    fn ms(&self, t: Instant) -> f64 {
        t.duration_since(self.start).as_secs_f64() * 1000.0
    }

    fn acked_at(&self, t: Instant) {
        let us = t.duration_since(self.start).as_micros() as u64;
        self.last_ack_us.fetch_max(us, Ordering::Relaxed);
    }
}

async fn connect(s: &Shared) -> Result<Connection, ConnError> {
    let mut c =
        Connection::connect_auth(&s.target, Some(&s.access), Duration::from_secs(1)).await?;
    c.timeout = s.request_timeout;
    Ok(c)
}

/// Sends one write and records it; false when the connection must go.
async fn write_one(
    s: &Shared,
    c: &mut Connection,
    log: &mut WriterLog,
    cmd: Command,
    args: &[&str],
    seq: u64,
) -> bool {
    let reply = c.request(args).await;
    let now = Instant::now();
    let outcome = judge(&reply);
    if matches!(outcome, Outcome::Acked(_)) {
        s.acked_at(now);
    }
    log.writes.push(Write {
        cmd,
        seq,
        at_ms: s.ms(now),
        outcome,
    });
    reply.is_ok()
}

/// Writes until `stop`: per step, RPUSH `<id>:<seq>` then INCR.
pub async fn run(id: usize, s: Arc<Shared>) -> WriterLog {
    let mut log = WriterLog::default();
    let mut conn: Option<Connection> = None;
    let (list, counter) = (list_key(&s.prefix, id), counter_key(&s.prefix, id));
    let mut seq = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&s).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    log.connect_failures
                        .push((s.ms(Instant::now()), error_kind(&e)));
                    // Back off a little so a dead endpoint is not hammered.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        seq += 1;
        let v = value(id, seq);
        let ok = write_one(&s, c, &mut log, Command::Rpush, &["RPUSH", &list, &v], seq).await
            && write_one(&s, c, &mut log, Command::Incr, &["INCR", &counter], seq).await;
        if let (
            0,
            Some(Write {
                cmd: Command::Incr,
                outcome: Outcome::Acked(n),
                ..
            }),
        ) = (id, log.writes.last())
        {
            s.acked_counter.fetch_max(*n, Ordering::Relaxed);
        }
        if !ok {
            conn = None;
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_judged_as_a_client_must() {
        assert_eq!(judge(&Ok(Frame::Integer(7))), Outcome::Acked(7));
        let unacked = Frame::Error(
            "NOREPLICAS redis-ha: the write ran on the master, but only 0 of 1 replicas confirmed it".into(),
        );
        assert_eq!(
            judge(&Ok(unacked)),
            Outcome::Unknown("not_replicated".into())
        );
        let refused = Frame::Error("NOREPLICAS Not enough good replicas to write.".into());
        assert_eq!(judge(&Ok(refused)), Outcome::Refused("NOREPLICAS".into()));
        let unknown = Frame::Error("ERR redis-ha: unknown outcome: master lost".into());
        assert_eq!(
            judge(&Ok(unknown)),
            Outcome::Unknown("unknown_outcome".into())
        );
        let ro = Frame::Error("READONLY You can't write against a read only replica.".into());
        assert_eq!(judge(&Ok(ro)), Outcome::Refused("READONLY".into()));
        assert_eq!(
            judge(&Err(ConnError::Timeout(Duration::from_secs(1)))),
            Outcome::Unknown("timeout".into())
        );
        assert_eq!(
            judge(&Err(ConnError::Closed)),
            Outcome::Unknown("closed".into())
        );
        assert_eq!(
            judge(&Ok(Frame::Simple("OK".into()))),
            Outcome::Unknown("unexpected-reply".into())
        );
    }
}
