//! The session's part in the proxy's drain ([`crate::data::drain`]): stop
//! reading, answer what was read but not forwarded with "not run", let
//! every forwarded request get its reply, and close at a request boundary.
//! A subscriber or MONITOR closes at once (nothing it sent is pending); a
//! blocked command (BLPOP...) is ended by closing the backend's write side,
//! so Redis either answers it first or drops it without running it.

use super::*;

/// What a session does when the drain reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DrainStep {
    /// QUIT or a close is under way: nothing to change.
    AlreadyClosing,
    /// A subscriber or MONITOR: nothing it sent is pending; close now.
    CloseNow,
    /// Stop reading; answer what was forwarded, then close. `end_blocked`:
    /// a blocked command is ended by closing the backend's write side.
    Finish { end_blocked: bool },
}

/// The drain's step for a session in `input`, with `replies` and whether a
/// blocking command is written and unanswered.
pub(super) fn drain_step(input: Input, replies: Replies, blocked: bool) -> DrainStep {
    match (input, replies) {
        (Input::Quit | Input::Closing | Input::Draining { .. }, _) => DrainStep::AlreadyClosing,
        (_, Replies::Streamed) => DrainStep::CloseNow,
        (Input::Open | Input::Eof, Replies::Paired) => DrainStep::Finish {
            end_blocked: blocked,
        },
    }
}

impl Session {
    /// The drain started: nothing more is read from the client.
    pub(super) fn on_drain(&mut self, until: Instant) {
        let step = drain_step(
            self.input,
            self.state.replies,
            self.pipeline.blocking_written(),
        );
        let end_blocked = match step {
            DrainStep::AlreadyClosing => return,
            DrainStep::CloseNow => {
                self.input = Input::Closing;
                return;
            }
            DrainStep::Finish { end_blocked } => end_blocked,
        };
        let not_run = ClientError::ShuttingDown;
        if self.upload.is_none() {
            self.refuse_unread();
        }
        let n = self.pipeline.fail_queued(&not_run);
        if n > 0 {
            self.shared
                .metrics
                .ep(self.endpoint)
                .error(not_run.kind())
                .inc_by(n);
        }
        if end_blocked {
            if let Some(b) = self.backend.as_mut() {
                b.phase = Phase::Closing;
            }
        }
        self.input = Input::Draining { until };
    }
    /// Complete requests already read, not yet accepted: answered, in
    /// order, not run (the rest of a big request being read goes first).
    pub(super) fn refuse_unread(&mut self) {
        while let Ok(Some(_)) = self.parser.next(&mut self.cbuf) {
            self.answer_local(ClientError::ShuttingDown, After::Continue);
        }
    }

    /// `--drain-timeout` passed with requests still unanswered: they get an
    /// unknown-outcome error (they were forwarded) and the session closes.
    pub(super) fn drain_timed_out(&mut self) {
        if self.relay.is_some() {
            return self.relay_cut("the proxy shut down (--drain-timeout) mid-reply");
        }
        let node = self.backend.as_ref().map(|b| b.addr.clone());
        let e = ClientError::UnknownOutcome {
            node: node.unwrap_or_else(|| "the backend".into()),
            why: "the proxy shut down (--drain-timeout) before the reply came".into(),
        };
        tracing::warn!("drain timeout: closing a client with unanswered requests");
        self.error_kind(e.kind());
        self.pipeline.fail_queued(&ClientError::ShuttingDown);
        self.pipeline.abandon(e.reply());
        self.input = Input::Quit;
    }

    /// A blocked command during the drain: closes the backend's write side
    /// (Redis then ends the blocked call; a reply already sent still
    /// arrives). Its close then ends the session ([`Session::backend_lost`]).
    pub(super) async fn half_close_backend(&mut self) {
        if let Some(b) = self.backend.as_mut() {
            if b.phase == Phase::Closing {
                b.shutdown_write().await;
                b.phase = Phase::HalfClosed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_drain_does_to_each_kind_of_session() {
        let until = Instant::now();
        let finish = |blocked| DrainStep::Finish {
            end_blocked: blocked,
        };
        assert_eq!(
            drain_step(Input::Open, Replies::Paired, false),
            finish(false)
        );
        assert_eq!(drain_step(Input::Open, Replies::Paired, true), finish(true));
        assert_eq!(
            drain_step(Input::Eof, Replies::Paired, false),
            finish(false)
        );
        assert_eq!(
            drain_step(Input::Open, Replies::Streamed, false),
            DrainStep::CloseNow
        );
        for busy in [Input::Quit, Input::Closing, Input::Draining { until }] {
            assert_eq!(
                drain_step(busy, Replies::Paired, true),
                DrainStep::AlreadyClosing
            );
        }
    }
}
