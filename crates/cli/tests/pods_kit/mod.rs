//! What the pod tests share (crates/cli/tests/pods.rs, pods_restart.rs):
//! deploying the rendered manifests in podman (crates/podrun), `k8s
//! status`'s verdict computed from the pods, the INCR/RPUSH writers through
//! the `redis-ha` Service and their exactly-once accounting.
#![allow(dead_code)]

pub use redis_ha_drill::account::{account_all, Accounting, FinalState};
pub use redis_ha_drill::writer::{self, Shared, WriterLog};
use redis_ha_k8s::options::RenderOptions;
use redis_ha_k8s::render::PASSWORD_KEY;
pub use redis_ha_k8s::roles::{
    parse_role, parse_sentinel_master, parse_sentinel_replicas, verdict, Link, Role, SentinelView,
    Verdict,
};
use redis_ha_podrun::cluster::Deletion;
use redis_ha_podrun::{images, Cluster, Rendered};
pub use redis_ha_resp::{Access, Connection, Frame, Login};
pub use redis_ha_topology::Engine;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_redis-ha");

/// podman and the images, or `None` after printing SKIPPED (a failure under CI).
pub fn images_or_skip() -> Option<String> {
    // Found through the one helper: SKIPPED without them, a failure naming
    // `scripts/install-deps.sh --pods` under CI=true.
    redis_ha_testkit::program("podman")?;
    redis_ha_testkit::program("debootstrap")?;
    images::ensure_bases().expect("the base images");
    Some(images::redis_ha_image(Path::new(BIN)).expect("the redis-ha image"))
}

pub struct Deployed {
    pub c: Arc<Cluster>,
    pub engine: Engine,
    pub access: Access,
}

/// Renders for `engine`, applies in the manifests' order until every pod is ready.
pub fn deploy(engine: Engine) -> Option<Deployed> {
    deploy_with(engine, |_| {})
}

/// [`deploy_with`] off the async workers, shared for [`on`]; `None` after
/// SKIPPED.
pub async fn deployed(
    engine: Engine,
    tweak: impl FnOnce(&mut RenderOptions) + Send + 'static,
) -> Option<Arc<Deployed>> {
    blocking(move || deploy_with(engine, tweak))
        .await
        .map(Arc::new)
}

/// As [`deploy`], with render options changed by `tweak`.
pub fn deploy_with(engine: Engine, tweak: impl FnOnce(&mut RenderOptions)) -> Option<Deployed> {
    let image = images_or_skip()?;
    let mut o = RenderOptions {
        engine,
        redis_image: Some(images::server_image(engine).to_string()),
        image,
        ..RenderOptions::default()
    };
    tweak(&mut o);
    let c = Cluster::new(Rendered::new(o).expect("render")).expect("a podman network");
    let t = Instant::now();
    c.apply(Duration::from_secs(240))
        .expect("apply until every pod is ready");
    eprintln!(
        "[{engine:?}] applied as {}, every pod ready in {:.1} s",
        c.id,
        t.elapsed().as_secs_f64()
    );
    let password = c
        .secret("redis-ha-auth", PASSWORD_KEY)
        .expect("the password");
    let access = Access::login(Some(Login::default_user(&password)));
    Some(Deployed {
        c: Arc::new(c),
        engine,
        access,
    })
}

impl Deployed {
    /// `k8s status`'s decision, from the pods (ROLE, and each sentinel's
    /// master and replicas).
    pub fn verdict(&self) -> (Vec<(String, Role)>, Verdict) {
        let cli = self.engine.cli();
        let roles: Vec<(String, Role)> = self
            .c
            .set_pods("redis")
            .into_iter()
            .map(|p| {
                let role = match self.exec(&p, "redis", &[cli, "--no-auth-warning", "ROLE"]) {
                    Ok(out) => parse_role(&out),
                    Err(e) => Role::Unknown {
                        error: format!("{e:#}"),
                    },
                };
                (p, role)
            })
            .collect();
        let sentinels = self.c.set_pods("sentinel");
        let views: Vec<(String, SentinelView)> = sentinels
            .iter()
            .map(|p| {
                let ask = |what| {
                    let args = [
                        cli,
                        "--no-auth-warning",
                        "-p",
                        "26379",
                        "SENTINEL",
                        what,
                        "mymaster",
                    ];
                    self.exec(p, "sentinel", &args).ok()
                };
                let view = SentinelView {
                    master: ask("get-master-addr-by-name").and_then(|o| parse_sentinel_master(&o)),
                    replicas: ask("replicas").and_then(|o| parse_sentinel_replicas(&o)),
                };
                (p.clone(), view)
            })
            .collect();
        let v = verdict(&roles, &views, sentinels.len() / 2 + 1);
        (roles, v)
    }

    /// Polls the verdict until `want` accepts it.
    pub fn wait_verdict(
        &self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Verdict) -> bool,
    ) -> Verdict {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut last = String::new();
        loop {
            let (roles, v) = self.verdict();
            if want(&v) {
                eprintln!(
                    "[{:?}] {what}: after {:.1} s",
                    self.engine,
                    start.elapsed().as_secs_f64()
                );
                return v;
            }
            // Each verdict on the way once, for a failure's or a slow run's story.
            let now = format!("{v:?}");
            if now != last {
                eprintln!(
                    "[{:?}] waiting for {what}, {:.1} s: {now}",
                    self.engine,
                    start.elapsed().as_secs_f64()
                );
                last = now;
            }
            if Instant::now() >= deadline {
                self.dump_sentinel_logs();
                panic!("{what}: not within {timeout:?}; last {v:?}, roles {roles:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `podman exec` in a pod's container; a slow one is said (a Redis or
    /// Sentinel main thread stalled, e.g. by a DNS lookup, shows here).
    pub fn exec(&self, pod: &str, container: &str, args: &[&str]) -> anyhow::Result<String> {
        let t = Instant::now();
        let out = self.c.exec(pod, container, args);
        if t.elapsed() > Duration::from_secs(3) {
            eprintln!(
                "[{:?}] slow: {:?} in {pod} took {:.1} s",
                self.engine,
                &args[1..],
                t.elapsed().as_secs_f64()
            );
        }
        out
    }

    /// The sentinels' and Redis pods' last log lines, for a failure's report.
    pub fn dump_sentinel_logs(&self) {
        let pods = self
            .c
            .set_pods("sentinel")
            .into_iter()
            .map(|p| (p, "sentinel"));
        for (p, c) in pods.chain(self.c.set_pods("redis").into_iter().map(|p| (p, "redis"))) {
            let log = self.c.logs(&p, c);
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            eprintln!(
                "--- {p}, last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// Waits for `k8s status`'s healthy: one master, every replica linked
    /// to it, every sentinel naming it and knowing every replica. Returns
    /// the master.
    pub fn healthy(&self) -> String {
        match self.wait_verdict("healthy", Duration::from_secs(90), |v| {
            matches!(v, Verdict::Healthy { .. })
        }) {
            Verdict::Healthy { master } => master,
            _ => unreachable!(),
        }
    }

    /// Healthy with a master other than `old`, and `old`'s pod (back)
    /// among its replicas with its link up, holding; returns the master.
    pub fn healthy_after(&self, old: &str) -> String {
        self.healthy_held(&format!("a master other than {old}"), |m| m != old)
    }

    /// Healthy with a master `accept` takes, every other Redis pod its
    /// replica with its link up and no second master at any look, holding
    /// for [`STEADY`]; returns the master. A pod recreated at a new address
    /// is re-learnt by the sentinels within seconds, and meanwhile a
    /// sentinel may flag it down again (seen once on Valkey: healthy, then
    /// degraded a second later): a verdict that does not hold is waited
    /// out, up to the deadline.
    pub fn healthy_held(&self, what: &str, accept: impl Fn(&str) -> bool) -> String {
        const STEADY: Duration = Duration::from_secs(10);
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.wait_verdict(
                &format!("healthy with {what}"),
                left,
                |v| matches!(v, Verdict::Healthy { master } if accept(master)),
            );
            let Verdict::Healthy { master } = v else {
                unreachable!()
            };
            let since = Instant::now();
            let held = loop {
                let (roles, v) = self.verdict();
                let masters: Vec<&String> = roles
                    .iter()
                    .filter(|(_, r)| matches!(r, Role::Master { .. }))
                    .map(|(p, _)| p)
                    .collect();
                assert!(masters.len() <= 1, "two masters: {roles:?}");
                let others_follow = roles.iter().filter(|(p, _)| *p != master).all(|(_, r)| {
                    matches!(r, Role::Replica { master: m, link: Link::Up } if *m == master)
                });
                let ok =
                    matches!(&v, Verdict::Healthy { master: m } if *m == master) && others_follow;
                if !ok {
                    eprintln!(
                        "[{:?}] healthy did not hold: {v:?}; roles {roles:?}",
                        self.engine
                    );
                    break false;
                }
                if since.elapsed() >= STEADY {
                    break true;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            if held {
                return master;
            }
            assert!(
                Instant::now() < deadline,
                "healthy never held for {STEADY:?}"
            );
        }
    }

    /// Deletes a StatefulSet pod as `kubectl delete pod` does, lets the
    /// StatefulSet create it again (a new address) and waits until it is ready.
    pub fn recreate_ready(&self, pod: &str) -> Deletion {
        let (_, del) = self.c.recreate(pod, None).expect("delete and recreate");
        self.c
            .wait_ready(pod, Duration::from_secs(120))
            .expect("the new pod ready");
        del
    }

    /// The proxy Service's addresses, resolved inside the network (from a proxy pod).
    pub fn proxies(&self) -> Vec<IpAddr> {
        let pod = self
            .c
            .pods("redis-ha-proxy-")
            .into_iter()
            .next()
            .expect("a proxy pod");
        self.c
            .resolve("redis-ha", &pod, "proxy")
            .expect("redis-ha resolves")
    }

    pub async fn connect(&self, ip: IpAddr, port: u16) -> Connection {
        let addr = format!("{ip}:{port}");
        let mut c = Connection::connect_auth(&addr, Some(&self.access), Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        c.timeout = Duration::from_secs(5);
        c
    }
}

/// With `PODS_LOG_DIR` set, every container's log is written there when
/// the test ends (also on failure), as `<test cluster>-<pod>-<container>.log`.
impl Drop for Deployed {
    fn drop(&mut self) {
        let Ok(dir) = std::env::var("PODS_LOG_DIR") else {
            return;
        };
        let _ = std::fs::create_dir_all(&dir);
        for (set, c) in [("redis", "redis"), ("sentinel", "sentinel")] {
            for p in self.c.set_pods(set) {
                let path = Path::new(&dir).join(format!("{}-{p}-{c}.log", self.c.id));
                let _ = std::fs::write(path, self.c.logs(&p, c));
            }
        }
        for p in self.c.pods("redis-ha-proxy-") {
            let path = Path::new(&dir).join(format!("{}-{p}.log", self.c.id));
            let _ = std::fs::write(path, self.c.logs(&p, "proxy"));
        }
    }
}

/// INCR/RPUSH writers through both proxies' :6379 (writer `i` on proxy
/// `i % 2`), accounted as the drills account them.
pub struct Writers {
    pub shared: Vec<Arc<Shared>>,
    tasks: Vec<tokio::task::JoinHandle<(usize, WriterLog)>>,
    pub start: Instant,
}

pub const WRITERS: usize = 4;

impl Writers {
    pub fn start(d: &Deployed, prefix: &str) -> Writers {
        let start = Instant::now();
        let shared: Vec<Arc<Shared>> = d
            .proxies()
            .into_iter()
            .map(|ip| {
                Arc::new(Shared {
                    target: format!("{ip}:6379"),
                    access: d.access.clone(),
                    // Longer than the proxy's failover hold (10 s): a write
                    // held through a failover is answered, not cut by us.
                    request_timeout: Duration::from_secs(30),
                    prefix: prefix.to_string(),
                    start,
                    stop: AtomicBool::new(false),
                    last_ack_us: AtomicU64::new(0),
                    acked_counter: AtomicI64::new(0),
                })
            })
            .collect();
        let tasks = (0..WRITERS)
            .map(|i| {
                let s = shared[i % shared.len()].clone();
                tokio::spawn(async move { (i, writer::run(i, s).await) })
            })
            .collect();
        Writers {
            shared,
            tasks,
            start,
        }
    }

    /// Microseconds since the start of the latest acknowledgement.
    pub fn last_ack_us(&self) -> u64 {
        self.shared
            .iter()
            .map(|s| s.last_ack_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Polls until a write is acknowledged after `after` (writes go on).
    pub async fn acked_after(&self, after: Instant, what: &str) {
        let at = after.duration_since(self.start).as_micros() as u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.last_ack_us() <= at {
            assert!(
                Instant::now() < deadline,
                "no write acknowledged {what} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) -> Vec<WriterLog> {
        for s in &self.shared {
            s.stop.store(true, Ordering::Relaxed);
        }
        let mut logs = Vec::new();
        for t in self.tasks {
            logs.push(t.await.expect("writer"));
        }
        logs.sort_by_key(|(i, _)| *i);
        logs.into_iter().map(|(_, l)| l).collect()
    }
}

/// Each writer's list and counter on `master`'s pod, accounted against
/// what the writers were told.
pub async fn account_on(
    d: &Deployed,
    master: &str,
    prefix: &str,
    logs: &[WriterLog],
) -> Accounting {
    let ip = d.c.ip(master).expect("the master's address");
    let mut c = d.connect(ip, 6379).await;
    let mut states = Vec::new();
    for id in 0..logs.len() {
        let list = c
            .request_ok(&["LRANGE", &writer::list_key(prefix, id), "0", "-1"])
            .await
            .expect("LRANGE");
        let list: Vec<String> = list
            .as_array()
            .unwrap_or_default()
            .iter()
            .filter_map(Frame::as_text)
            .collect();
        let n = c
            .request_ok(&["GET", &writer::counter_key(prefix, id)])
            .await
            .expect("GET");
        let counter = n.as_text().and_then(|t| t.parse().ok()).unwrap_or(0);
        states.push(FinalState { list, counter });
    }
    let writes: Vec<&[writer::Write]> = logs.iter().map(|l| l.writes.as_slice()).collect();
    account_all(&writes, &states)
}

/// After a fault on the master `old` (its address was `old_ip`) and its
/// pod's return: one more acknowledged write, the writers stopped, healthy
/// held with another master and `old` back as its replica at a new
/// address; returns that master and the writers' accounting on it.
pub async fn settle_after_master_fault(
    d: &Arc<Deployed>,
    old: &str,
    old_ip: IpAddr,
    w: Writers,
    prefix: &str,
) -> (String, Accounting) {
    w.acked_after(Instant::now(), "after the pod came back")
        .await;
    let logs = w.stop().await;
    let o = old.to_string();
    let new = on(d, move |d| d.healthy_after(&o)).await;
    let new_ip = d.c.ip(old).unwrap();
    assert_ne!(new_ip, old_ip, "{old} came back with its old address");
    let a = account_on(d, &new, prefix, &logs).await;
    (new, a)
}

/// Every acknowledged write is on the master exactly once; prints the
/// tally and each unknown outcome (and whether it was applied).
pub fn assert_exactly_once(what: &str, a: &Accounting) {
    let (applied, not) = a.unknown_applied();
    eprintln!(
        "{what}: {} acknowledged, {} refused, {} unknown ({applied} applied, {not} not), {} lost, {} duplicated",
        a.acked, a.refused, a.unknown, a.lost, a.duplicated
    );
    for u in &a.unknown_writes {
        eprintln!("  unknown outcome: {u:?}");
    }
    assert!(a.acked > 0, "{what}: nothing acknowledged");
    assert_eq!(a.lost, 0, "{what}: lost {:?}", a.lost_examples);
    assert_eq!(
        a.duplicated, 0,
        "{what}: duplicated {:?}",
        a.duplicate_examples
    );
}

pub fn text(f: &Frame) -> String {
    f.as_text().unwrap_or_else(|| format!("{f:?}"))
}

/// Runs a blocking cluster call off the async workers (the writers keep going).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking call")
}

/// Runs `f` with the deployment off the async workers.
pub async fn on<T: Send + 'static>(
    d: &Arc<Deployed>,
    f: impl FnOnce(&Deployed) -> T + Send + 'static,
) -> T {
    let d = d.clone();
    blocking(move || f(&d)).await
}
