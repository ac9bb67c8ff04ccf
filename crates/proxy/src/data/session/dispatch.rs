//! Sending: which link the queued requests take (shared or dedicated,
//! draining or open), where they go (the master, a replica), the hold when
//! there is nowhere, connecting, and writing them in one batch.

use super::pipeline::Upstream;
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
        // The table, not a copy of its address: no allocation per batch.
        let routes = self.routes.clone();
        let target = match self.target(&routes) {
            Ok(Some(t)) => t,
            Ok(None) => return self.wait_for_backend(),
            Err(e) => {
                self.error_kind(e.kind());
                self.pipeline.fail_queued(&e);
                return;
            }
        };
        if self.connect(target).await {
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
            && self.state.shareable(self.shared.cfg.login.as_ref())
            && since.is_none_or(|t| t.elapsed() >= REJOIN)
    }

    /// Where requests should go now: `None` to wait (no master, or the
    /// master refused with READONLY and the table has not caught up).
    pub(super) fn target<'r>(&self, routes: &'r Routes) -> Result<Option<&'r Addr>, ClientError> {
        let current = self.backend.as_ref().map(|b| &b.addr);
        let to_master = self
            .pipeline
            .next_queued()
            .is_some_and(|s| self.publish_on_read(s));
        let policy = match to_master {
            true => &self.shared.write,
            false => self.shared.policy(self.endpoint),
        };
        let avoid = self.avoid.as_ref().map(|a| (a, Instant::now()));
        policy.target(routes, current, avoid)
    }

    /// A PUBLISH on the read endpoint goes to the master: a message
    /// published on a replica reaches that replica's subscribers only, one
    /// published on the master reaches every node's. (A subscribed RESP3
    /// client stays where its subscriptions are.)
    pub(super) fn publish_on_read(&self, s: &Slot) -> bool {
        self.endpoint == Endpoint::read && self.state.replies == Replies::Paired && is_publish(s)
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
                let access = cfg.redis_access();
                Backend::dedicated(target, epoch, &self.state, &access, cfg.connect_timeout).await
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
        let acks = self.ack_rule();
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        let on_shared = b.is_shared();
        let cfg = &self.shared.cfg;
        // On the read endpoint a batch is all PUBLISHes (to the master) or
        // none (to a replica).
        let split = (self.endpoint == Endpoint::read && self.state.replies == Replies::Paired)
            .then(|| {
                let first = self.pipeline.next_queued();
                first.is_some_and(is_publish)
            });
        let mut taker = Taker {
            split,
            split_stopped: false,
            acks,
            state: &mut self.state,
            lane: &mut self.lane,
            on_shared,
            // A RESET logs a dedicated connection out on Redis; with
            // --client-auth none the client expects to stay logged in.
            reset_logs_out: cfg.login.is_some() && !cfg.client_auth && !on_shared,
            stop: false,
        };
        let pipeline = &mut self.pipeline;
        // Straight into the shared connection's buffer.
        let shared = b.sender(&self.inbox, self.gen).map(|mut tx| {
            tx.push_with(|buf| pipeline.write_queued(buf, |s| taker.take(s)));
            if taker.acks.awaited > 0 {
                tx.await_ack();
            }
        });
        let sent = match shared {
            Some(()) => Ok(()),
            None if on_shared => Err(SendError::Closed),
            None => {
                let mut batch = std::mem::take(&mut self.batch);
                pipeline.write_queued(&mut batch, |s| taker.take(s));
                if let (true, Some(a)) = (taker.acks.awaited > 0, &cfg.write_ack) {
                    match self.upload.as_mut() {
                        // Its WAIT follows the rest of the big request.
                        Some(u) if pipeline.upstream() == Upstream::Forward => u.gate = true,
                        _ => pipeline.push_gate(a.wait(), &mut batch),
                    }
                }
                let sent = b.write(&batch).await;
                batch.clear();
                if batch.capacity() <= crate::data::mux::SHRINK_ABOVE {
                    self.batch = batch; // a big request's room is not kept
                }
                sent
            }
        };
        if taker.stop {
            b.phase = Phase::ReplaceWhenIdle;
        }
        if taker.acks.stopped || taker.split_stopped {
            self.retry_at = Some(Instant::now()); // the rest goes in the next batch
        }
        match sent {
            Ok(()) => {
                if self.state.replies == Replies::Streamed {
                    // Replies now stream: nothing to pair them with.
                    self.pipeline.forget_written();
                }
            }
            Err(SendError::Closed) => self.retired_before_send(),
            Err(SendError::Failed(e)) => self.backend_lost(&e.to_string()),
        }
    }

    /// Which of the next batch's requests wait for the replicas.
    fn ack_rule(&self) -> AckRule {
        let on = self.endpoint == Endpoint::write && self.shared.cfg.write_ack.is_some();
        AckRule {
            on,
            in_tx: matches!(self.state.tx, state::Tx::Multi { .. }),
            awaited: 0,
            stopped: false,
        }
    }

    /// The shared connection was retired (a switch) before this batch went
    /// out: nothing was taken from the queue; the link drains.
    pub(super) fn retired_before_send(&mut self) {
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

/// PUBLISH or SPUBLISH: for the master, even on the read endpoint.
fn is_publish(s: &Slot) -> bool {
    s.cmd.is("PUBLISH") || s.cmd.is("SPUBLISH")
}

/// What one batch takes from the queue, in order: what the link can carry
/// (a shared one only shareable commands) and [`AckRule`] lets through.
struct Taker<'a> {
    /// Read endpoint: whether this batch is the PUBLISHes (to the master).
    split: Option<bool>,
    /// A request for the other node ended the batch.
    split_stopped: bool,
    acks: AckRule,
    state: &'a mut ConnState,
    lane: &'a mut Lane,
    on_shared: bool,
    reset_logs_out: bool,
    /// A RESET that logs the link out went: it ends the batch.
    stop: bool,
}

impl Taker<'_> {
    fn take(&mut self, s: &Slot) -> Take {
        if self.stop || (self.on_shared && !s.class.shared) {
            return Take::Stop;
        }
        if let Some(publish) = self.split {
            if publish != is_publish(s) {
                self.split_stopped = true;
                return Take::Stop;
            }
        }
        let take = self.acks.take(s);
        if take == Take::Stop {
            return take;
        }
        self.state.on_sent(s.class.kind);
        if !s.class.shared {
            if let Lane::Dedicated { since } = self.lane {
                *since = Some(Instant::now());
            }
        }
        self.stop = s.class.kind == Kind::Reset && self.reset_logs_out;
        take
    }
}

/// `--write-ack` for one batch: a write outside a transaction, or an EXEC,
/// waits for the replicas; the WAIT closing the batch must not land inside
/// a MULTI, so a MULTI after such a write starts the next batch.
pub(super) struct AckRule {
    on: bool,
    in_tx: bool,
    pub awaited: usize,
    pub stopped: bool,
}

impl AckRule {
    pub fn take(&mut self, s: &Slot) -> Take {
        if !self.on {
            return Take::Send;
        }
        let awaited = match s.class.kind {
            Kind::Multi if self.awaited > 0 => {
                self.stopped = true;
                return Take::Stop;
            }
            Kind::Multi => {
                self.in_tx = true;
                false
            }
            Kind::EndMulti => {
                self.in_tx = false;
                s.cmd.is("EXEC")
            }
            _ => !self.in_tx && s.class.effect == Effect::Write,
        };
        if awaited {
            self.awaited += 1;
            Take::SendAwaited
        } else {
            Take::Send
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::classify;

    fn rule(in_tx: bool) -> AckRule {
        AckRule {
            on: true,
            in_tx,
            awaited: 0,
            stopped: false,
        }
    }

    fn take(r: &mut AckRule, args: &[&str]) -> Take {
        let c = Command::from_args(args);
        let class = classify(&c);
        r.take(&Slot::remote(c, class))
    }

    #[test]
    fn writes_wait_for_the_replicas_reads_do_not() {
        let mut r = rule(false);
        assert_eq!(take(&mut r, &["INCR", "c"]), Take::SendAwaited);
        assert_eq!(take(&mut r, &["GET", "c"]), Take::Send);
        assert_eq!(take(&mut r, &["PING"]), Take::Send);
        assert_eq!(take(&mut r, &["EVAL", "return 1", "0"]), Take::SendAwaited);
        assert_eq!(r.awaited, 2);
        let mut off = AckRule {
            on: false,
            ..rule(false)
        };
        assert_eq!(take(&mut off, &["INCR", "c"]), Take::Send);
    }

    #[test]
    fn a_transaction_waits_once_at_exec() {
        let mut r = rule(false);
        assert_eq!(take(&mut r, &["MULTI"]), Take::Send);
        assert_eq!(
            take(&mut r, &["INCR", "c"]),
            Take::Send,
            "+QUEUED is not the outcome"
        );
        assert_eq!(take(&mut r, &["EXEC"]), Take::SendAwaited);
        let mut r = rule(true); // MULTI went in an earlier batch
        assert_eq!(take(&mut r, &["RPUSH", "l", "x"]), Take::Send);
        assert_eq!(take(&mut r, &["DISCARD"]), Take::Send);
    }

    #[test]
    fn a_multi_after_an_awaited_write_starts_the_next_batch() {
        // Else the batch's WAIT would be queued inside the transaction.
        let mut r = rule(false);
        assert_eq!(take(&mut r, &["SET", "a", "1"]), Take::SendAwaited);
        assert_eq!(take(&mut r, &["MULTI"]), Take::Stop);
        assert!(r.stopped);
    }
}
