//! Shutting down without failing clients: the proxy-wide drain state every
//! session and the readiness probe watch, and the verdict on how it ended.
//!
//! The order (driven by [`crate::server::ProxyHandle::drain`]): `Ready` ->
//! `Grace` (`/readyz` says not ready, the listeners still accept, sessions
//! serve as usual, so that a load balancer can stop sending clients) ->
//! `Draining` (the listeners are closed; each session stops reading,
//! answers what it forwarded and closes at a request boundary, by the
//! deadline at the latest).

use std::time::Instant;
use tokio::sync::{watch, Notify};

/// Where the proxy is in its shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainState {
    Ready,
    /// Not ready, still serving and accepting.
    Grace,
    /// Sessions finish what they forwarded and close by `until`.
    Draining {
        until: Instant,
    },
}

/// The proxy's drain state, shared by the sessions, the admin endpoint
/// and whoever shuts the proxy down.
#[derive(Debug)]
pub struct Drain {
    state: watch::Sender<DrainState>,
    /// A drain asked for over the admin endpoint (`POST /drain`).
    requested: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            state: watch::Sender::new(DrainState::Ready),
            requested: Notify::new(),
        }
    }
}

impl Drain {
    pub fn state(&self) -> DrainState {
        *self.state.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<DrainState> {
        self.state.subscribe()
    }

    /// Moves forward only (a second SIGTERM does not restart the grace).
    pub fn set(&self, next: DrainState) {
        self.state.send_if_modified(|s| {
            let forward = rank(next) > rank(*s);
            if forward {
                *s = next;
            }
            forward
        });
    }

    /// Asks whoever owns the proxy to drain it (the admin endpoint).
    pub fn request(&self) {
        self.requested.notify_one();
    }

    /// Resolves once a drain is asked for with [`Drain::request`].
    pub async fn requested(&self) {
        self.requested.notified().await
    }
}

fn rank(s: DrainState) -> u8 {
    match s {
        DrainState::Ready => 0,
        DrainState::Grace => 1,
        DrainState::Draining { .. } => 2,
    }
}

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every session closed at a request boundary.
    Finished,
    /// `sessions` were still open at the deadline and were cut.
    TimedOut { sessions: usize },
}

impl Drained {
    /// From the sessions left at the deadline.
    pub fn from_left(sessions: usize) -> Drained {
        match sessions {
            0 => Drained::Finished,
            n => Drained::TimedOut { sessions: n },
        }
    }

    /// The process's exit code: 0 when nothing was cut, else 3 (1 and 2
    /// are taken by errors and usage).
    pub fn exit_code(self) -> u8 {
        match self {
            Drained::Finished => 0,
            Drained::TimedOut { .. } => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_state_only_moves_forward() {
        let d = Drain::default();
        let until = Instant::now() + Duration::from_secs(1);
        d.set(DrainState::Grace);
        assert_eq!(d.state(), DrainState::Grace);
        d.set(DrainState::Draining { until });
        d.set(DrainState::Grace);
        d.set(DrainState::Draining {
            until: until + Duration::from_secs(5),
        });
        assert_eq!(d.state(), DrainState::Draining { until });
    }

    #[test]
    fn the_exit_code_says_whether_it_finished() {
        assert_eq!(Drained::from_left(0), Drained::Finished);
        assert_eq!(Drained::from_left(0).exit_code(), 0);
        assert_eq!(Drained::from_left(2), Drained::TimedOut { sessions: 2 });
        assert_ne!(Drained::from_left(2).exit_code(), 0);
    }
}
