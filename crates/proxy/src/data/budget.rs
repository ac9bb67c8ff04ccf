//! Reply memory budgets: how many bytes of replies the proxy holds for its
//! clients, per client and over all of them, and what a session does when
//! it holds too much ([`pressure`], a pure decision).
//!
//! A session counts what it holds for its client in bytes: replies not yet
//! written to the client (its output buffer, which the client drains by
//! reading) and replies kept for later (behind an unanswered request, or
//! waiting for `--write-ack`). Past [`CLIENT_BUDGET`] it pauses: it reads
//! no new requests from the client and, on a dedicated connection, nothing
//! more from Redis (TCP backpressure: Redis keeps the rest in its own
//! output buffer, under its own limits) until the client reads. A shared
//! connection cannot be paused for one client without stalling the others,
//! so there a client past `--client-output-limit` is cut, as Redis cuts a
//! client past its client-output-buffer-limit. Over all sessions, past
//! `--client-output-total`, every session holding more than [`FLOOR`]
//! pauses, and on a shared connection one holding more than its budget is
//! cut (as Redis's maxmemory-clients evicts the biggest clients).
//!
//! The total is kept cheaply: a session reports its bytes in [`GRAIN`]
//! steps, so one that holds little (every small-value client) never
//! touches the shared counter.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Reply bytes a client's session holds before it pauses.
pub const CLIENT_BUDGET: usize = 1 << 20;

/// Reply bytes a session may hold whatever the total: below this it is
/// never paused or cut for the others' sake.
pub const FLOOR: usize = 64 * 1024;

/// The step in which sessions report what they hold to the total (no
/// more than [`FLOOR`]: a session below the floor reports nothing).
const GRAIN: usize = FLOOR;

/// Whether the session's backend side can be paused for its client alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backside {
    /// A dedicated connection carrying one reply per request: stop reading it.
    Pausable,
    /// A shared connection, or a subscriber's stream: it cannot wait.
    Unpausable,
}

/// What a session does about the replies it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pressure {
    #[default]
    Under,
    /// Read no new requests; on a [`Backside::Pausable`] link, nothing
    /// more from the backend either, until the client reads.
    Pause,
    /// Close the client (`--client-output-limit`, or the total).
    Cut,
}

/// The limits a [`pressure`] decision weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// [`CLIENT_BUDGET`].
    pub client: usize,
    /// `--client-output-limit` (32 MiB at most for a subscriber).
    pub hard: usize,
    /// `--client-output-total`.
    pub total: usize,
}

/// What one session holds: `unread`, its output buffer (the client drains
/// it); `kept`, replies waiting behind earlier ones; `queued`, replies a
/// shared connection delivered that it has not taken yet (it takes none
/// while `unread` is past [`CLIENT_BUDGET`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub unread: usize,
    pub kept: usize,
    pub queued: usize,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.unread + self.kept + self.queued
    }
}

/// The decision. `total` is every session's bytes (read only when this one
/// holds more than [`FLOOR`]). A pausable link pauses on `unread` only:
/// kept replies wait for the backend's next ones, which a pause would stop.
pub fn pressure(held: Held, total: impl FnOnce() -> usize, side: Backside, l: &Limits) -> Pressure {
    let mine = held.bytes();
    if mine <= FLOOR {
        return Pressure::Under;
    }
    let crowded = total() > l.total;
    match side {
        Backside::Pausable if held.unread >= l.client || (crowded && held.unread > FLOOR) => {
            Pressure::Pause
        }
        Backside::Pausable => Pressure::Under,
        Backside::Unpausable if mine > l.hard || (crowded && mine > l.client) => Pressure::Cut,
        Backside::Unpausable if mine >= l.client || crowded => Pressure::Pause,
        Backside::Unpausable => Pressure::Under,
    }
}

/// Reply bytes held over all sessions, in [`GRAIN`] steps.
#[derive(Debug, Default)]
pub struct Total(AtomicUsize);

impl Total {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One session's share of the [`Total`]: what it last reported.
#[derive(Debug, Default)]
pub struct Share {
    reported: usize,
}

impl Share {
    /// Nothing reported (what a small-value session keeps).
    pub fn is_empty(&self) -> bool {
        self.reported == 0
    }

    /// Reports `bytes` (rounded down to a [`GRAIN`]) if that changed its
    /// share; returns the new share then.
    #[inline]
    pub fn report(&mut self, bytes: usize, total: &Total) -> Option<usize> {
        let now = bytes / GRAIN * GRAIN;
        if now == self.reported {
            return None;
        }
        if now > self.reported {
            total.0.fetch_add(now - self.reported, Ordering::Relaxed);
        } else {
            total.0.fetch_sub(self.reported - now, Ordering::Relaxed);
        }
        self.reported = now;
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        client: CLIENT_BUDGET,
        hard: 32 << 20,
        total: 128 << 20,
    };

    fn held(unread: usize, kept: usize) -> Held {
        Held {
            unread,
            kept,
            queued: 0,
        }
    }

    #[test]
    fn a_dedicated_link_pauses_on_unread_bytes_and_is_never_cut() {
        let quiet = || 0;
        let p = |h, t: usize| pressure(h, || t, Backside::Pausable, &L);
        assert_eq!(
            pressure(held(1000, 0), quiet, Backside::Pausable, &L),
            Pressure::Under
        );
        assert_eq!(p(held(CLIENT_BUDGET, 0), 0), Pressure::Pause);
        assert_eq!(p(held(1 << 30, 1 << 30), 0), Pressure::Pause, "never cut");
        // Kept replies wait for the backend: pausing it would never free them.
        assert_eq!(p(held(0, 1 << 30), 0), Pressure::Under);
        // Over the total, even a modest one pauses; a small one does not.
        assert_eq!(p(held(FLOOR + 1, 0), 1 << 30), Pressure::Pause);
        assert_eq!(p(held(FLOOR, 0), 1 << 30), Pressure::Under);
    }

    #[test]
    fn a_shared_link_stops_reading_then_cuts() {
        let p = |h, t: usize| pressure(h, || t, Backside::Unpausable, &L);
        assert_eq!(p(held(FLOOR, 0), 1 << 40), Pressure::Under);
        assert_eq!(p(held(CLIENT_BUDGET - 1, 0), 0), Pressure::Under);
        assert_eq!(p(held(0, CLIENT_BUDGET), 0), Pressure::Pause);
        assert_eq!(p(held(L.hard, 0), 0), Pressure::Pause);
        assert_eq!(p(held(L.hard, 1), 0), Pressure::Cut);
        let queued = Held {
            queued: L.hard + 1,
            ..held(0, 0)
        };
        assert_eq!(p(queued, 0), Pressure::Cut, "not taken counts too");
        // Over the total: past its own budget it is cut, below it waits.
        assert_eq!(p(held(CLIENT_BUDGET + 1, 0), L.total + 1), Pressure::Cut);
        assert_eq!(p(held(FLOOR + 1, 0), L.total + 1), Pressure::Pause);
    }

    #[test]
    fn the_total_is_read_only_past_the_floor() {
        let never = || -> usize { panic!("read the total") };
        assert_eq!(
            pressure(held(FLOOR, 0), never, Backside::Unpausable, &L),
            Pressure::Under
        );
    }

    #[test]
    fn shares_report_in_grains() {
        let t = Total::default();
        let (mut a, mut b) = (Share::default(), Share::default());
        a.report(GRAIN - 1, &t);
        assert_eq!(t.get(), 0, "below a grain: nothing reported");
        a.report(3 * GRAIN + 5, &t);
        b.report(GRAIN, &t);
        assert_eq!(t.get(), 4 * GRAIN);
        a.report(0, &t);
        assert_eq!(t.get(), GRAIN);
        b.report(0, &t);
        assert_eq!(t.get(), 0);
    }
}
