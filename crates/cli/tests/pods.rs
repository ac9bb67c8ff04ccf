//! The Kubernetes half, executed: the rendered manifests' pods run in real
//! podman containers (crates/podrun), on the image the Dockerfile builds
//! around this binary and Debian-made stand-ins for redis:7.2 and
//! valkey/valkey:8.0. Scenarios: 1. apply until ready and healthy; 2. the
//! seed's PING/SET/GET through the proxy; 3. delete the master pod under
//! INCR/RPUSH writers (its preStop switchover hands over: no error, nothing
//! lost); 4. SIGKILL the master's containers (Sentinel fails over: nothing
//! acknowledged lost, unknown outcomes reported); each time the old
//! master's pod comes back with a new address as a replica; 5. (Redis) the
//! benchmark Jobs, write then read. Before any fault the deployment must be
//! healthy as `k8s status` decides it, which includes every sentinel knowing
//! every replica. Without podman: SKIPPED, or a failure under CI=true.

use redis_ha_drill::account::{account_all, Accounting, FinalState};
use redis_ha_drill::writer::{self, Shared, WriterLog};
use redis_ha_k8s::options::RenderOptions;
use redis_ha_k8s::render::{Load, Phase, PASSWORD_KEY};
use redis_ha_k8s::results::{merge, report_from_log};
use redis_ha_k8s::roles::{
    parse_role, parse_sentinel_master, parse_sentinel_replicas, verdict, Role, SentinelView,
    Verdict,
};
use redis_ha_podrun::{images, Cluster, Rendered};
use redis_ha_resp::{Access, Connection, Frame, Login};
use redis_ha_topology::Engine;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_redis-ha");

/// podman and the images, or `None` after printing SKIPPED (a failure under CI).
fn images_or_skip() -> Option<String> {
    // Found through the one helper: SKIPPED without them, a failure naming
    // `scripts/install-deps.sh --pods` under CI=true.
    redis_ha_testkit::program("podman")?;
    redis_ha_testkit::program("debootstrap")?;
    images::ensure_bases().expect("the base images");
    Some(images::redis_ha_image(Path::new(BIN)).expect("the redis-ha image"))
}

struct Deployed {
    c: Arc<Cluster>,
    engine: Engine,
    access: Access,
}

/// Renders for `engine`, applies in the manifests' order until every pod is ready.
fn deploy(engine: Engine) -> Option<Deployed> {
    let image = images_or_skip()?;
    let o = RenderOptions {
        engine,
        redis_image: Some(images::server_image(engine).to_string()),
        image,
        ..RenderOptions::default()
    };
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
    fn verdict(&self) -> (Vec<(String, Role)>, Verdict) {
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
    fn wait_verdict(
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
    fn exec(&self, pod: &str, container: &str, args: &[&str]) -> anyhow::Result<String> {
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
    fn dump_sentinel_logs(&self) {
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
    fn healthy(&self) -> String {
        match self.wait_verdict("healthy", Duration::from_secs(90), |v| {
            matches!(v, Verdict::Healthy { .. })
        }) {
            Verdict::Healthy { master } => master,
            _ => unreachable!(),
        }
    }

    /// Healthy with a master other than `old`, and `old`'s pod (back)
    /// among its replicas with its link up, holding for [`STEADY`]; returns
    /// the master. A pod recreated at a new address is re-learnt by the
    /// sentinels within seconds, and meanwhile a sentinel may flag it down
    /// again (seen once on Valkey: healthy, then degraded a second later):
    /// a verdict that does not hold is waited out, up to the deadline.
    fn healthy_after(&self, old: &str) -> String {
        const STEADY: Duration = Duration::from_secs(10);
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.wait_verdict(
                &format!("healthy with a master other than {old}"),
                left,
                |v| matches!(v, Verdict::Healthy { master } if master != old),
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
                let back = roles.iter().find(|(p, _)| p == old).map(|(_, r)| r);
                let ok = matches!(&v, Verdict::Healthy { master: m } if *m == master)
                    && matches!(back, Some(Role::Replica { master: m, link: redis_ha_k8s::roles::Link::Up }) if *m == master);
                if !ok {
                    eprintln!(
                        "[{:?}] healthy did not hold: {v:?}; {old}: {back:?}",
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

    /// The proxy Service's addresses, resolved inside the network (from a proxy pod).
    fn proxies(&self) -> Vec<IpAddr> {
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

    async fn connect(&self, ip: IpAddr, port: u16) -> Connection {
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
struct Writers {
    shared: Vec<Arc<Shared>>,
    tasks: Vec<tokio::task::JoinHandle<(usize, WriterLog)>>,
    start: Instant,
}

const WRITERS: usize = 4;

impl Writers {
    fn start(d: &Deployed, prefix: &str) -> Writers {
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
    fn last_ack_us(&self) -> u64 {
        self.shared
            .iter()
            .map(|s| s.last_ack_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Polls until a write is acknowledged after `after` (writes go on).
    async fn acked_after(&self, after: Instant, what: &str) {
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

    async fn stop(self) -> Vec<WriterLog> {
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
async fn account_on(d: &Deployed, master: &str, prefix: &str, logs: &[WriterLog]) -> Accounting {
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

/// Every acknowledged write is on the master exactly once; prints the
/// tally and each unknown outcome (and whether it was applied).
fn assert_exactly_once(what: &str, a: &Accounting) {
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

fn text(f: &Frame) -> String {
    f.as_text().unwrap_or_else(|| format!("{f:?}"))
}

/// Runs a blocking cluster call off the async workers (the writers keep going).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking call")
}

// 1. Apply in the manifests' order until every pod is ready; `k8s status`'s
//    decision gives healthy, redis-0 (the first-boot master) as master.
fn applies_and_is_healthy(engine: Engine) {
    let Some(d) = deploy(engine) else { return };
    let t = Instant::now();
    let master = d.healthy();
    assert_eq!(master, "redis-0");
    let (roles, _) = d.verdict();
    assert_eq!(roles.len(), 3);
    assert_eq!(d.c.set_pods("sentinel").len(), 3);
    assert_eq!(d.proxies().len(), 2, "both proxy pods answer to redis-ha");
    eprintln!(
        "[{engine:?}] healthy, master {master}, {:.1} s after ready",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn pods_apply_and_are_healthy_redis() {
    applies_and_is_healthy(Engine::Redis);
}

#[test]
fn pods_apply_and_are_healthy_valkey() {
    applies_and_is_healthy(Engine::Valkey);
}

// 2. The seed's checks: PING, SET and GET through redis-ha:6379, the value
//    read back through :6380 (a replica).
async fn seed_commands(engine: Engine) {
    let Some(d) = blocking(move || deploy(engine)).await else {
        return;
    };
    let d = Arc::new(d);
    let d2 = d.clone();
    blocking(move || d2.healthy()).await;
    for ip in d.proxies() {
        let mut w = d.connect(ip, 6379).await;
        assert_eq!(text(&w.request_ok(&["PING"]).await.unwrap()), "PONG");
        let key = format!("seed:{ip}");
        assert_eq!(
            text(&w.request_ok(&["SET", &key, "hello"]).await.unwrap()),
            "OK"
        );
        assert_eq!(text(&w.request_ok(&["GET", &key]).await.unwrap()), "hello");
        let mut r = d.connect(ip, 6380).await;
        assert_eq!(text(&r.request_ok(&["PING"]).await.unwrap()), "PONG");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = text(&r.request_ok(&["GET", &key]).await.unwrap());
            if got == "hello" {
                break;
            }
            assert!(Instant::now() < deadline, "GET {key} on :6380 gave {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Until the proxy's health check admits a replica, --read-fallback
        // master (the render's) sends :6380's commands to the master, writes
        // included; the seed's check is a write refused by a replica.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let role = format!("{:?}", r.request_ok(&["ROLE"]).await.unwrap());
            if role.contains("slave") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                ":6380 still reaches no replica: {role}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let refused = r.request(&["SET", &key, "x"]).await.unwrap();
        assert!(
            matches!(refused, Frame::Error(_)),
            ":6380 took a write: {refused:?}"
        );
    }
    eprintln!("[{engine:?}] PING/SET/GET through both proxies' :6379 and :6380");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_seed_commands_redis() {
    seed_commands(Engine::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_seed_commands_valkey() {
    seed_commands(Engine::Valkey).await;
}

/// Runs `f` with the deployment off the async workers.
async fn on<T: Send + 'static>(
    d: &Arc<Deployed>,
    f: impl FnOnce(&Deployed) -> T + Send + 'static,
) -> T {
    let d = d.clone();
    blocking(move || f(&d)).await
}

// 3. Delete the master pod under writers, as `kubectl delete pod` does: its
//    preStop `switchover` hands the master role over first, so no write
//    fails and none is lost or repeated; the StatefulSet's new pod has a new
//    address and rejoins as a replica.
async fn delete_master(engine: Engine) {
    let Some(d) = blocking(move || deploy(engine)).await else {
        return;
    };
    let d = Arc::new(d);
    let old = on(&d, |d| d.healthy()).await;
    let old_ip = d.c.ip(&old).unwrap();
    let w = Writers::start(&d, "delete");
    w.acked_after(Instant::now(), "before the deletion").await;
    let t = Instant::now();
    let pod = old.clone();
    let deletion = on(&d, move |d| {
        let (_, del) = d.c.recreate(&pod, None).expect("delete and recreate");
        d.c.wait_ready(&pod, Duration::from_secs(120))
            .expect("the new pod ready");
        del
    })
    .await;
    let hook = deletion.pre_stop.as_ref().expect("the preStop hook ran");
    eprintln!(
        "[{engine:?}] {old} deleted in {:.1} s and back ready after {:.1} s; preStop: exit {:?}\n{}{}",
        deletion.took.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        hook.code,
        hook.stdout,
        hook.stderr
    );
    w.acked_after(Instant::now(), "after the pod came back")
        .await;
    let logs = w.stop().await;
    let o = old.clone();
    let new = on(&d, move |d| d.healthy_after(&o)).await;
    let new_ip = d.c.ip(&old).unwrap();
    assert_ne!(new_ip, old_ip, "{old} came back with its old address");
    let a = account_on(&d, &new, "delete", &logs).await;
    assert_exactly_once(&format!("[{engine:?}] delete {old}, master now {new}"), &a);
    assert_eq!(
        (a.refused, a.unknown),
        (0, 0),
        "the preStop switchover should hand over without a failed write: {:?}",
        a.unknown_writes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_delete_master_redis() {
    delete_master(Engine::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_delete_master_valkey() {
    delete_master(Engine::Valkey).await;
}

// 4. SIGKILL the master's containers under writers: Sentinel fails over
//    (down-after 5 s); no acknowledged write is lost or repeated, writes
//    with an unknown outcome are reported. The dead pod is then deleted and
//    recreated (the pod runner restarts no container in place) and rejoins
//    as a replica with a new address.
async fn kill_master(engine: Engine) {
    let Some(d) = blocking(move || deploy(engine)).await else {
        return;
    };
    let d = Arc::new(d);
    let old = on(&d, |d| d.healthy()).await;
    let old_ip = d.c.ip(&old).unwrap();
    let w = Writers::start(&d, "kill");
    w.acked_after(Instant::now(), "before the kill").await;
    let pod = old.clone();
    let killed = on(&d, move |d| {
        d.c.kill(&pod).expect("kill");
        Instant::now()
    })
    .await;
    let pod = old.clone();
    let v = on(&d, move |d| {
        d.wait_verdict(
            &format!("a failover away from the killed {pod}"),
            Duration::from_secs(90),
            |v| match v {
                Verdict::Healthy { master } | Verdict::Degraded { master, .. } => *master != pod,
                Verdict::Unhealthy { .. } => false,
            },
        )
    })
    .await;
    eprintln!(
        "[{engine:?}] {old} killed; {:.1} s later: {v:?}",
        killed.elapsed().as_secs_f64()
    );
    w.acked_after(Instant::now(), "after the failover").await;
    let pod = old.clone();
    on(&d, move |d| {
        d.c.recreate(&pod, None).expect("delete and recreate");
        d.c.wait_ready(&pod, Duration::from_secs(120))
            .expect("the new pod ready");
    })
    .await;
    w.acked_after(Instant::now(), "after the pod came back")
        .await;
    let logs = w.stop().await;
    let o = old.clone();
    let new = on(&d, move |d| d.healthy_after(&o)).await;
    let new_ip = d.c.ip(&old).unwrap();
    assert_ne!(new_ip, old_ip, "{old} came back with its old address");
    let a = account_on(&d, &new, "kill", &logs).await;
    assert_exactly_once(&format!("[{engine:?}] kill {old}, master now {new}"), &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kill_master_redis() {
    kill_master(Engine::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_kill_master_valkey() {
    kill_master(Engine::Valkey).await;
}

// 5. The benchmark Jobs as `k8s bench` runs them, in the seed's shape (4 pods
//    x 2 threads x 10 connections, 256 B) but 10 s instead of 120: the write
//    phase through redis-ha:6379, then the read phase through :6380; every
//    pod exits 0 with its JSON report, merged as `k8s bench` merges them,
//    with no error.
#[test]
fn pods_benchmark_jobs_redis() {
    let Some(d) = deploy(Engine::Redis) else {
        return;
    };
    d.healthy();
    let load = Load {
        seconds: 10,
        ..Load::SEED
    };
    for phase in [Phase::Write, Phase::Read] {
        let job =
            d.c.rendered
                .bench_job(phase.job_name(), phase, &load)
                .expect("the rendered Job");
        let pods =
            d.c.run_job(&job, Duration::from_secs(180))
                .expect("the Job's pods run");
        assert_eq!(pods.len(), 4, "{} pods", phase.job_name());
        let mut reports = Vec::new();
        for p in &pods {
            assert_eq!(
                p.exit_code,
                Some(0),
                "{} exited {:?}:\n{}",
                p.name,
                p.exit_code,
                p.log
            );
            let r =
                report_from_log(&p.log).unwrap_or_else(|e| panic!("{}: {e:#}\n{}", p.name, p.log));
            reports.push((p.name.clone(), r));
        }
        let merged = merge(&reports).expect("merge");
        let totals = &merged["ALL STATS"]["Totals"];
        eprintln!(
            "{}: {} requests, {:.0} ops/s, errors {}, {}",
            phase.job_name(),
            totals["Count"],
            totals["Ops/sec"].as_f64().unwrap_or(0.0),
            totals["Errors"],
            merged["Errors"]
        );
        assert!(
            totals["Count"].as_u64().unwrap_or(0) > 0,
            "no requests: {merged}"
        );
        assert_eq!(totals["Errors"].as_u64(), Some(0), "{merged}");
        let by_kind: u64 = merged["Errors"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum();
        assert_eq!(by_kind, 0, "{merged}");
    }
}
