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
//! every replica. Scenario 6 (cold restarts, the proxies' rollout) is in
//! pods_restart.rs; the helpers both use are in pods_kit/. Without podman:
//! SKIPPED, or a failure under CI=true.

mod pods_kit;
use pods_kit::*;
use redis_ha_k8s::render::{Load, Phase};
use redis_ha_k8s::results::{merge, report_from_log};
use std::time::{Duration, Instant};

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
    let Some(d) = deployed(engine, |_| {}).await else {
        return;
    };
    on(&d, |d| d.healthy()).await;
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

// 3. Delete the master pod under writers, as `kubectl delete pod` does: its
//    preStop `switchover` hands the master role over first, so no write
//    fails and none is lost or repeated; the StatefulSet's new pod has a new
//    address and rejoins as a replica.
async fn delete_master(engine: Engine) {
    let Some(d) = deployed(engine, |_| {}).await else {
        return;
    };
    let old = on(&d, |d| d.healthy()).await;
    let old_ip = d.c.ip(&old).unwrap();
    let w = Writers::start(&d, "delete");
    w.acked_after(Instant::now(), "before the deletion").await;
    let t = Instant::now();
    let pod = old.clone();
    let deletion = on(&d, move |d| d.recreate_ready(&pod)).await;
    let hook = deletion.pre_stop.as_ref().expect("the preStop hook ran");
    eprintln!(
        "[{engine:?}] {old} deleted in {:.1} s and back ready after {:.1} s; preStop: exit {:?}\n{}{}",
        deletion.took.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        hook.code,
        hook.stdout,
        hook.stderr
    );
    let (new, a) = settle_after_master_fault(&d, &old, old_ip, w, "delete").await;
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
    let Some(d) = deployed(engine, |_| {}).await else {
        return;
    };
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
    on(&d, move |d| d.recreate_ready(&pod)).await;
    let (new, a) = settle_after_master_fault(&d, &old, old_ip, w, "kill").await;
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
