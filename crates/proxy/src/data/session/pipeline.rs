//! A client's requests in order, each in a slot that owns its outcome:
//! queued (never written to a backend), written (on the current link, reply
//! awaited) or done (a reply ready for the client: the backend's, kept until
//! every earlier slot is done, or the proxy's own). Replies leave strictly in
//! request order. No sockets here: the session's driver does the I/O.

use super::replay::{self, Loss};
use crate::data::commands::{Class, Kind};
use crate::data::error::ClientError;
use bytes::{Bytes, BytesMut};
use redis_ha_resp::Command;
use std::collections::VecDeque;
use std::time::Instant;

/// What happens once a reply has been written to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
}

#[derive(Debug)]
pub enum SlotState {
    /// Not written to any backend: may go anywhere.
    Queued,
    /// Written to the current link; its reply is awaited.
    Written,
    /// The reply, waiting for earlier slots.
    Done(Bytes, After),
}

#[derive(Debug)]
pub struct Slot {
    pub cmd: Command,
    pub class: Class,
    pub state: SlotState,
    /// Backend connections lost while this request was on them.
    pub losses: u8,
    /// When it was read (set by [`Pipeline::push`]), for the latency metric.
    at: Option<Instant>,
}

impl Slot {
    pub fn remote(cmd: Command, class: Class) -> Slot {
        Slot {
            cmd,
            class,
            state: SlotState::Queued,
            losses: 0,
            at: None,
        }
    }
}

/// What resolving the written slots after a lost link did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Re-queued: certainly not run, or reads.
    pub replayed: u64,
    /// Answered with an error (unknown outcome, or lost twice).
    pub failed: Vec<ClientError>,
}

#[derive(Default)]
pub struct Pipeline {
    slots: VecDeque<Slot>,
    queued: usize,
    written: usize,
    /// The time of the client read the next pushed slots came from.
    arrived: Option<Instant>,
    /// Replies moved out since [`Pipeline::take_answered`], by arrival
    /// time (run-length: one read's requests share it).
    answered: Vec<(Instant, u64)>,
}

impl Pipeline {
    /// Slots pushed from now on were read at `t` (one clock read per read,
    /// not per request).
    pub fn arrived(&mut self, t: Instant) {
        self.arrived = Some(t);
    }

    /// Hands each group of replies moved out since the last call, with the
    /// time its requests were read.
    pub fn take_answered(&mut self, mut f: impl FnMut(Instant, u64)) {
        for (t, n) in self.answered.drain(..) {
            f(t, n);
        }
    }

    fn note_answered(&mut self, at: Option<Instant>) {
        let Some(t) = at else { return };
        match self.answered.last_mut() {
            Some((last, n)) if *last == t => *n += 1,
            _ => self.answered.push((t, 1)),
        }
    }

    pub fn push(&mut self, mut slot: Slot) {
        slot.at = self.arrived;
        match slot.state {
            SlotState::Queued => self.queued += 1,
            SlotState::Written => self.written += 1,
            SlotState::Done(..) => {}
        }
        self.slots.push_back(slot);
    }

    /// A reply of the proxy's own, in order with the others.
    pub fn push_local(&mut self, cmd: Command, class: Class, reply: Bytes, after: After) {
        self.push(Slot {
            cmd,
            class,
            state: SlotState::Done(reply, after),
            losses: 0,
            at: None,
        });
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn written(&self) -> usize {
        self.written
    }

    /// The first request waiting to be written.
    pub fn next_queued(&self) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| matches!(s.state, SlotState::Queued))
    }

    /// Writes queued requests in order into `batch` while `take` accepts
    /// them (it may stop at one the current link cannot carry), marking them
    /// written; returns how many.
    pub fn write_queued(
        &mut self,
        batch: &mut BytesMut,
        mut take: impl FnMut(&Slot) -> bool,
    ) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if !matches!(s.state, SlotState::Queued) {
                continue;
            }
            if !take(s) {
                break;
            }
            batch.extend_from_slice(&s.cmd.raw);
            s.state = SlotState::Written;
            n += 1;
        }
        self.queued -= n;
        self.written += n;
        n
    }

    /// Gives the first written request its reply. When it is at the front
    /// (the usual case) the reply is appended to `out` at once; otherwise it
    /// is kept until the slots before it are done. Returns the slot's
    /// command and class for state tracking.
    pub fn answer(&mut self, reply: &[u8], out: &mut BytesMut) -> Option<(Command, Class)> {
        let i = self
            .slots
            .iter()
            .position(|s| matches!(s.state, SlotState::Written))?;
        self.written -= 1;
        if i == 0 {
            let s = self.slots.pop_front().expect("found");
            self.note_answered(s.at);
            out.extend_from_slice(reply);
            return Some((s.cmd, s.class));
        }
        let s = &mut self.slots[i];
        s.state = SlotState::Done(Bytes::copy_from_slice(reply), After::Continue);
        Some((s.cmd.clone(), s.class))
    }

    /// The first written request certainly did not run (READONLY and the
    /// like): it goes back to the queue.
    pub fn requeue_first_written(&mut self) {
        if let Some(s) = self
            .slots
            .iter_mut()
            .find(|s| matches!(s.state, SlotState::Written))
        {
            s.state = SlotState::Queued;
            self.written -= 1;
            self.queued += 1;
        }
    }

    /// The last `n` written requests never left (their link was closed
    /// before the write): back to the queue.
    pub fn requeue_last_written(&mut self) {
        if let Some(s) = self
            .slots
            .iter_mut()
            .rev()
            .find(|s| matches!(s.state, SlotState::Written))
        {
            s.state = SlotState::Queued;
            self.written -= 1;
            self.queued += 1;
        }
    }

    /// The link carrying the first written request is gone: it is
    /// re-queued (`Ok`) or failed as [`replay::after_loss`] decides.
    pub fn lose_first_written(&mut self, loss: &Loss) -> Option<Result<(), ClientError>> {
        let s = self
            .slots
            .iter_mut()
            .find(|s| matches!(s.state, SlotState::Written))?;
        self.written -= 1;
        s.losses = s.losses.saturating_add(1);
        let r = replay::after_loss(s.class.effect, s.losses, loss);
        match &r {
            Ok(()) => {
                s.state = SlotState::Queued;
                self.queued += 1;
            }
            Err(e) => s.state = SlotState::Done(e.reply(), After::Continue),
        }
        Some(r)
    }

    /// The link carrying the written requests is gone: each is re-queued or
    /// failed (see [`Pipeline::lose_first_written`]).
    pub fn lose_written(&mut self, loss: &Loss) -> Resolved {
        let mut r = Resolved::default();
        while let Some(one) = self.lose_first_written(loss) {
            match one {
                Ok(()) => r.replayed += 1,
                Err(e) => r.failed.push(e),
            }
        }
        r
    }

    /// Answers the queued requests `pick` selects with `err`; returns how many.
    pub fn fail_queued_where(&mut self, err: &ClientError, pick: impl Fn(&Slot) -> bool) -> u64 {
        let reply = err.reply();
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if matches!(s.state, SlotState::Queued) && pick(s) {
                s.state = SlotState::Done(reply.clone(), After::Continue);
                n += 1;
            }
        }
        self.queued -= n as usize;
        n
    }

    /// Answers every queued request with `err` (held too long, no replica).
    pub fn fail_queued(&mut self, err: &ClientError) -> u64 {
        let reply = err.reply();
        for s in self.slots.iter_mut() {
            if matches!(s.state, SlotState::Queued) {
                s.state = SlotState::Done(reply.clone(), After::Continue);
            }
        }
        std::mem::take(&mut self.queued) as u64
    }

    /// Ends the session: everything unanswered is dropped and `reply` closes it.
    pub fn abandon(&mut self, reply: Bytes) {
        self.slots
            .retain(|s| matches!(s.state, SlotState::Done(..)));
        self.queued = 0;
        self.written = 0;
        self.push_reply(reply, After::Close);
    }

    /// A reply of the proxy's own that answers no request of the client's
    /// (an error, a close): its slot carries a placeholder, built once.
    pub fn push_reply(&mut self, reply: Bytes, after: After) {
        static PLACEHOLDER: std::sync::OnceLock<(Command, Class)> = std::sync::OnceLock::new();
        let (cmd, class) = PLACEHOLDER.get_or_init(|| {
            let c = Command::from_args(&["QUIT"]);
            let class = crate::data::commands::classify(&c);
            (c, class)
        });
        self.push_local(cmd.clone(), *class, reply, after);
    }

    /// Moves the replies that are ready at the front into `out`.
    pub fn flush(&mut self, out: &mut BytesMut) -> After {
        loop {
            let Some(Slot {
                state: SlotState::Done(reply, after),
                ..
            }) = self.slots.front()
            else {
                return After::Continue;
            };
            out.extend_from_slice(reply);
            let after = *after;
            let at = self.slots.pop_front().and_then(|s| s.at);
            self.note_answered(at);
            if after == After::Close {
                return After::Close;
            }
        }
    }

    /// Written requests of a kind that ties the client to its backend.
    pub fn blocking_written(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Written) && s.class.kind == Kind::Blocking)
    }

    /// A request of this kind not written yet.
    pub fn has_unsent(&self, kind: Kind) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Queued) && s.class.kind == kind)
    }

    /// A login (AUTH, HELLO) not answered yet.
    pub fn login_pending(&self) -> bool {
        self.slots.iter().any(|s| {
            !matches!(s.state, SlotState::Done(..))
                && matches!(s.class.kind, Kind::Auth | Kind::Hello)
        })
    }

    /// Passthrough mode (pub/sub, MONITOR): replies no longer pair with
    /// requests, so written requests count as answered.
    pub fn forget_written(&mut self) {
        self.slots
            .retain(|s| !matches!(s.state, SlotState::Written));
        self.written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::commands::classify;

    fn req(args: &[&str]) -> Slot {
        let c = Command::from_args(args);
        let class = classify(&c);
        Slot::remote(c, class)
    }

    fn lost() -> Loss {
        Loss {
            node: "n:1".into(),
            why: "closed".into(),
        }
    }

    #[test]
    fn replies_leave_in_order_even_when_one_is_sent_again() {
        let mut p = Pipeline::default();
        p.push(req(&["SET", "a", "1"]));
        p.push(req(&["GET", "a"]));
        let mut batch = BytesMut::new();
        assert_eq!(p.write_queued(&mut batch, |_| true), 2);
        assert_eq!((p.queued(), p.written()), (0, 2));
        // The SET was refused with READONLY: it goes back; the GET's reply waits.
        p.requeue_first_written();
        let mut out = BytesMut::new();
        p.answer(b"$1\r\n1\r\n", &mut out);
        assert!(out.is_empty(), "the GET's reply must wait for the SET's");
        assert_eq!(p.flush(&mut out), After::Continue);
        assert!(out.is_empty());
        batch.clear();
        assert_eq!(p.write_queued(&mut batch, |_| true), 1);
        assert!(batch.starts_with(b"*3\r\n$3\r\nSET"));
        p.answer(b"+OK\r\n", &mut out);
        p.flush(&mut out);
        assert_eq!(&out[..], b"+OK\r\n$1\r\n1\r\n");
        assert!(p.is_empty());
    }

    #[test]
    fn answered_replies_carry_their_read_time() {
        let mut p = Pipeline::default();
        let (t0, t1) = (
            Instant::now(),
            Instant::now() + std::time::Duration::from_millis(1),
        );
        p.arrived(t0);
        p.push(req(&["GET", "a"]));
        p.push(req(&["GET", "b"]));
        p.arrived(t1);
        p.push(req(&["GET", "c"]));
        let mut batch = BytesMut::new();
        p.write_queued(&mut batch, |_| true);
        let mut out = BytesMut::new();
        p.answer(b"+1\r\n", &mut out);
        p.answer(b"+2\r\n", &mut out);
        p.answer(b"+3\r\n", &mut out);
        let mut seen = vec![];
        p.take_answered(|t, n| seen.push((t, n)));
        assert_eq!(seen, vec![(t0, 2), (t1, 1)]);
        p.take_answered(|_, _| panic!("taken once"));
    }

    #[test]
    fn a_lost_link_replays_reads_and_fails_writes() {
        let mut p = Pipeline::default();
        p.push(req(&["INCR", "c"]));
        p.push(req(&["GET", "c"]));
        p.push(req(&["INCR", "d"]));
        let mut batch = BytesMut::new();
        // Only the first two were written.
        let mut k = 0;
        p.write_queued(&mut batch, |_| {
            k += 1;
            k <= 2
        });
        let r = p.lose_written(&lost());
        assert_eq!(r.replayed, 1);
        assert!(matches!(r.failed[..], [ClientError::UnknownOutcome { .. }]));
        // INCR c answered with the error, GET and INCR d queued again.
        assert_eq!((p.queued(), p.written()), (2, 0));
        let mut out = BytesMut::new();
        p.flush(&mut out);
        assert!(out.starts_with(b"-ERR redis-ha: unknown outcome"));
        batch.clear();
        assert_eq!(p.write_queued(&mut batch, |_| true), 2);
    }

    #[test]
    fn a_read_lost_twice_is_failed() {
        let mut p = Pipeline::default();
        p.push(req(&["GET", "k"]));
        let mut batch = BytesMut::new();
        p.write_queued(&mut batch, |_| true);
        assert_eq!(p.lose_written(&lost()).replayed, 1);
        p.write_queued(&mut batch, |_| true);
        let r = p.lose_written(&lost());
        assert!(matches!(r.failed[..], [ClientError::Poison { .. }]));
    }

    #[test]
    fn a_local_close_stops_the_flush() {
        let mut p = Pipeline::default();
        let q = Command::from_args(&["QUIT"]);
        let class = classify(&q);
        p.push_local(
            q.clone(),
            class,
            Bytes::from_static(b"+OK\r\n"),
            After::Close,
        );
        p.push_local(q, class, Bytes::from_static(b"+X\r\n"), After::Continue);
        let mut out = BytesMut::new();
        assert_eq!(p.flush(&mut out), After::Close);
        assert_eq!(&out[..], b"+OK\r\n");
    }
}
