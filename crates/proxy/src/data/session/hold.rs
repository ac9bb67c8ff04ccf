//! The failover hold: while there is no usable backend, queued requests
//! wait (retrying every [`RETRY`]) up to `--failover-hold`, then fail with
//! TRYAGAIN. A small state machine; time is passed in, so it is tested
//! without sleeping.

use std::time::{Duration, Instant};

/// How often a held session retries when nothing else wakes it.
pub const RETRY: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hold {
    #[default]
    Off,
    Since(Instant),
}

/// What a session with no usable backend does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait; look again at this instant.
    RetryAt(Instant),
    /// Waited long enough: fail the queued requests.
    GiveUp,
}

impl Hold {
    /// Starts holding (if not already) and decides. Returns true as the
    /// second value when the hold has just started (for the held metric).
    pub fn wait(&mut self, now: Instant, limit: Duration) -> (Next, bool) {
        let (since, started) = match *self {
            Hold::Off => (now, true),
            Hold::Since(s) => (s, false),
        };
        if now.duration_since(since) >= limit {
            *self = Hold::Off;
            return (Next::GiveUp, started);
        }
        *self = Hold::Since(since);
        (Next::RetryAt((now + RETRY).min(since + limit)), started)
    }

    /// A backend is usable again: how long the requests waited, if they did.
    pub fn end(&mut self, now: Instant) -> Option<Duration> {
        match std::mem::take(self) {
            Hold::Off => None,
            Hold::Since(s) => Some(now.duration_since(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_then_gives_up() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(1);
        let mut h = Hold::default();
        assert_eq!(h.wait(t0, limit), (Next::RetryAt(t0 + RETRY), true));
        let t1 = t0 + Duration::from_millis(980);
        assert_eq!(h.wait(t1, limit), (Next::RetryAt(t0 + limit), false));
        assert_eq!(h.wait(t0 + limit, limit).0, Next::GiveUp);
        assert_eq!(h, Hold::Off);
        h.wait(t0, limit);
        assert_eq!(h.end(t1), Some(Duration::from_millis(980)));
        assert_eq!(h.end(t1), None);
    }

    #[test]
    fn no_hold_fails_at_once() {
        let t0 = Instant::now();
        let mut h = Hold::default();
        assert_eq!(h.wait(t0, Duration::ZERO).0, Next::GiveUp);
    }
}
