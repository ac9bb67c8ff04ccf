//! A client's requests in order, each in a slot that owns its outcome:
//! queued (never written to a backend), written (on the current link, reply
//! awaited) or done (a reply ready for the client: the backend's, kept until
//! every earlier slot is done, or the proxy's own). Replies leave strictly in
//! request order. No sockets here: the session's driver does the I/O.
//!
//! With `--write-ack`, a written write waits once more after its reply
//! (replied: held until WAIT says the replicas have it); on a dedicated
//! link the WAIT is a slot of its own (a gate, answered to nobody), on a
//! shared one the connection sends it and passes on the verdict.

use super::replay::{self, Loss};
use crate::data::commands::{reply_frames, Class, Kind};
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
    /// Its reply came; held until the replicas confirm it (`--write-ack`).
    Replied(Bytes),
    /// The reply, waiting for earlier slots.
    Done(Bytes, After),
}

/// A slot's part in `--write-ack`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    No,
    /// A write whose reply waits for the replicas' confirmation.
    Awaited,
    /// The WAIT the proxy added after a batch: its reply goes to nobody.
    Gate,
}

/// What [`Pipeline::write_queued`] does with the next queued request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    Stop,
    Send,
    /// Send it; its reply waits for the replicas (`--write-ack`).
    SendAwaited,
}

impl From<bool> for Take {
    fn from(send: bool) -> Take {
        if send {
            Take::Send
        } else {
            Take::Stop
        }
    }
}

/// A request streamed in pieces (a big value, [`crate::data::big`]): its
/// slot holds the command only up to the big argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// A whole request (the usual case).
    Whole,
    /// The rest is still being read and passed on.
    Sending,
    /// All of it was written.
    Sent,
}

/// Where the rest of a streamed request goes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// Its command has not gone out yet: read no further than a little ahead.
    Wait,
    /// Its command went out: write the rest to the same link.
    Forward,
    /// It was answered without running (refused, held too long, its link
    /// lost): the rest is read and dropped.
    Drop,
}

/// Whose reply came in.
#[derive(Debug)]
pub enum Answer {
    Client(Command, Class),
    /// The proxy's own WAIT: judge it, then [`Pipeline::confirm`].
    Gate,
    /// Nobody's (nothing written is due).
    Unmatched,
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
    pub ack: Ack,
    /// Frames its reply takes outside a transaction ([`reply_frames`]).
    frames: usize,
    /// The first frames of a reply that takes several, until the last.
    head: BytesMut,
    /// How many frames `head` holds.
    parts: usize,
    pub stream: Stream,
}

impl Slot {
    pub fn remote(cmd: Command, class: Class) -> Slot {
        Slot {
            frames: reply_frames(&cmd, &class),
            ..Slot::new(cmd, class, SlotState::Queued, Ack::No)
        }
    }

    fn new(cmd: Command, class: Class, state: SlotState, ack: Ack) -> Slot {
        Slot {
            cmd,
            class,
            state,
            losses: 0,
            at: None,
            ack,
            frames: 1,
            head: BytesMut::new(),
            parts: 0,
            stream: Stream::Whole,
        }
    }

    /// Back to the queue, to be written again: what came of its reply goes.
    fn requeue(&mut self) {
        self.state = SlotState::Queued;
        self.ack = Ack::No;
        self.head = BytesMut::new();
        self.parts = 0;
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
    /// Bytes of the replies the slots hold (done or replied, not yet moved
    /// out): part of what the session holds for its client.
    kept: usize,
}

/// The reply bytes a slot holds.
fn kept_by(state: &SlotState) -> usize {
    match state {
        SlotState::Replied(r) | SlotState::Done(r, _) => r.len(),
        SlotState::Queued | SlotState::Written => 0,
    }
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
        self.kept += kept_by(&slot.state);
        match slot.state {
            SlotState::Queued => self.queued += 1,
            SlotState::Written | SlotState::Replied(_) => self.written += 1,
            SlotState::Done(..) => {}
        }
        self.slots.push_back(slot);
    }

    /// A reply of the proxy's own, in order with the others.
    pub fn push_local(&mut self, cmd: Command, class: Class, reply: Bytes, after: After) {
        self.push(Slot::new(
            cmd,
            class,
            SlotState::Done(reply, after),
            Ack::No,
        ));
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
    pub fn write_queued<T: Into<Take>>(
        &mut self,
        batch: &mut BytesMut,
        mut take: impl FnMut(&Slot) -> T,
    ) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if !matches!(s.state, SlotState::Queued) {
                continue;
            }
            s.ack = match take(s).into() {
                Take::Stop => break,
                Take::Send => Ack::No,
                Take::SendAwaited => Ack::Awaited,
            };
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
    pub fn answer(&mut self, reply: &[u8], out: &mut BytesMut) -> Answer {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| matches!(s.state, SlotState::Written))
        else {
            return Answer::Unmatched;
        };
        // The last frame of a reply in several: the whole reply.
        let whole;
        let reply = match self.slots[i].parts {
            0 => reply,
            _ => {
                let s = &mut self.slots[i];
                s.parts = 0;
                let mut h = std::mem::take(&mut s.head);
                h.extend_from_slice(reply);
                whole = h;
                &whole[..]
            }
        };
        match self.slots[i].ack {
            Ack::Gate => {
                self.slots.remove(i);
                self.written -= 1;
                return Answer::Gate;
            }
            Ack::Awaited => {
                let s = &mut self.slots[i];
                s.state = SlotState::Replied(Bytes::copy_from_slice(reply));
                self.kept += reply.len();
                return Answer::Client(s.cmd.clone(), s.class);
            }
            Ack::No => {}
        }
        self.written -= 1;
        if i == 0 {
            let s = self.slots.pop_front().expect("found");
            self.note_answered(s.at);
            out.extend_from_slice(reply);
            return Answer::Client(s.cmd, s.class);
        }
        let s = &mut self.slots[i];
        s.state = SlotState::Done(Bytes::copy_from_slice(reply), After::Continue);
        self.kept += reply.len();
        Answer::Client(s.cmd.clone(), s.class)
    }

    /// Keeps `frame` as part of the first written request's reply when
    /// that takes several frames ((P|S)UNSUBSCRIBE, outside a transaction)
    /// and this is not the last; false when [`Pipeline::answer`] takes it.
    /// An error is a whole reply.
    pub fn gather(&mut self, frame: &[u8]) -> bool {
        let Some(s) = self
            .slots
            .iter_mut()
            .find(|s| matches!(s.state, SlotState::Written))
        else {
            return false;
        };
        if s.parts + 1 >= s.frames || frame.first() == Some(&b'-') {
            return false;
        }
        s.head.extend_from_slice(frame);
        s.parts += 1;
        true
    }

    /// After the written requests, a WAIT of the proxy's own (`raw`, its
    /// encoding, goes into `batch`): a dedicated link's gate.
    pub fn push_gate(&mut self, wait: Command, batch: &mut BytesMut) {
        batch.extend_from_slice(&wait.raw);
        let class = crate::data::commands::classify(&wait);
        self.slots
            .push_back(Slot::new(wait, class, SlotState::Written, Ack::Gate));
        self.written += 1;
    }

    /// The replicas' verdict on every replied write: `Ok` releases the
    /// replies; an error replaces each (but Redis's own errors: those
    /// writes did nothing). Returns how many got the error.
    pub fn confirm(&mut self, verdict: Result<(), ClientError>) -> u64 {
        let mut failed = 0;
        for s in self.slots.iter_mut() {
            let SlotState::Replied(reply) = &s.state else {
                continue;
            };
            let reply = match &verdict {
                Err(e) if !reply.starts_with(b"-") => {
                    failed += 1;
                    e.reply()
                }
                _ => reply.clone(),
            };
            self.kept = self.kept - kept_by(&s.state) + reply.len();
            s.state = SlotState::Done(reply, After::Continue);
            s.ack = Ack::No;
            self.written -= 1;
        }
        failed
    }

    /// The first written request certainly did not run (READONLY and the
    /// like): it goes back to the queue.
    /// Returns [`Ack::Gate`] when that was the proxy's WAIT (dropped: the
    /// caller confirms without it).
    pub fn requeue_first_written(&mut self) -> Option<Ack> {
        let i = self
            .slots
            .iter()
            .position(|s| matches!(s.state, SlotState::Written))?;
        self.written -= 1;
        if self.slots[i].ack == Ack::Gate {
            self.slots.remove(i);
            return Some(Ack::Gate);
        }
        self.slots[i].requeue();
        self.queued += 1;
        Some(Ack::No)
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
        // A streamed request cannot be sent again (its value is gone).
        let r = match s.stream {
            Stream::Whole => replay::after_loss(s.class.effect, s.losses, loss),
            Stream::Sending => Err(ClientError::Unsent {
                node: loss.node.clone(),
                why: loss.why.clone(),
            }),
            Stream::Sent => Err(ClientError::UnknownOutcome {
                node: loss.node.clone(),
                why: loss.why.clone(),
            }),
        };
        match &r {
            Ok(()) => {
                s.requeue();
                self.queued += 1;
            }
            Err(e) => {
                s.state = SlotState::Done(e.reply(), After::Continue);
                self.kept += kept_by(&s.state);
            }
        }
        Some(r)
    }

    /// The link carrying the written requests is gone: each is re-queued or
    /// failed (see [`Pipeline::lose_first_written`]).
    pub fn lose_written(&mut self, loss: &Loss) -> Resolved {
        let mut r = Resolved::default();
        // The proxy's WAITs go with the link; what they were to confirm ran
        // on the master and may not have reached a replica.
        let gates = self.slots.len();
        self.slots
            .retain(|s| !(s.ack == Ack::Gate && matches!(s.state, SlotState::Written)));
        self.written -= gates - self.slots.len();
        let unconfirmed = ClientError::NotReplicated {
            detail: format!(
                "the connection to {} was lost ({}) before the replicas confirmed it",
                loss.node, loss.why
            ),
        };
        for _ in 0..self.confirm(Err(unconfirmed.clone())) {
            r.failed.push(unconfirmed.clone());
        }
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
                self.kept += reply.len();
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
                self.kept += reply.len();
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
        self.recount();
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

    /// The first request's reply is ready ([`Pipeline::flush`] has work).
    pub fn reply_ready(&self) -> bool {
        matches!(
            self.slots.front(),
            Some(Slot {
                state: SlotState::Done(..),
                ..
            })
        )
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
            self.kept -= reply.len();
            let after = *after;
            let at = self.slots.pop_front().and_then(|s| s.at);
            self.note_answered(at);
            if after == After::Close {
                return After::Close;
            }
        }
    }

    /// Whether the first written request is whole (a streamed one cannot
    /// go back to the queue).
    pub fn first_written_whole(&self) -> bool {
        self.slots
            .iter()
            .find(|s| matches!(s.state, SlotState::Written))
            .is_none_or(|s| s.stream == Stream::Whole)
    }

    /// Where the rest of the streamed request (the last slot) goes.
    pub fn upstream(&self) -> Upstream {
        match self.slots.back() {
            Some(s) if s.stream == Stream::Sending => match s.state {
                SlotState::Queued => Upstream::Wait,
                SlotState::Written => Upstream::Forward,
                _ => Upstream::Drop,
            },
            _ => Upstream::Drop,
        }
    }

    /// The request just pushed streams its rest after it ([`Stream::Sending`]);
    /// it never goes over a shared connection.
    pub fn detach_last(&mut self) {
        if let Some(s) = self.slots.back_mut() {
            if matches!(s.state, SlotState::Queued) {
                s.stream = Stream::Sending;
                s.class.shared = false;
            }
        }
    }

    /// The streamed request was written in full.
    pub fn sent_whole(&mut self) {
        if let Some(s) = self.slots.back_mut() {
            if s.stream == Stream::Sending {
                s.stream = Stream::Sent;
            }
        }
    }

    /// Whether the reply now arriving may go to the client in pieces as it
    /// comes: it answers the first slot (nothing before it to wait for),
    /// a plain command's, in one frame, not held for `--write-ack`.
    pub fn relay_ok(&self) -> bool {
        matches!(
            self.slots.front(),
            Some(s) if matches!(s.state, SlotState::Written)
                && s.ack == Ack::No
                && s.frames == 1
                && s.class.kind == Kind::Normal
        )
    }

    /// The first slot's reply went to the client in pieces, all of it.
    pub fn relayed(&mut self) {
        if let Some(s) = self.slots.pop_front() {
            self.written -= 1;
            self.note_answered(s.at);
        }
    }

    /// Drops every slot without an answer (the connection closes: a reply
    /// went out cut short, nothing more may follow it).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.queued = 0;
        self.written = 0;
        self.kept = 0;
    }

    /// Bytes of the replies the slots hold, not yet moved out.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// [`Pipeline::kept`] counted afresh (after slots were dropped in bulk).
    fn recount(&mut self) {
        self.kept = self.slots.iter().map(|s| kept_by(&s.state)).sum();
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
        for s in self.slots.iter_mut() {
            if let SlotState::Replied(reply) = &s.state {
                s.state = SlotState::Done(reply.clone(), After::Continue);
            }
        }
        self.recount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::commands::classify;
    use crate::data::error::Ran;

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

    /// Found by the `session` fuzz target: Redis answers `UNSUBSCRIBE a b`
    /// without subscriptions with one frame per channel; taken as one reply
    /// each, the second went to the PING and the PING's never came.
    #[test]
    fn an_unsubscribe_reply_takes_a_frame_per_channel() {
        let mut p = Pipeline::default();
        p.push(req(&["UNSUBSCRIBE", "a", "b"]));
        p.push(req(&["PING"]));
        let mut batch = BytesMut::new();
        assert_eq!(p.write_queued(&mut batch, |_| true), 2);
        let (a, b) = (
            &b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"[..],
            &b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"[..],
        );
        let mut out = BytesMut::new();
        assert!(p.gather(a), "the first of two is kept");
        assert!(!p.gather(b), "the last is the answer's");
        assert!(matches!(p.answer(b, &mut out), Answer::Client(c, _) if c.is("UNSUBSCRIBE")));
        assert_eq!(&out[..], [a, b].concat());
        assert!(!p.gather(b"+PONG\r\n"));
        assert!(matches!(p.answer(b"+PONG\r\n", &mut out), Answer::Client(c, _) if c.is("PING")));
        assert!(p.is_empty());
        // With no channel, one frame; an error is the whole reply; a
        // requeued one forgets what came.
        p.push(req(&["UNSUBSCRIBE"]));
        p.push(req(&["PUNSUBSCRIBE", "x", "y"]));
        p.push(req(&["SUNSUBSCRIBE", "x", "y"]));
        batch.clear();
        assert_eq!(p.write_queued(&mut batch, |_| true), 3);
        assert!(!p.gather(b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"));
        p.answer(b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n", &mut out);
        assert!(!p.gather(b"-NOPERM no\r\n"));
        p.answer(b"-NOPERM no\r\n", &mut out);
        assert!(p.gather(b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\nx\r\n:0\r\n"));
        p.requeue_first_written();
        batch.clear();
        p.write_queued(&mut batch, |_| true);
        assert!(p.gather(b"+x\r\n"));
        p.answer(b"+y\r\n", &mut out);
        assert!(out.ends_with(b"-NOPERM no\r\n+x\r\n+y\r\n"), "{out:?}");
        assert!(p.is_empty());
    }

    #[test]
    fn kept_replies_are_counted_in_bytes() {
        let mut p = Pipeline::default();
        p.push(req(&["SET", "a", "1"]));
        p.push(req(&["GET", "a"]));
        let mut batch = BytesMut::new();
        assert_eq!(p.write_queued(&mut batch, |_| Take::SendAwaited), 2);
        let mut out = BytesMut::new();
        p.answer(b"+OK\r\n", &mut out);
        assert_eq!(p.kept(), 5, "held for --write-ack");
        p.requeue_first_written();
        p.push_reply(Bytes::from_static(b"-ERR x\r\n"), After::Continue);
        assert_eq!(p.kept(), 5 + 8);
        p.confirm(Ok(()));
        assert_eq!(p.kept(), 13);
        assert_eq!(p.flush(&mut out), After::Continue);
        assert_eq!((p.kept(), &out[..]), (8, &b"+OK\r\n"[..]));
        p.abandon(Bytes::from_static(b"-ERR y\r\n"));
        assert_eq!(p.kept(), 16);
        p.clear();
        assert_eq!(p.kept(), 0);
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
        assert!(!p.reply_ready(), "the SET comes first");
        assert_eq!(p.flush(&mut out), After::Continue);
        assert!(out.is_empty());
        batch.clear();
        assert_eq!(p.write_queued(&mut batch, |_| true), 1);
        assert!(batch.starts_with(b"*3\r\n$3\r\nSET"));
        p.answer(b"+OK\r\n", &mut out);
        assert!(p.reply_ready(), "now the GET's reply can go");
        p.flush(&mut out);
        assert!(!p.reply_ready());
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

    fn awaited(p: &mut Pipeline, args: &[&str]) {
        p.push(req(args));
    }

    fn write_all_awaited(p: &mut Pipeline) -> usize {
        let mut batch = BytesMut::new();
        p.write_queued(&mut batch, |s: &Slot| {
            if s.class.effect == crate::data::Effect::Write {
                Take::SendAwaited
            } else {
                Take::Send
            }
        })
    }

    fn not_replicated() -> ClientError {
        ClientError::NotReplicated {
            detail: "only 0 of 1 replicas confirmed it".into(),
        }
    }

    #[test]
    fn an_awaited_write_is_held_until_the_replicas_confirm() {
        let mut p = Pipeline::default();
        awaited(&mut p, &["INCR", "c"]);
        awaited(&mut p, &["GET", "c"]);
        assert_eq!(write_all_awaited(&mut p), 2);
        let mut out = BytesMut::new();
        assert!(matches!(p.answer(b":1\r\n", &mut out), Answer::Client(..)));
        assert!(matches!(
            p.answer(b"$1\r\n1\r\n", &mut out),
            Answer::Client(..)
        ));
        p.flush(&mut out);
        assert!(
            out.is_empty(),
            "the GET waits behind the INCR's confirmation"
        );
        assert_eq!(p.written(), 1, "the confirmation is still due on this link");
        assert_eq!(p.confirm(Ok(())), 0);
        p.flush(&mut out);
        assert_eq!(&out[..], b":1\r\n$1\r\n1\r\n");
        assert_eq!((p.written(), p.len()), (0, 0));
    }

    #[test]
    fn unconfirmed_writes_get_the_error_but_redis_errors_pass() {
        let mut p = Pipeline::default();
        awaited(&mut p, &["INCR", "c"]);
        awaited(&mut p, &["INCR", "notanumber"]);
        write_all_awaited(&mut p);
        let mut out = BytesMut::new();
        p.answer(b":1\r\n", &mut out);
        p.answer(b"-ERR value is not an integer\r\n", &mut out);
        assert_eq!(p.confirm(Err(not_replicated())), 1);
        p.flush(&mut out);
        let text = String::from_utf8_lossy(&out).to_string();
        assert!(
            text.starts_with("-NOREPLICAS redis-ha: the write ran on the master"),
            "{text}"
        );
        assert!(text.ends_with("-ERR value is not an integer\r\n"), "{text}");
    }

    #[test]
    fn a_dedicated_links_gate_is_answered_to_nobody() {
        let mut p = Pipeline::default();
        awaited(&mut p, &["SET", "k", "v"]);
        let mut batch = BytesMut::new();
        p.write_queued(&mut batch, |_| Take::SendAwaited);
        p.push_gate(Command::from_args(&["WAIT", "1", "100"]), &mut batch);
        assert!(batch.ends_with(b"$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n100\r\n"));
        assert_eq!(p.written(), 2);
        let mut out = BytesMut::new();
        assert!(matches!(p.answer(b"+OK\r\n", &mut out), Answer::Client(..)));
        assert!(matches!(p.answer(b":1\r\n", &mut out), Answer::Gate));
        p.confirm(Ok(()));
        p.flush(&mut out);
        assert_eq!(&out[..], b"+OK\r\n");
        assert!(p.is_empty());
        assert!(matches!(
            p.answer(b"+stray\r\n", &mut out),
            Answer::Unmatched
        ));
    }

    #[test]
    fn a_lost_link_fails_replied_writes_and_drops_the_gate() {
        let mut p = Pipeline::default();
        awaited(&mut p, &["SET", "a", "1"]);
        awaited(&mut p, &["GET", "a"]);
        let mut batch = BytesMut::new();
        p.write_queued(&mut batch, |s: &Slot| {
            if s.cmd.is("SET") {
                Take::SendAwaited
            } else {
                Take::Send
            }
        });
        p.push_gate(Command::from_args(&["WAIT", "1", "100"]), &mut batch);
        let mut out = BytesMut::new();
        p.answer(b"+OK\r\n", &mut out); // SET replied, GET and WAIT unanswered
        let r = p.lose_written(&lost());
        assert_eq!(r.replayed, 1, "the GET goes again");
        assert!(matches!(r.failed[..], [ClientError::NotReplicated { .. }]));
        assert_eq!((p.queued(), p.written(), p.len()), (1, 0, 2));
        p.flush(&mut out);
        assert!(out.starts_with(b"-NOREPLICAS redis-ha: the write ran on the master, but the connection to n:1 was lost"));
    }

    #[test]
    fn a_requeued_write_forgets_it_was_awaited() {
        let mut p = Pipeline::default();
        awaited(&mut p, &["SET", "a", "1"]);
        write_all_awaited(&mut p);
        assert_eq!(p.requeue_first_written(), Some(Ack::No));
        assert_eq!(p.next_queued().unwrap().ack, Ack::No);
        let mut batch = BytesMut::new();
        p.write_queued(&mut batch, |_| Take::Send);
        let mut out = BytesMut::new();
        p.answer(b"+OK\r\n", &mut out);
        assert_eq!(&out[..], b"+OK\r\n");
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

    #[test]
    fn a_streamed_request_is_never_sent_again() {
        // Lost while its value streams: it did not run, and says so.
        let mut p = Pipeline::default();
        p.push(req(&["GET", "k"]));
        p.push(req(&["SET", "big", "v"]));
        p.detach_last();
        assert_eq!(p.upstream(), Upstream::Wait);
        let mut batch = BytesMut::new();
        assert_eq!(p.write_queued(&mut batch, |_| true), 2);
        assert_eq!(p.upstream(), Upstream::Forward);
        assert!(p.first_written_whole(), "the GET is first");
        let r = p.lose_written(&lost());
        assert_eq!(r.replayed, 1, "the GET goes again");
        assert!(matches!(&r.failed[..], [e @ ClientError::Unsent { .. }] if e.ran() == Ran::No));
        assert_eq!(p.upstream(), Upstream::Drop, "the rest is dropped");
        // Lost after its last byte: it may have run.
        let mut p = Pipeline::default();
        p.push(req(&["SET", "big", "v"]));
        p.detach_last();
        p.write_queued(&mut batch, |_| true);
        assert!(!p.first_written_whole());
        p.sent_whole();
        let r = p.lose_written(&lost());
        assert!(matches!(
            &r.failed[..],
            [ClientError::UnknownOutcome { .. }]
        ));
    }

    #[test]
    fn a_big_reply_is_relayed_only_to_the_first_slot() {
        let mut p = Pipeline::default();
        p.push(req(&["GET", "a"]));
        p.push(req(&["GET", "b"]));
        let mut batch = BytesMut::new();
        p.write_queued(&mut batch, |_| true);
        assert!(p.relay_ok());
        p.relayed();
        assert_eq!((p.len(), p.written()), (1, 1));
        assert!(p.relay_ok());
        let mut q = Pipeline::default();
        q.push(req(&["SUBSCRIBE", "c"]));
        q.write_queued(&mut batch, |_| true);
        assert!(!q.relay_ok(), "not a plain command's reply");
    }
}
