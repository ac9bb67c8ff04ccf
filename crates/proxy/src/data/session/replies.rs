//! The backend side of a session: replies matched to requests, refusals
//! that mean "not run", lost links judged by the replay rule, and routing
//! changes that retire a link.

use super::*;

impl Session {
    pub(super) fn on_backend_data(&mut self) {
        loop {
            if self.relay.is_some() && !self.relay_dedicated() {
                return; // more of the big reply to come
            }
            let Some(Link::Dedicated(d)) = self.backend.as_mut().map(|b| &mut b.link) else {
                return;
            };
            let len = match frame_len(&d.buf) {
                Ok(Some(len)) => len,
                Ok(None) => {
                    if d.buf.is_empty() && d.buf.capacity() > super::super::mux::SHRINK_ABOVE {
                        d.buf = BytesMut::new(); // after a big reply
                    }
                    // A big bulk string on its way: passed on as it comes.
                    let big = d.buf.len() > 16 && d.buf[0] == b'$';
                    if big && self.relay_dedicated() {
                        continue;
                    }
                    return;
                }
                Err(e) => return self.backend_lost(&format!("protocol error from backend: {e}")),
            };
            let frame = d.buf.split_to(len);
            self.on_frame(&frame);
        }
    }

    /// Replies that arrived over the shared connection.
    pub(super) fn on_mux_replies(&mut self) {
        let mut replies = std::mem::take(&mut self.replies);
        self.inbox.take(&mut replies);
        let mut lost = false;
        for (gen, r) in replies.drain(..) {
            if let Reply::Part(data, _) = &r {
                self.inbox.taken(data.len());
            }
            if gen != self.gen {
                continue; // a link dropped since
            }
            if self.relay.is_some() && matches!(r, Reply::Lost | Reply::Unsent) {
                self.relay_cut("shared connection failed mid-reply");
                break;
            }
            match r {
                Reply::Frame(f) => self.on_frame(&f),
                Reply::Part(data, last) => self.on_part(data, last),
                Reply::Unsent => {
                    self.pipeline.requeue_first_written();
                }
                Reply::Ack(verdict) => self.confirm(verdict),
                Reply::Lost => {
                    lost = true;
                    let loss = self.loss("shared connection failed");
                    if let Some(Err(e)) = self.pipeline.lose_first_written(&loss) {
                        self.error_kind(e.kind());
                    }
                }
            }
            // Past the limit the client is cut (the serve loop does it): the
            // rest is not copied first.
            let held = self.out.len() + self.pipeline.kept();
            if held > budget::FLOOR && self.weigh_held() == Pressure::Cut {
                break;
            }
        }
        if replies.capacity() > 4096 {
            replies.shrink_to(64); // do not keep a huge pipeline's worth around
        }
        self.replies = replies;
        if lost
            || self
                .backend
                .as_ref()
                .is_some_and(|b| b.phase != Phase::Open)
        {
            self.after_shared_loss(lost);
        }
    }

    /// The shared link failed or was retired: once nothing written is due
    /// on it, take another (the next dispatch does).
    pub(super) fn after_shared_loss(&mut self, lost: bool) {
        if self.pipeline.written() > 0 {
            return;
        }
        if lost {
            if let Some(b) = &self.backend {
                self.shared.pool.suspect(&b.addr);
                self.shared
                    .routes
                    .refresh(Refresh::BackendDown(b.addr.clone()));
            }
            return self.cool_down();
        }
        self.drop_backend();
        self.retry_at = Some(Instant::now());
    }

    pub(super) fn loss(&self, why: &str) -> Loss {
        Loss {
            node: self
                .backend
                .as_ref()
                .map(|b| b.addr.clone())
                .unwrap_or_default(),
            why: why.to_string(),
        }
    }

    /// One reply from the backend.
    pub(super) fn on_frame(&mut self, frame: &[u8]) {
        let in_tx = matches!(self.state.tx, state::Tx::Multi { .. });
        // A push is out-of-band, but for a (P|S)UNSUBSCRIBE's confirmation
        // (RESP3) with no subscription: that is the command's reply.
        let aside = frame.first() == Some(&b'>') && (in_tx || !is_unsubscribe_push(frame));
        if self.state.replies == Replies::Streamed || aside {
            bufpool::held(&mut self.out).extend_from_slice(frame);
            return;
        }
        // (P|S)UNSUBSCRIBE is answered once per channel: one reply.
        if !in_tx && self.pipeline.gather(frame) {
            return;
        }
        if self.endpoint == Endpoint::write && !in_tx {
            match replay::judge(frame) {
                // A streamed request cannot be sent again: the refusal is its answer.
                Verdict::NotRun if self.pipeline.first_written_whole() && self.not_run(frame) => {
                    return
                }
                Verdict::NotRun => {} // refused for too long: the client gets it
                Verdict::Answer => self.refused = Hold::Off,
            }
        }
        let out = bufpool::held(&mut self.out);
        match self.pipeline.answer(frame, out) {
            Answer::Client(cmd, class) => {
                // RESET: Redis logs the connection out too.
                if self.state.on_reply(&cmd, &class, frame) && self.shared.cfg.clients_log_in() {
                    self.login = Signin::Required;
                }
            }
            Answer::Gate => {
                let verdict = self.shared.cfg.write_ack.map_or(Ok(()), |a| a.judge(frame));
                self.confirm(verdict);
            }
            // A reply nobody asked for: forward it rather than lose it.
            Answer::Unmatched => out.extend_from_slice(frame),
        }
    }

    /// `--write-ack`: the replicas' verdict on the writes replied so far.
    pub(super) fn confirm(&mut self, verdict: Result<(), ClientError>) {
        let kind = verdict.as_ref().err().map(ClientError::kind);
        let failed = self.pipeline.confirm(verdict);
        if let (Some(kind), true) = (kind, failed > 0) {
            self.shared
                .metrics
                .ep(self.endpoint)
                .error(kind)
                .inc_by(failed);
        }
    }

    /// The node refused to run the request (READONLY: it was demoted;
    /// LOADING; MASTERDOWN; NOREPLICAS): it goes again, to the next master,
    /// for up to `--failover-hold` of refusals; false once that is over
    /// (the refusal is then the client's answer).
    pub(super) fn not_run(&mut self, frame: &[u8]) -> bool {
        let now = Instant::now();
        let retry = match self.refused.wait(now, self.shared.cfg.failover_hold).0 {
            Next::RetryAt(t) => t,
            Next::GiveUp => return false,
        };
        if self.pipeline.requeue_first_written() == Some(Ack::Gate) {
            let why = String::from_utf8_lossy(frame).trim_end().to_string();
            let detail = format!("WAIT was refused ({why})");
            self.confirm(Err(ClientError::NotReplicated { detail }));
        }
        self.shared.metrics.ep(self.endpoint).retried.inc();
        self.retry_at = Some(retry);
        let Some(b) = self.backend.as_mut() else {
            return true;
        };
        if b.phase == Phase::Open {
            b.phase = Phase::ReplaceWhenIdle;
        }
        if frame.starts_with(b"-READONLY") {
            tracing::info!(backend = %b.addr, "READONLY from the master: sending to the new one");
            self.avoid = Some(Avoid::ReadOnly {
                addr: b.addr.clone(),
                epoch: b.epoch,
            });
            self.shared
                .routes
                .refresh(Refresh::ReadOnly(b.addr.clone()));
        }
        true
    }

    /// The backend link failed: written requests are re-queued or failed
    /// by the replay rule; state that cannot move ends the session.
    pub(super) fn backend_lost(&mut self, why: &str) {
        let Some(b) = &self.backend else { return };
        tracing::debug!(backend = %b.addr, why, "backend connection lost");
        self.shared
            .routes
            .refresh(Refresh::BackendDown(b.addr.clone()));
        if self.relay.is_some() {
            return self.relay_cut(why);
        }
        if b.phase == Phase::HalfClosed {
            self.input = Input::Closing; // the drain ended a blocked command
            return;
        }
        if self.input == Input::Quit && self.state.replies == Replies::Streamed {
            self.input = Input::Closing; // Redis answered the QUIT and closed
            return;
        }
        if let Some(during) = self.pinned() {
            return self.break_session(during);
        }
        let r = self.pipeline.lose_written(&self.loss(why));
        self.shared
            .metrics
            .ep(self.endpoint)
            .retried
            .inc_by(r.replayed);
        for e in &r.failed {
            self.error_kind(e.kind());
        }
        self.cool_down();
    }

    /// Drops the lost link; the same node is not tried again for [`COOLDOWN`].
    pub(super) fn cool_down(&mut self) {
        if let Some(b) = &self.backend {
            let until = Instant::now() + COOLDOWN;
            self.avoid = Some(Avoid::Lost {
                addr: b.addr.clone(),
                until,
            });
        }
        self.drop_backend();
        self.retry_at = Some(Instant::now());
    }

    /// Session state a new backend cannot take over.
    pub(super) fn pinned(&self) -> Option<&'static str> {
        self.state.pinned().or_else(|| {
            self.pipeline
                .blocking_written()
                .then_some("a blocking command")
        })
    }

    pub(super) fn break_session(&mut self, during: &'static str) {
        if self.relay.is_some() {
            return self.relay_cut(during);
        }
        let addr = self
            .backend
            .as_ref()
            .map(|b| b.addr.clone())
            .unwrap_or_default();
        tracing::info!(backend = %addr, "closing a client session pinned to the old backend ({during})");
        let e = ClientError::SessionBroken { during };
        self.error_kind(e.kind());
        self.drop_backend();
        self.pipeline.abandon(e.reply());
        self.input = Input::Quit;
    }

    /// Picks up a routing change noticed without an event.
    pub(super) fn sync_routes(&mut self) {
        if self.routes_rx.has_changed().unwrap_or(false) {
            self.routes = self.routes_rx.borrow_and_update().clone();
            self.on_routes();
        }
    }

    /// A new routing table: a link to a node that no longer serves this
    /// endpoint takes nothing new. With no master known at all, the link
    /// stays: the master may be busy, not gone, and Sentinel decides.
    pub(super) fn on_routes(&mut self) {
        let Some(b) = &self.backend else { return };
        if !self.routes.moved_from(self.endpoint, &b.addr) || b.phase != Phase::Open {
            return;
        }
        if let Some(during) = self.pinned() {
            return self.break_session(during);
        }
        if self.pipeline.written() == 0 {
            return self.drop_backend();
        }
        if let Some(b) = self.backend.as_mut() {
            b.phase = Phase::Draining {
                until: Instant::now() + DRAIN,
            };
        }
    }
}
