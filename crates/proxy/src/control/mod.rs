//! The control plane: watches Sentinel and the nodes, decides where traffic
//! goes, and publishes it as a [`Routes`] table. Events (pushed by every
//! sentinel) drive it; a ~1 s poll is only the fallback.
//!
//! Decisions, in order of precedence:
//! - A master is adopted only after its own `ROLE` says master, and only if a
//!   majority of the answering sentinels name it, or it carries a higher
//!   `config-epoch` than the majority's view. Sentinel obtains a new epoch
//!   only by winning a majority vote (or by a planned `SENTINEL FAILOVER`), so
//!   the failover leader's fresh view is majority-backed even before the other
//!   sentinels learn it from hello messages (up to ~2 s later).
//! - When a failover starts (`+selected-slave`...), writes are held
//!   (`master: None`) so nothing reaches a master that is about to be demoted,
//!   and the chosen replica's `ROLE` is polled every few ms: it is adopted the
//!   moment it accepts writes, long before `+switch-master` (sent at the end).
//! - A master that is slow or busy (`-BUSY`, no `ROLE` reply in time) is kept:
//!   whether it is gone is Sentinel's call (`s_down`/`o_down`), or a refused
//!   connection's. The same master back after a hold is no failover and no
//!   new epoch ([`decide`]).
//! - An unreachable master means hold, never guess; losing the sentinel
//!   majority for longer than `quorum_timeout` as well means fail closed.

mod decide;
mod events;
mod health;
mod probe;
mod state;

pub use state::{ControlState, FailoverRecord, ReplicaView, SentinelView, StatusSnapshot};

use crate::config::ProxyConfig;
use crate::metrics::{Metrics, ReplicaSample, SentinelSample};
use crate::route::{Endpoint, Refresh, RouteHandle, Routes};
use decide::{MasterChange, MasterDecision, SentinelVerdict};
use events::{Event, SentinelEvent};
use probe::RoleProbe;
use redis_ha_topology::Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A failover that produces no ending event stops guarding after this long.
const FAILOVER_GUARD: Duration = Duration::from_secs(60);
/// How often the first write after a failover is looked for (its precision).
const FIRST_WRITE_POLL: Duration = Duration::from_millis(2);

/// Starts the control plane on the current runtime; returns at once.
pub fn spawn(cfg: &ProxyConfig, metrics: Arc<Metrics>) -> (RouteHandle, Arc<ControlState>) {
    let (routes_tx, routes_rx) = watch::channel(Arc::new(Routes::default()));
    let (refresh_tx, refresh_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let state = Arc::new(ControlState::new(cfg));
    let c = Controller {
        cfg: cfg.clone(),
        metrics,
        state: state.clone(),
        routes_tx,
        event_tx: event_tx.clone(),
        sentinels: cfg.sentinels.clone(),
        subscribed: Vec::new(),
        routes: Routes::default(),
        last_master: None,
        majority_lost_since: None,
        watching_promotion: None,
        failover: None,
        replies_before_publish: 0,
    };
    state.set_task(tokio::spawn(c.run(event_rx, refresh_rx)));
    (
        RouteHandle {
            routes: routes_rx,
            refresh: refresh_tx,
        },
        state,
    )
}

/// What an event leaves to do. Ordered: of a burst, the most wanted wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Then {
    Done,
    /// Take a full look (sentinels, master, replicas) once the burst is in.
    Refresh,
}

struct Controller {
    cfg: ProxyConfig,
    metrics: Arc<Metrics>,
    state: Arc<ControlState>,
    routes_tx: watch::Sender<Arc<Routes>>,
    event_tx: mpsc::UnboundedSender<Event>,
    /// Configured plus discovered sentinels.
    sentinels: Vec<Addr>,
    subscribed: Vec<Addr>,
    routes: Routes,
    /// The last master writes were routed to (kept through holds).
    last_master: Option<Addr>,
    majority_lost_since: Option<Instant>,
    /// Replica whose promotion is being polled.
    watching_promotion: Option<Addr>,
    /// The failover in progress, for the history.
    failover: Option<FailoverRecord>,
    /// Replies written on the write endpoint when routes were last published.
    replies_before_publish: u64,
}

impl Controller {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut refresh: mpsc::UnboundedReceiver<Refresh>,
    ) {
        self.subscribe_new();
        self.refresh().await;
        let mut tick = tokio::time::interval(self.cfg.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(ev) = events.recv() => {
                    // Every event already queued is taken before one refresh:
                    // a refresh can take a probe timeout (a frozen master), and
                    // one per event would leave a promotion waiting behind
                    // the refreshes of the +sdown/+odown burst before it.
                    let mut then = self.on_event(ev).await;
                    while let Ok(ev) = events.try_recv() {
                        then = then.max(self.on_event(ev).await);
                    }
                    self.sync_failover();
                    if then == Then::Refresh {
                        self.refresh().await;
                    }
                }
                Some(r) = refresh.recv() => {
                    tracing::debug!(?r, "refresh requested by the data path");
                    // Coalesce a burst of requests (many sessions see the same drop).
                    while refresh.try_recv().is_ok() {}
                    self.refresh().await;
                }
                _ = tick.tick() => {
                    self.subscribe_new();
                    self.refresh().await;
                }
            }
        }
    }

    fn subscribe_new(&mut self) {
        for s in self.sentinels.clone() {
            if !self.subscribed.contains(&s) {
                self.subscribed.push(s.clone());
                let access = self.cfg.sentinel_access();
                tokio::spawn(events::subscribe(s, access, self.event_tx.clone()));
            }
        }
    }

    fn publish(&mut self, mut next: Routes) {
        // Before the new routes reach the data path: a reply counted after
        // this was routed by them (see `watch_first_write`).
        self.replies_before_publish = self.metrics.ep(Endpoint::write).latency.snapshot().count();
        next.epoch = self.routes.epoch;
        match decide::master_change(self.last_master.as_ref(), next.master.as_ref()) {
            MasterChange::None => {}
            MasterChange::First => next.epoch += 1,
            MasterChange::Switch => {
                next.epoch += 1;
                self.metrics.failovers_total.inc();
            }
        }
        if next.master.is_some() {
            self.last_master = next.master.clone();
        }
        self.metrics.master_known.set(next.master.is_some() as i64);
        self.metrics.set_master(next.master.as_deref());
        self.metrics
            .healthy_replicas
            .set(next.replicas.len() as i64);
        if next != self.routes {
            tracing::info!(master = ?next.master, replicas = ?next.replicas, epoch = next.epoch, closed = ?next.closed, "routes");
            self.routes = next.clone();
            self.state.set_routes(&next);
            let _ = self.routes_tx.send(Arc::new(next));
        }
    }

    async fn on_event(&mut self, ev: Event) -> Then {
        let name = &self.cfg.master_name;
        match ev {
            Event::Connected(s, up) => {
                self.state.set_sentinel_subscribed(&s, up);
                Then::Done
            }
            Event::Sentinel {
                channel,
                payload,
                from,
            } => {
                tracing::debug!(%from, %channel, %payload, "sentinel event");
                self.state.push_event(&channel, &payload);
                self.on_sentinel_event(events::parse_event(&channel, &payload, name))
                    .await
            }
            Event::PromotionGaveUp(addr) => {
                if self.watching_promotion.as_deref() != Some(addr.as_str()) {
                    return Then::Done;
                }
                self.watching_promotion = None;
                Then::Refresh
            }
            Event::FirstWrite { failover_at, ms } => {
                let first = match self.failover.as_mut() {
                    Some(f) if f.at_unix_ms == failover_at => {
                        let first = f.first_write_ms.is_none();
                        f.first_write_ms.get_or_insert(ms);
                        first
                    }
                    // Served after the failover ended (+switch-master first).
                    _ => self.state.set_first_write(failover_at, ms),
                };
                if first {
                    tracing::info!(step = "first_write", ms = ms.round(), "failover step");
                    // What clients lived through: fault seen to writes served again.
                    self.metrics.failover_seconds.observe(ms / 1000.0);
                }
                Then::Done
            }
            Event::Promoted(addr) => {
                if self.watching_promotion.as_deref() == Some(addr.as_str()) {
                    self.watching_promotion = None;
                }
                self.failover_step("promoted", |f| &mut f.promoted_ms);
                // The replica was chosen by the epoch leader and says master.
                self.try_adopt(&addr, true).await;
                Then::Done
            }
        }
    }

    async fn on_sentinel_event(&mut self, ev: SentinelEvent) -> Then {
        match ev {
            SentinelEvent::Promoting { step, replica } => {
                self.failover_started(&step);
                if step == "+promoted-slave" {
                    self.failover_step("promoted", |f| &mut f.promoted_ms);
                }
                // Hold writes: the old master is about to be demoted.
                let mut next = self.routes.clone();
                if next.master.as_deref() != Some(replica.as_str()) {
                    next.master = None;
                    self.publish(next);
                }
                if self.watching_promotion.as_deref() != Some(replica.as_str()) {
                    self.watching_promotion = Some(replica.clone());
                    tokio::spawn(probe::watch_promotion(
                        replica,
                        self.cfg.redis_access(),
                        self.event_tx.clone(),
                    ));
                }
                Then::Done
            }
            SentinelEvent::SwitchMaster { new } => {
                self.try_adopt(&new, true).await;
                self.failover_step("switch_master", |f| &mut f.switch_master_ms);
                if self.routes.master.as_deref() == Some(new.as_str()) {
                    self.end_failover("+switch-master");
                }
                Then::Refresh
            }
            SentinelEvent::MasterDown { flag } => {
                self.failover_started(&flag);
                if flag == "+odown" {
                    self.failover_step("odown", |f| &mut f.odown_ms);
                }
                Then::Refresh
            }
            // The promotion was not confirmed in time (or the failover ended
            // otherwise): the replica we may have adopted will be turned
            // back; refresh holds writes until the sentinels name a master.
            SentinelEvent::FailoverEnded { outcome } => {
                self.end_failover(&outcome);
                Then::Refresh
            }
            SentinelEvent::MasterBack => {
                // The master came back before anything was promoted.
                let promoting = self.watching_promotion.is_some()
                    || self
                        .failover
                        .as_ref()
                        .is_some_and(|f| f.new_master.is_some());
                if !promoting {
                    self.end_failover("recovered without failover");
                }
                Then::Refresh
            }
            SentinelEvent::Changed => Then::Refresh,
            SentinelEvent::Ignored => Then::Done,
        }
    }

    fn failover_started(&mut self, channel: &str) {
        if self.failover.is_none() {
            // Writes may already be held (the master refused connections
            // before the sentinels' +sdown): the old master is the last one.
            let old = self.routes.master.clone().or(self.last_master.clone());
            tracing::info!(step = "fault_seen", trigger = channel, old_master = ?old, "failover step");
            self.failover = Some(FailoverRecord::start(old, channel));
        }
    }

    /// Records a step of the failover in progress, the first time it is seen
    /// (each sentinel sends its own `+odown`, `+switch-master`...).
    /// `name` is the step's name in the failover records (`<name>_ms`).
    fn failover_step(
        &mut self,
        name: &str,
        step: impl FnOnce(&mut FailoverRecord) -> &mut Option<f64>,
    ) {
        if let Some(f) = self.failover.as_mut() {
            let ms = f.started.elapsed().as_secs_f64() * 1000.0;
            let slot = step(f);
            if slot.is_none() {
                *slot = Some(ms);
                tracing::info!(step = name, ms = ms.round(), "failover step");
                if name == "adopted" {
                    self.watch_first_write();
                }
            }
        }
    }

    /// Polls the write endpoint's reply count (every [`FIRST_WRITE_POLL`])
    /// until a reply is written after the adoption: the failover's
    /// `first_write_ms`. Gives up after [`FAILOVER_GUARD`] without traffic.
    fn watch_first_write(&self) {
        let Some(f) = self.failover.as_ref() else {
            return;
        };
        let (failover_at, started) = (f.at_unix_ms, f.started);
        let latency = self.metrics.ep(Endpoint::write).latency.clone();
        // Adoption follows the publish of the new master's routes.
        let before = self.replies_before_publish;
        let tx = self.event_tx.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + FAILOVER_GUARD;
            while Instant::now() < deadline && !tx.is_closed() {
                tokio::time::sleep(FIRST_WRITE_POLL).await;
                if latency.snapshot().count() > before {
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    let _ = tx.send(Event::FirstWrite { failover_at, ms });
                    return;
                }
            }
        });
    }

    fn failover_in_progress(&self) -> bool {
        self.failover
            .as_ref()
            .is_some_and(|f| f.started.elapsed() < FAILOVER_GUARD)
    }

    fn end_failover(&mut self, outcome: &str) {
        self.watching_promotion = None;
        if let Some(mut f) = self.failover.take() {
            f.ended_ms = Some(f.started.elapsed().as_secs_f64() * 1000.0);
            f.outcome = outcome.to_string();
            tracing::info!(step = "ended", ms = f.ended_ms.map(f64::round), outcome, new_master = ?f.new_master, "failover step");
            self.state.push_failover(f);
        }
    }

    fn sync_failover(&self) {
        self.state.set_current_failover(self.failover.clone());
    }

    /// Adopts `new` as master if its ROLE says master and the sentinel views
    /// back it (see the module comment). `leader_backed`: it comes from a
    /// failover event, i.e. from the epoch leader.
    async fn try_adopt(&mut self, new: &str, leader_backed: bool) {
        if self.routes.master.as_deref() == Some(new) {
            return;
        }
        let access = self.cfg.redis_access();
        let role = probe::probe_role(new, &access, self.cfg.connect_timeout).await;
        if role != RoleProbe::Master {
            return;
        }
        if !leader_backed {
            return;
        }
        let mut next = self.routes.clone();
        next.master = Some(new.to_string());
        next.closed = None;
        next.replicas.retain(|r| r != new);
        self.publish(next);
        if let Some(f) = self.failover.as_mut() {
            f.new_master = Some(new.to_string());
        }
        self.failover_step("adopted", |f| &mut f.adopted_ms);
    }

    /// Why writes fail closed: the sentinel majority lost for longer than
    /// `quorum_timeout` with no reachable master.
    fn closed_reason(&self, reachable: usize) -> Option<String> {
        let lost_for = self.majority_lost_since?.elapsed();
        (lost_for >= self.cfg.quorum_timeout).then(|| {
            format!(
                "failing closed: only {reachable} of {} sentinels reachable for {:.0?} and no reachable master",
                self.sentinels.len(),
                lost_for
            )
        })
    }

    /// Full look: every sentinel's view, the master's ROLE, replica health.
    async fn refresh(&mut self) {
        let t = self.cfg.connect_timeout;
        let name = self.cfg.master_name.clone();
        let spw = self.cfg.sentinel_access();
        let views = probe::sentinel_views(&self.sentinels, &spw, &name, t).await;
        let reachable = views.iter().filter(|v| v.error.is_none()).count();
        self.metrics.sentinels_reachable.set(reachable as i64);
        // Discover further sentinels.
        for v in &views {
            for s in &v.peers {
                if !self.sentinels.contains(s) {
                    tracing::info!(sentinel = %s, "discovered sentinel");
                    self.sentinels.push(s.clone());
                }
            }
        }
        let majority = self.sentinels.len() / 2 + 1;
        if reachable >= majority {
            self.majority_lost_since = None;
        } else {
            self.majority_lost_since.get_or_insert_with(Instant::now);
        }
        let candidate = probe::choose_master(&views);
        let mut next = self.routes.clone();
        let flags = views
            .iter()
            .filter(|v| v.error.is_none() && v.master == candidate)
            .map(|v| v.flags.as_str());
        let verdict = decide::sentinel_verdict(flags);
        let role = match &candidate {
            // Sentinel's call: no need to wait on a probe of a node it flags down.
            Some(_) if verdict == SentinelVerdict::Down && !self.failover_in_progress() => {
                RoleProbe::NoReply
            }
            Some(c) => probe::probe_role(c, &self.cfg.redis_access(), t).await,
            None => RoleProbe::Failed("no master named by the sentinels".into()),
        };
        let decision = decide::decide_master(
            candidate.as_ref(),
            self.routes.master.as_ref(),
            &role,
            verdict,
            self.failover_in_progress(),
        );
        if !matches!(role, RoleProbe::Master) {
            tracing::debug!(?candidate, ?role, ?decision, "master check");
        }
        match decision {
            MasterDecision::Route(m) => {
                next.master = Some(m);
                next.closed = None;
            }
            // While a failover runs, only its events (promotion, switch) move
            // the master. Polling would be wrong here: between the promotion
            // and +switch-master the leader reports the *old* address with the
            // *new* epoch, and the old master still says role:master until
            // Sentinel demotes it; writes sent there would be lost.
            MasterDecision::Unchanged => {}
            MasterDecision::Hold => {
                next.master = None;
                let errors: Vec<(Addr, Option<String>)> = views
                    .iter()
                    .map(|v| (v.addr.clone(), v.error.clone()))
                    .collect();
                let why = decide::hold_reason(&name, &errors, candidate.as_ref(), &role);
                next.closed = self.closed_reason(reachable).or(why);
            }
        }
        // A master that did not answer ROLE is not asked for INFO either.
        let master_answers = role == RoleProbe::Master;
        let last = self.state.replicas();
        let replicas = health::replica_health(
            &views,
            next.master.as_deref(),
            master_answers,
            &self.cfg,
            &last,
        )
        .await;
        next.replicas = replicas
            .iter()
            .filter(|r| r.healthy)
            .map(|r| r.addr.clone())
            .collect();
        self.metrics.set_nodes(
            views.iter().map(|v| SentinelSample {
                addr: &v.addr,
                up: v.error.is_none(),
            }),
            replicas.iter().map(|r| ReplicaSample {
                addr: &r.addr,
                in_rotation: r.healthy,
                lag_seconds: r.lag_seconds,
                lag_bytes: r.lag_bytes,
            }),
        );
        self.state.set_views(views, replicas);
        let adopted = next
            .master
            .clone()
            .filter(|m| self.routes.master.as_ref() != Some(m));
        self.publish(next);
        if let Some(m) = adopted {
            if let Some(f) = self.failover.as_mut() {
                f.new_master = Some(m);
            }
            self.failover_step("adopted", |f| &mut f.adopted_ms);
        }
    }
}
