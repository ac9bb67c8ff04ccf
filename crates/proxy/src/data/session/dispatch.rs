//! Sending: which link the queued requests take (shared or dedicated,
//! draining or open), where they go (the master, a replica), the hold when
//! there is nowhere, connecting, and writing them in one batch.

use super::*;

impl Session {
    /// Sends queued requests if a backend is usable; otherwise holds them.
    pub(super) async fn dispatch(&mut self) {
        self.retry_at = None;
        if self.pipeline.queued() == 0 {
            self.hold = Hold::Off;
            return;
        }
        if !self.link_ready() {
            return;
        }
        self.sync_routes();
        let target = match self.target() {
            Ok(Some(t)) => t,
            Ok(None) => return self.wait_for_backend(),
            Err(e) => {
                self.error_kind(e.kind());
                self.pipeline.fail_queued(&e);
                return;
            }
        };
        if self.connect(&target).await {
            let held = matches!(self.hold, Hold::Since(_)); // no clock read per batch
            if let Some(waited) = held.then(|| self.hold.end(Instant::now())).flatten() {
                self.shared
                    .metrics
                    .hold_seconds
                    .observe(waited.as_secs_f64());
            }
            self.send().await;
        }
    }

    /// Settles which link the next requests take: leaves the shared lane
    /// for a stateful command (once every earlier reply is in), returns to
    /// it when nothing would be missed, and lets a draining link finish.
    /// False while written requests must be answered first.
    pub(super) fn link_ready(&mut self) -> bool {
        let written = self.pipeline.written() > 0;
        if let Some(b) = &self.backend {
            if b.phase != Phase::Open {
                if written {
                    return false;
                }
                self.drop_backend();
            }
        }
        let next_shared = self.pipeline.next_queued().is_some_and(|s| s.class.shared);
        match self.lane {
            Lane::Shared if !next_shared => {
                if written {
                    return false;
                }
                tracing::debug!("session leaves the shared connection for a dedicated one");
                self.drop_backend();
                self.lane = Lane::Dedicated { since: None };
            }
            Lane::Dedicated { since } if self.may_share_again(since, next_shared) => {
                tracing::debug!("session returns from its dedicated connection to the shared ones");
                self.drop_backend();
                self.lane = Lane::Shared;
            }
            _ => {}
        }
        true
    }

    pub(super) fn may_share_again(&self, since: Option<Instant>, next_shared: bool) -> bool {
        self.shared.cfg.mode == ConnMode::Multiplex
            && next_shared
            && self.pipeline.written() == 0
            && self.state.shareable(self.shared.cfg.password.as_deref())
            && since.is_none_or(|t| t.elapsed() >= REJOIN)
    }

    /// Where requests should go now: `None` to wait (no master, or the
    /// master refused with READONLY and the table has not caught up).
    pub(super) fn target(&self) -> Result<Option<Addr>, ClientError> {
        let current = self.backend.as_ref().map(|b| &b.addr);
        let policy = self.shared.policy(self.endpoint);
        let avoid = self.avoid.as_ref().map(|a| (a, Instant::now()));
        policy.target(&self.routes, current, avoid)
    }

    /// No backend now: hold, or give up after `--failover-hold`. Admin
    /// commands are never held: they act on the node that is there now.
    pub(super) fn wait_for_backend(&mut self) {
        let not_held = ClientError::HoldTimeout {
            why: "no master right now, and admin commands are not held for a failover".into(),
        };
        let n = self
            .pipeline
            .fail_queued_where(&not_held, |s| s.class.effect == Effect::Admin);
        if n > 0 {
            self.error_kind(ErrorKind::HoldTimeout);
        }
        let limit = self.shared.cfg.failover_hold;
        match self.hold.wait(Instant::now(), limit) {
            (Next::RetryAt(t), started) => {
                if started {
                    let held = self.pipeline.queued() as u64;
                    self.shared.metrics.ep(self.endpoint).held.inc_by(held);
                }
                self.retry_at = Some(t);
            }
            (Next::GiveUp, _) => {
                let why = self.routes.closed.clone().unwrap_or_else(|| {
                    format!("no master available after waiting {limit:?} (failover in progress?)")
                });
                let e = ClientError::HoldTimeout { why };
                self.error_kind(e.kind());
                self.pipeline.fail_queued(&e);
            }
        }
    }

    /// Makes sure the link goes to `target`; false while it cannot (written
    /// requests on another node still due, or the connect failed: held).
    pub(super) async fn connect(&mut self, target: &Addr) -> bool {
        if let Some(b) = &self.backend {
            if &b.addr == target {
                return true;
            }
            if self.pipeline.written() > 0 {
                return false;
            }
            self.drop_backend();
        }
        let epoch = self.routes.epoch;
        let cfg = &self.shared.cfg;
        let opened = match self.lane {
            Lane::Shared => self
                .shared
                .pool
                .get(target, self.state.proto())
                .await
                .map(|c| Backend::shared(c, epoch)),
            Lane::Dedicated { .. } => {
                let pw = cfg.password.as_deref();
                Backend::dedicated(target, epoch, &self.state, pw, cfg.connect_timeout).await
            }
        };
        match opened {
            Ok(b) => {
                self.adopt(b);
                true
            }
            Err(e) => {
                tracing::debug!(backend = %target, error = %e, "backend connect failed");
                self.shared
                    .routes
                    .refresh(Refresh::BackendDown(target.clone()));
                self.wait_for_backend();
                false
            }
        }
    }

    pub(super) fn adopt(&mut self, b: Backend) {
        self.shared.policy(self.endpoint).bind(&b.addr);
        if !b.is_shared() {
            let m = self.shared.metrics.ep(self.endpoint);
            m.backend_connections.inc();
        }
        self.backend = Some(b);
    }

    /// Writes the queued requests the link can carry, in one batch.
    pub(super) async fn send(&mut self) {
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        let on_shared = b.is_shared();
        let cfg = &self.shared.cfg;
        // A RESET logs a dedicated connection out on Redis; with
        // --client-auth none the client expects to stay logged in.
        let reset_logs_out = cfg.password.is_some() && !cfg.client_auth && !on_shared;
        let mut batch = std::mem::take(&mut self.batch);
        let (state, lane) = (&mut self.state, &mut self.lane);
        let mut stop = false;
        let n = self.pipeline.write_queued(&mut batch, |s| {
            if stop || (on_shared && !s.class.shared) {
                return false;
            }
            state.on_sent(s.class.kind);
            if !s.class.shared {
                if let Lane::Dedicated { since } = lane {
                    *since = Some(Instant::now());
                }
            }
            stop = s.class.kind == Kind::Reset && reset_logs_out;
            true
        });
        if stop {
            b.phase = Phase::ReplaceWhenIdle;
        }
        let sent = b.send(&batch, n, &self.inbox, self.gen).await;
        batch.clear();
        self.batch = batch;
        match sent {
            Ok(()) => {
                if self.state.replies == Replies::Streamed {
                    // Replies now stream: nothing to pair them with.
                    self.pipeline.forget_written();
                }
            }
            Err(SendError::Closed) => self.unsent_on_retired(n),
            Err(SendError::Failed(e)) => self.backend_lost(&e.to_string()),
        }
    }

    /// The shared connection was retired (a switch) before this batch went
    /// out: the batch goes back to the queue; the link drains.
    pub(super) fn unsent_on_retired(&mut self, n: usize) {
        for _ in 0..n {
            self.pipeline.requeue_last_written();
        }
        if let Some(b) = self.backend.as_mut() {
            b.phase = Phase::Draining {
                until: Instant::now() + DRAIN + Duration::from_millis(500),
            };
        }
        self.retry_at = Some(Instant::now());
    }

    pub(super) fn drop_backend(&mut self) {
        let Some(b) = self.backend.take() else {
            return;
        };
        // Replies still owed on a shared link are ignored from now on.
        self.gen += 1;
        self.shared.policy(self.endpoint).release(&b.addr);
        if !b.is_shared() {
            let m = self.shared.metrics.ep(self.endpoint);
            m.backend_connections.dec();
        }
    }
}
