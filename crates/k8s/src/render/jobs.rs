//! The benchmark Jobs, in the original's shape: 4 pods x 2 threads x 10
//! connections, 2 minutes, 256-byte values; writes through `redis-ha:6379`,
//! then reads through `redis-ha:6380`. Each pod prints its JSON report.
//! With TLS they connect with `--tls` and the mounted certificate (its
//! `redis-ha` DNS name is what bench verifies, the `-s` it is given).

use super::meta::*;
use crate::options::{RenderOptions, PROXY_SERVICE, READ_PORT, WRITE_PORT};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Which endpoint a benchmark Job loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Write,
    Read,
}

impl Phase {
    pub fn job_name(self) -> &'static str {
        match self {
            Phase::Write => "benchmark-write",
            Phase::Read => "benchmark-read",
        }
    }
    fn port(self) -> u16 {
        match self {
            Phase::Write => WRITE_PORT,
            Phase::Read => READ_PORT,
        }
    }
    /// One argument: a bare `1:0` is a base-60 number to YAML 1.1 readers.
    fn ratio(self) -> &'static str {
        match self {
            Phase::Write => "--ratio=1:0",
            Phase::Read => "--ratio=0:1",
        }
    }
}

/// The shape of one benchmark Job.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub pods: i32,
    pub threads: u32,
    pub clients: u32,
    pub seconds: u64,
    pub data_size: u32,
}

impl Load {
    /// The original's memtier Jobs.
    pub const SEED: Load = Load {
        pods: 4,
        threads: 2,
        clients: 10,
        seconds: 120,
        data_size: 256,
    };
}

fn bench_args(phase: Phase, load: &Load) -> Vec<String> {
    let port = phase.port().to_string();
    let v = [
        "bench",
        "-s",
        PROXY_SERVICE,
        "-p",
        &port,
        "-t",
        &load.threads.to_string(),
        "-c",
        &load.clients.to_string(),
        "--test-time",
        &load.seconds.to_string(),
        "-d",
        &load.data_size.to_string(),
        phase.ratio(),
        "--key-pattern",
        "R:R",
        // 400000 keys x 256 B fit maxmemory 256mb with noeviction, and the
        // read phase finds what the write phase wrote.
        "--key-maximum",
        "400000",
        "--distinct-client-seed",
        "--json",
    ];
    v.iter().map(|s| s.to_string()).collect()
}

/// A benchmark Job named `name` (the drill uses its own name and load).
pub fn job(o: &RenderOptions, name: &str, phase: Phase, load: &Load) -> Job {
    let container = Container {
        name: "bench".into(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["redis-ha".into()]),
        args: Some([bench_args(phase, load), o.client_tls_flags()].concat()),
        env: Some(vec![secret_env(o, "REDISCLI_AUTH", PASSWORD_KEY)]),
        resources: Some(resources(&o.bench_cpu, &o.bench_memory)),
        security_context: Some(container_security()),
        volume_mounts: tls_mount(o).map(|m| vec![m]),
        ..Default::default()
    };
    Job {
        metadata: workload_meta(o, name, Component::Benchmark),
        spec: Some(JobSpec {
            parallelism: Some(load.pods),
            completions: Some(load.pods),
            backoff_limit: Some(0),
            // Kept an hour so `redis-ha k8s bench` (or you) can read the logs.
            ttl_seconds_after_finished: Some(3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(Some(Component::Benchmark))),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    containers: vec![container],
                    volumes: tls_volume(o).map(|v| vec![v]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
