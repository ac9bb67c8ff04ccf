//! The pod runner: a podman network standing in for a namespace, where the
//! rendered workloads' pods run as the kubelet runs them. One podman pod
//! per Kubernetes pod (shared network, IPC and hostname), its init
//! containers one after another (retried on failure), then its
//! containers; StatefulSet pods keep their names and claim volumes across
//! restarts, and each gets a new address; the pods' and Services' names
//! are answered by the runner's own DNS server ([`crate::dns`]) while the
//! pods exist. Everything it creates carries its id and is removed when
//! the `Cluster` is dropped, also when a test fails.

use crate::dns;
use crate::env::{self, Data, PodFields};
use crate::flags::{self, RunSpec, Source};
use crate::manifests::Rendered;
use crate::podman::{self, Output};
use crate::probe;
use anyhow::{bail, Context};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, PodTemplateSpec, Service};
use redis_ha_k8s::plan::apply_plan;
use redis_ha_k8s::render::{Object, PLACEHOLDER_PASSWORD};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The label every podman object of one cluster carries.
pub const LABEL: &str = "redis-ha-podrun";

/// What made a pod, and so how it is named and restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `set-ORDINAL`, with the set's volume claims.
    StatefulSet(String),
    /// `deployment-XXXXX`, a new name each time.
    Deployment(String),
    /// `job-XXXXX`, run to completion once.
    Job(String),
}

/// One running pod.
#[derive(Clone, Debug)]
struct PodRun {
    owner: Owner,
    /// The podman pod's name.
    podman: String,
    template: PodTemplateSpec,
    /// Its containers: (Kubernetes name, podman name).
    main: Vec<(String, String)>,
    /// emptyDir volumes, removed with the pod.
    ephemeral: Vec<String>,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<String, PodRun>,
}

/// A finished Job pod.
#[derive(Clone, Debug)]
pub struct JobPod {
    pub name: String,
    pub exit_code: Option<i32>,
    /// stdout and stderr, interleaved, as `kubectl logs` shows them.
    pub log: String,
}

/// How a pod deletion went.
#[derive(Clone, Debug)]
pub struct Deletion {
    /// The preStop hook's exit and output, if the pod has one.
    pub pre_stop: Option<Output>,
    pub took: Duration,
}

/// The rendered deployment, running in podman.
pub struct Cluster {
    pub id: String,
    pub network: String,
    pub rendered: Rendered,
    secrets: Data,
    config_maps: Data,
    dir: tempfile::TempDir,
    state: Mutex<State>,
    seq: AtomicU64,
    /// The network's gateway, where the pods ask [`dns`] for names.
    gateway: Ipv4Addr,
    /// Started with the first pod (the gateway's address exists from then).
    dns: Mutex<Option<dns::Server>>,
}

fn random_suffix(n: usize) -> String {
    use rand::Rng;
    // The characters Kubernetes uses for generated names.
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..n)
        .map(|_| CHARS[r.random_range(0..CHARS.len())] as char)
        .collect()
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The Secrets' data (`data` and `stringData`), placeholder passwords
/// replaced with random ones as `redis-ha k8s apply` does.
fn secret_data(r: &Rendered) -> Data {
    r.secrets()
        .into_iter()
        .map(|s| {
            let mut d: BTreeMap<String, String> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            for (k, v) in s.string_data.iter().flatten() {
                let v = if v == PLACEHOLDER_PASSWORD {
                    random_password()
                } else {
                    v.clone()
                };
                d.insert(k.clone(), v);
            }
            (s.metadata.name.clone().unwrap_or_default(), d)
        })
        .collect()
}

fn config_map_data(r: &Rendered) -> Data {
    r.config_maps()
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                c.data.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The DNS names a pod answers to on the network: for each Service whose
/// selector matches its labels, the Service's names (a ClusterIP Service's
/// virtual IP is stood in for by DNS round robin over its pods), and for
/// the headless Service named by the pod's `subdomain` (a StatefulSet's
/// serviceName), the pod's own `POD.SERVICE...` names.
pub fn aliases(
    pod: &str,
    labels: &BTreeMap<String, String>,
    subdomain: Option<&str>,
    services: &[&Service],
    ns: &str,
    domain: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in services {
        let name = s.metadata.name.clone().unwrap_or_default();
        let selector = s.spec.as_ref().and_then(|s| s.selector.as_ref());
        let selects = selector.is_some_and(|sel| {
            !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        });
        if !selects {
            continue;
        }
        out.extend([
            name.clone(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc.{domain}"),
        ]);
        if subdomain == Some(name.as_str()) {
            out.extend([
                format!("{pod}.{name}"),
                format!("{pod}.{name}.{ns}.svc.{domain}"),
            ]);
        }
    }
    out
}

impl Cluster {
    /// A new podman network for `rendered`'s pods (nothing runs yet).
    pub fn new(rendered: Rendered) -> anyhow::Result<Cluster> {
        static N: AtomicU64 = AtomicU64::new(0);
        sweep_stale();
        let id = format!(
            "rhp{}x{}{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            random_suffix(3)
        );
        // No aardvark-dns: the pods ask the runner's own server (see dns.rs).
        podman::call(&[
            "network",
            "create",
            "--disable-dns",
            "--label",
            &format!("{LABEL}={id}"),
            &id,
        ])
        .context("creating the podman network")?;
        let gateway = podman::call(&[
            "network",
            "inspect",
            &id,
            "--format",
            "{{range .Subnets}}{{.Gateway}}{{end}}",
        ])
        .and_then(|g| Ok(g.trim().parse::<Ipv4Addr>()?));
        let gateway = match gateway {
            Ok(g) => g,
            Err(e) => {
                remove_all(&id);
                return Err(e.context("the network's gateway"));
            }
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{id}-"))
            .tempdir()?;
        Ok(Cluster {
            network: id.clone(),
            id,
            secrets: secret_data(&rendered),
            config_maps: config_map_data(&rendered),
            rendered,
            dir,
            state: Mutex::new(State::default()),
            seq: AtomicU64::new(0),
            gateway,
            dns: Mutex::new(None),
        })
    }

    fn ns(&self) -> &str {
        &self.rendered.options.namespace
    }

    /// A Secret's value (e.g. the passwords the pods got).
    pub fn secret(&self, name: &str, key: &str) -> Option<String> {
        self.secrets.get(name).and_then(|d| d.get(key)).cloned()
    }

    fn label(&self) -> (String, String) {
        (LABEL.to_string(), self.id.clone())
    }

    /// Applies the base manifests in `redis-ha k8s apply`'s order: each
    /// workload's pods are started together (on threads of their own, as a
    /// kubelet runs pods independently: a Redis pod's init container waits
    /// for the sentinels created by the next step), and a step that waits
    /// waits until every pod started so far is ready.
    pub fn apply(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        std::thread::scope(|s| {
            // Pods being started (init containers running), each on its own
            // thread, joined at the next step that waits.
            let mut pending = Vec::new();
            for step in apply_plan(self.rendered.manifests.clone()) {
                for o in &step.objects {
                    for start in self.pod_starts(o) {
                        pending.push(s.spawn(start));
                    }
                }
                if step.waits.is_empty() {
                    continue;
                }
                for h in pending.drain(..) {
                    let pod = h
                        .join()
                        .map_err(|_| anyhow::anyhow!("starting a pod panicked"))?
                        .with_context(|| format!("applying {}", step.file))?;
                    self.wait_ready(&pod, deadline.saturating_duration_since(Instant::now()))
                        .with_context(|| format!("applying {}", step.file))?;
                }
            }
            Ok(())
        })
    }

    /// One start per pod of a workload object (none for the others:
    /// Secrets, ConfigMaps and Services are read where pods use them;
    /// budgets and NetworkPolicies are not enforced); each returns the
    /// pod's name once its init containers are done and its containers run.
    #[allow(clippy::type_complexity)]
    fn pod_starts<'a>(
        &'a self,
        o: &Object,
    ) -> Vec<Box<dyn FnOnce() -> anyhow::Result<String> + Send + 'a>> {
        match o {
            Object::StatefulSet(set) => {
                let name = set.metadata.name.clone().unwrap_or_default();
                let n = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (0..n)
                    .map(|i| {
                        let name = name.clone();
                        Box::new(move || {
                            self.start_stateful(&name, i as usize)
                                .with_context(|| format!("starting pod {name}-{i}"))?;
                            Ok(format!("{name}-{i}"))
                        })
                            as Box<dyn FnOnce() -> anyhow::Result<String> + Send + 'a>
                    })
                    .collect()
            }
            Object::Deployment(d) => {
                let name = d.metadata.name.clone().unwrap_or_default();
                let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (0..n)
                    .map(|_| {
                        let name = name.clone();
                        Box::new(move || self.start_deployment_pod(&name))
                            as Box<dyn FnOnce() -> anyhow::Result<String> + Send + 'a>
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Runs `start` for each pod name on its own thread (pods start in
    /// parallel, as podManagementPolicy Parallel and a Deployment do).
    fn start_all(
        &self,
        pods: &[String],
        start: impl Fn(&str) -> anyhow::Result<()> + Sync,
    ) -> anyhow::Result<()> {
        std::thread::scope(|s| {
            let handles: Vec<_> = pods.iter().map(|p| (p, s.spawn(|| start(p)))).collect();
            for (p, h) in handles {
                h.join()
                    .map_err(|_| anyhow::anyhow!("starting {p} panicked"))?
                    .with_context(|| format!("starting pod {p}"))?;
            }
            Ok(())
        })
    }

    /// (Re)creates pod `set-ordinal` of a StatefulSet, with its claims.
    pub fn start_stateful(&self, set: &str, ordinal: usize) -> anyhow::Result<()> {
        let s = self.rendered.stateful_set(set)?;
        let spec = s.spec.as_ref().context("StatefulSet without spec")?;
        let claims = spec.volume_claim_templates.clone().unwrap_or_default();
        let name = format!("{set}-{ordinal}");
        self.start_pod(
            &name,
            Owner::StatefulSet(set.into()),
            &spec.template,
            &claims,
            spec.service_name.as_deref(),
        )
    }

    /// Creates one new pod of a Deployment; returns its name.
    pub fn start_deployment_pod(&self, deployment: &str) -> anyhow::Result<String> {
        let d = self.rendered.deployment(deployment)?;
        let spec = d.spec.as_ref().context("Deployment without spec")?;
        let name = format!("{deployment}-{}", random_suffix(5));
        self.start_pod(
            &name,
            Owner::Deployment(deployment.into()),
            &spec.template,
            &[],
            None,
        )?;
        Ok(name)
    }

    fn volumes(
        &self,
        pod: &str,
        t: &PodTemplateSpec,
        claims: &[PersistentVolumeClaim],
    ) -> anyhow::Result<(BTreeMap<String, Source>, Vec<String>)> {
        let mut map = BTreeMap::new();
        let mut ephemeral = Vec::new();
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        for c in claims {
            let claim = c.metadata.name.clone().unwrap_or_default();
            let v = format!("{}-{claim}-{pod}", self.id);
            map.insert(claim, Source::Volume(v));
        }
        for v in t.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let source = if v.empty_dir.is_some() {
                let name = format!("{}-{pod}-{}-{n}", self.id, v.name);
                ephemeral.push(name.clone());
                Source::Volume(name)
            } else if let Some(cm) = &v.config_map {
                let data = self
                    .config_maps
                    .get(&cm.name)
                    .with_context(|| format!("volume {}: no ConfigMap {}", v.name, cm.name))?;
                let dir = self.dir.path().join(format!("{pod}-{n}")).join(&v.name);
                std::fs::create_dir_all(&dir)?;
                let mode = cm.default_mode.unwrap_or(0o644) as u32;
                for (file, text) in data {
                    let path = dir.join(file);
                    std::fs::write(&path, text)?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                }
                Source::ConfigMap(dir)
            } else {
                bail!("volume {}: only emptyDir, configMap and claim volumes are supported by the pod runner", v.name)
            };
            map.insert(v.name.clone(), source);
        }
        Ok((map, ephemeral))
    }

    fn run_spec<'a>(
        &self,
        pod: &str,
        podman_pod: &str,
        c: &'a Container,
        t: &'a PodTemplateSpec,
        volumes: &'a BTreeMap<String, Source>,
    ) -> anyhow::Result<RunSpec<'a>> {
        let fields = PodFields {
            name: pod.into(),
            namespace: self.ns().into(),
        };
        let env = env::resolve(c, &fields, &self.secrets, &self.config_maps)?;
        let (command, args) = env::command_line(c, &env);
        Ok(RunSpec {
            name: format!("{podman_pod}-{}", c.name),
            pod: podman_pod.into(),
            container: c,
            pod_security: t.spec.as_ref().and_then(|s| s.security_context.as_ref()),
            env,
            command,
            args,
            volumes,
            labels: vec![self.label()],
        })
    }

    fn start_pod(
        &self,
        name: &str,
        owner: Owner,
        t: &PodTemplateSpec,
        claims: &[PersistentVolumeClaim],
        subdomain: Option<&str>,
    ) -> anyhow::Result<()> {
        let spec = t.spec.as_ref().context("pod template without spec")?;
        let podman_pod = format!("{}-{name}", self.id);
        let labels = t
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let domain = &self.rendered.options.cluster_domain;
        let mut args: Vec<String> = [
            "pod",
            "create",
            "--name",
            &podman_pod,
            "--hostname",
            name,
            "--network",
            &self.network,
        ]
        .map(String::from)
        .to_vec();
        args.extend(["--label".into(), format!("{LABEL}={}", self.id)]);
        // Names are asked of the runner's DNS server on the gateway (dns.rs), not
        // podman's aardvark-dns 1.4, which at times answered nothing for tens of
        // seconds (Redis and Sentinel resolve names in their main thread: they
        // missed pings and entered TILT). 1 s tries, should a packet be lost.
        args.extend([
            "--dns".into(),
            self.gateway.to_string(),
            "--dns-option".into(),
            "timeout:1".into(),
            "--dns-option".into(),
            "attempts:3".into(),
        ]);
        let names = aliases(
            name,
            &labels,
            subdomain,
            &self.rendered.services(),
            self.ns(),
            domain,
        );
        podman::run(&args)?;
        let (volumes, ephemeral) = self.volumes(name, t, claims)?;
        self.state.lock().expect("state").pods.insert(
            name.to_string(),
            PodRun {
                owner,
                podman: podman_pod.clone(),
                template: t.clone(),
                main: Vec::new(),
                ephemeral,
            },
        );
        // The pod's address (its infra container on the network), then its
        // names, before any of its containers looks a name up.
        podman::call(&["pod", "start", &podman_pod])?;
        let ip = match self.ip(name)? {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => bail!("pod {name} got an IPv6 address {ip}"),
        };
        self.dns_records()?
            .lock()
            .expect("records")
            .insert(name.to_string(), (ip, names));
        for c in spec.init_containers.iter().flatten() {
            self.run_init(name, &podman_pod, c, t, &volumes)?;
        }
        let mut main = Vec::new();
        for c in &spec.containers {
            let rs = self.run_spec(name, &podman_pod, c, t, &volumes)?;
            let mut a = vec!["run".to_string(), "-d".into()];
            a.extend(flags::run_args(&rs)?);
            podman::run(&a).with_context(|| format!("starting container {}", c.name))?;
            main.push((c.name.clone(), rs.name));
        }
        if let Some(p) = self.state.lock().expect("state").pods.get_mut(name) {
            p.main = main;
        }
        Ok(())
    }

    /// Runs an init container to completion; a failure is retried with a
    /// growing pause (the kubelet's back-off, shortened), up to 6 tries.
    fn run_init(
        &self,
        pod: &str,
        podman_pod: &str,
        c: &Container,
        t: &PodTemplateSpec,
        volumes: &BTreeMap<String, Source>,
    ) -> anyhow::Result<()> {
        let rs = self.run_spec(pod, podman_pod, c, t, volumes)?;
        let mut a = vec!["run".to_string(), "--rm".into()];
        a.extend(flags::run_args(&rs)?);
        let mut last = String::new();
        for attempt in 0..6u64 {
            // A try cut by the timeout leaves its container (`--rm` acts
            // only on exit), whose name the next try needs.
            let _ = podman::call(&["rm", "-f", "--time", "0", &rs.name]);
            let o = podman::run_for(&a, Duration::from_secs(120))?;
            if o.ok() {
                return Ok(());
            }
            last = format!("exit {:?}: {}{}", o.code, o.stdout, o.stderr);
            eprintln!(
                "podrun: {pod}: init container {} failed (try {}): {}",
                c.name,
                attempt + 1,
                last.trim()
            );
            std::thread::sleep(Duration::from_secs(1 + attempt));
        }
        bail!(
            "init container {} of {pod} kept failing: {}",
            c.name,
            last.trim()
        )
    }

    fn pod(&self, name: &str) -> anyhow::Result<PodRun> {
        self.state
            .lock()
            .expect("state")
            .pods
            .get(name)
            .cloned()
            .with_context(|| format!("no pod {name}"))
    }

    /// The pods running now, by name, whose names start with `prefix`.
    pub fn pods(&self, prefix: &str) -> Vec<String> {
        self.state
            .lock()
            .expect("state")
            .pods
            .keys()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// The pods of a StatefulSet running now, by ordinal.
    pub fn set_pods(&self, set: &str) -> Vec<String> {
        let st = self.state.lock().expect("state");
        let mut pods: Vec<String> = st
            .pods
            .iter()
            .filter(|(_, p)| p.owner == Owner::StatefulSet(set.into()))
            .map(|(n, _)| n.clone())
            .collect();
        pods.sort_by_key(|p| ordinal(p));
        pods
    }

    /// The podman name of a pod's container.
    pub fn container(&self, pod: &str, container: &str) -> anyhow::Result<String> {
        let p = self.pod(pod)?;
        p.main
            .iter()
            .find(|(k, _)| k == container)
            .map(|(_, n)| n.clone())
            .with_context(|| format!("pod {pod} has no container {container}"))
    }

    /// The pod's address on the network.
    pub fn ip(&self, pod: &str) -> anyhow::Result<IpAddr> {
        let p = self.pod(pod)?;
        let infra = podman::call(&[
            "pod",
            "inspect",
            &p.podman,
            "--format",
            "{{.InfraContainerID}}",
        ])?;
        let nets = podman::call(&[
            "inspect",
            infra.trim(),
            "--format",
            "{{json .NetworkSettings.Networks}}",
        ])?;
        let v: serde_json::Value = serde_json::from_str(&nets)?;
        let ip = v[&self.network]["IPAddress"].as_str().unwrap_or_default();
        ip.parse()
            .with_context(|| format!("pod {pod} has no address on {} ({ip:?})", self.network))
    }

    /// Runs `args` in a pod's container (as `kubectl exec`); its stdout.
    pub fn exec(&self, pod: &str, container: &str, args: &[&str]) -> anyhow::Result<String> {
        let c = self.container(pod, container)?;
        let mut a = vec!["exec", c.as_str()];
        a.extend(args);
        podman::call(&a)
    }

    /// A container's log (stdout and stderr).
    pub fn logs(&self, pod: &str, container: &str) -> String {
        let Ok(c) = self.container(pod, container) else {
            return String::new();
        };
        podman::run_for(&["logs".into(), c], Duration::from_secs(20))
            .map(|o| format!("{}{}", o.stdout, o.stderr))
            .unwrap_or_default()
    }

    fn exited(container: &str) -> bool {
        podman::call(&["inspect", container, "--format", "{{.State.Status}}"])
            .is_ok_and(|s| s.trim() == "exited")
    }

    /// Waits until every container of the pod passes its readiness probe
    /// (a container without one is ready once running).
    pub fn wait_ready(&self, pod: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let p = self.pod(pod)?;
        let ip = self.ip(pod)?;
        let spec = p.template.spec.as_ref().context("no spec")?;
        for (name, podman_name) in &p.main {
            let c = spec
                .containers
                .iter()
                .find(|c| &c.name == name)
                .context("container")?;
            loop {
                if Self::exited(podman_name) {
                    bail!(
                        "pod {pod}: container {name} exited; its log:\n{}",
                        self.logs(pod, name)
                    );
                }
                let ready = match &c.readiness_probe {
                    Some(probe) => probe::check(probe, c, podman_name, ip)?,
                    None => true,
                };
                if ready {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "pod {pod}: container {name} not ready in {timeout:?}; its log:\n{}",
                        self.logs(pod, name)
                    );
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(())
    }

    /// Deletes a pod as the kubelet does: each container's preStop hook,
    /// then SIGTERM, and SIGKILL when the grace period (the pod's
    /// terminationGracePeriodSeconds unless `grace` says otherwise, counted
    /// from the start of preStop) runs out. Its emptyDirs go with it; its
    /// claim volumes stay.
    pub fn delete_pod(&self, pod: &str, grace: Option<Duration>) -> anyhow::Result<Deletion> {
        let start = Instant::now();
        let p = self.pod(pod)?;
        self.leave_endpoints(pod);
        let spec = p.template.spec.as_ref().context("no spec")?;
        let grace = grace.unwrap_or(Duration::from_secs(
            spec.termination_grace_period_seconds.unwrap_or(30) as u64,
        ));
        let mut pre_stop = None;
        for (name, podman_name) in &p.main {
            let c = spec
                .containers
                .iter()
                .find(|c| &c.name == name)
                .context("container")?;
            let hook = c
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .and_then(|h| h.exec.as_ref());
            if let (Some(hook), false) = (hook, grace.is_zero() || Self::exited(podman_name)) {
                let mut a = vec!["exec".to_string(), podman_name.clone()];
                a.extend(hook.command.iter().flatten().cloned());
                pre_stop = Some(podman::run_for(&a, grace)?);
            }
        }
        let left = grace.saturating_sub(start.elapsed()).as_secs().to_string();
        for (_, podman_name) in &p.main {
            podman::call(&["stop", "-t", &left, podman_name])?;
        }
        self.remove_pod(pod, &p)?;
        Ok(Deletion {
            pre_stop,
            took: start.elapsed(),
        })
    }

    /// A terminating pod leaves the endpoints of the Services that route
    /// to ready pods only (no publishNotReadyAddresses, as the proxy's
    /// `redis-ha`): their names stop resolving to it when its deletion
    /// starts, as the endpoints controller drops it at once, while it
    /// drains. Its headless-Service names stay until it is gone.
    fn leave_endpoints(&self, pod: &str) {
        let (ns, domain) = (self.ns(), &self.rendered.options.cluster_domain);
        let ready_only: Vec<String> = self
            .rendered
            .services()
            .into_iter()
            .filter(|s| {
                !s.spec
                    .as_ref()
                    .and_then(|s| s.publish_not_ready_addresses)
                    .unwrap_or(false)
            })
            .filter_map(|s| s.metadata.name.clone())
            .flat_map(|n| [format!("{n}.{ns}.svc.{domain}"), format!("{n}.{ns}"), n])
            .collect();
        if let Some(d) = self.dns.lock().expect("dns").as_ref() {
            if let Some((_, names)) = d.records.lock().expect("records").get_mut(pod) {
                names.retain(|n| !ready_only.contains(n));
            }
        }
    }

    /// The addresses `name` resolves to now, as the cluster DNS answers a
    /// pod (for a client outside the network that dials a Service's name:
    /// looked up again on every connect, as a Service's virtual IP would
    /// pick an endpoint again).
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let d = self.dns.lock().expect("dns");
        let Some(d) = d.as_ref() else {
            return Vec::new();
        };
        let table = d.records.lock().expect("records");
        dns::lookup(&table, name)
            .unwrap_or_default()
            .into_iter()
            .map(IpAddr::V4)
            .collect()
    }

    /// A power cut: every container of every pod SIGKILLed at once, then
    /// the pods removed (nothing restarts them); the claim volumes stay.
    /// Returns the pods that were running.
    pub fn power_cut(&self) -> anyhow::Result<Vec<String>> {
        let pods: Vec<(String, PodRun)> = self
            .state
            .lock()
            .expect("state")
            .pods
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        let each = |f: &(dyn Fn(&str, &PodRun) -> anyhow::Result<()> + Sync)| {
            std::thread::scope(|s| {
                let hs: Vec<_> = pods
                    .iter()
                    .map(|(n, p)| (n, s.spawn(move || f(n, p))))
                    .collect();
                for (n, h) in hs {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("{n} panicked"))?
                        .with_context(|| format!("pod {n}"))?;
                }
                anyhow::Ok(())
            })
        };
        each(&|_, p| {
            for (_, c) in &p.main {
                podman::call(&["kill", "-s", "KILL", c])?;
            }
            Ok(())
        })?;
        each(&|n, p| self.remove_pod(n, p))?;
        Ok(pods.into_iter().map(|(n, _)| n).collect())
    }

    /// The DNS server's records, the server started on first use (once a
    /// pod is on the network, so that its bridge and the gateway's address
    /// exist), and the bridge's MAC address pinned then.
    fn dns_records(&self) -> anyhow::Result<dns::Records> {
        let mut d = self.dns.lock().expect("dns");
        if d.is_none() {
            self.pin_bridge_mac()?;
            *d = Some(dns::Server::start(self.gateway)?);
        }
        Ok(d.as_ref().expect("started").records.clone())
    }

    /// A Linux bridge whose MAC address was never set takes the lowest of
    /// its ports' (netavark 1.4 does not set one), so it changes as pods
    /// join; the pods' ARP entries for the gateway then point at the old
    /// one, and what they send the gateway (DNS) is lost until the entry
    /// expires, tens of seconds (seen: every sentinel failing to resolve its
    /// peers right after the proxy or benchmark pods started). Setting it,
    /// even to its current value, keeps it.
    fn pin_bridge_mac(&self) -> anyhow::Result<()> {
        let bridge = podman::call(&[
            "network",
            "inspect",
            &self.network,
            "--format",
            "{{.NetworkInterface}}",
        ])?;
        let bridge = bridge.trim();
        let mac = std::fs::read_to_string(format!("/sys/class/net/{bridge}/address"))
            .with_context(|| format!("the bridge {bridge:?} of {}", self.network))?;
        let out = std::process::Command::new("ip")
            .args(["link", "set", "dev", bridge, "address", mac.trim()])
            .output()
            .context("running ip (iproute2)")?;
        anyhow::ensure!(
            out.status.success(),
            "ip link set dev {bridge} address {}: {}",
            mac.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    fn remove_pod(&self, pod: &str, p: &PodRun) -> anyhow::Result<()> {
        if let Some(d) = self.dns.lock().expect("dns").as_ref() {
            d.records.lock().expect("records").remove(pod);
        }
        podman::call(&["pod", "rm", "-f", "-t", "0", &p.podman])?;
        for v in &p.ephemeral {
            podman::call(&["volume", "rm", "-f", v])?;
        }
        self.state.lock().expect("state").pods.remove(pod);
        Ok(())
    }

    /// SIGKILLs every container of the pod (the pod stays, dead, until
    /// deleted: nothing restarts it).
    pub fn kill(&self, pod: &str) -> anyhow::Result<()> {
        for (_, c) in self.pod(pod)?.main {
            podman::call(&["kill", "-s", "KILL", &c])?;
        }
        Ok(())
    }

    /// Deletes a pod and lets its controller create it again, as after
    /// `kubectl delete pod`: a StatefulSet pod comes back with its name and
    /// claims, a Deployment pod as a new one. Returns the new pod's name.
    pub fn recreate(
        &self,
        pod: &str,
        grace: Option<Duration>,
    ) -> anyhow::Result<(String, Deletion)> {
        let owner = self.pod(pod)?.owner;
        let d = self.delete_pod(pod, grace)?;
        let name = match owner {
            Owner::StatefulSet(set) => {
                self.start_stateful(&set, ordinal(pod))?;
                pod.to_string()
            }
            Owner::Deployment(dep) => self.start_deployment_pod(&dep)?,
            Owner::Job(_) => bail!("{pod} is a Job's pod: Jobs are not restarted"),
        };
        Ok((name, d))
    }

    /// Runs a Job's pods (its parallelism, all at once) to completion and
    /// returns each one's exit and log; the pods are removed afterwards.
    pub fn run_job(&self, j: &Job, timeout: Duration) -> anyhow::Result<Vec<JobPod>> {
        let job = j.metadata.name.as_deref().unwrap_or("job");
        let spec = j.spec.as_ref().context("Job without spec")?;
        let n = spec
            .parallelism
            .unwrap_or(1)
            .max(spec.completions.unwrap_or(1));
        let names: Vec<String> = (0..n)
            .map(|_| format!("{job}-{}", random_suffix(5)))
            .collect();
        self.start_all(&names, |p| {
            self.start_pod(p, Owner::Job(job.into()), &spec.template, &[], None)
        })?;
        let mut out = Vec::new();
        for name in &names {
            let p = self.pod(name)?;
            let (c, podman_name) = p
                .main
                .first()
                .cloned()
                .context("Job pod without container")?;
            let w = podman::run_for(&["wait".into(), podman_name.clone()], timeout)?;
            let exit_code = w.stdout.trim().parse().ok();
            out.push(JobPod {
                name: name.clone(),
                exit_code,
                log: self.logs(name, &c),
            });
            self.remove_pod(name, &p)?;
        }
        Ok(out)
    }

    /// The addresses a name resolves to inside the network, asked as a pod
    /// asks (`getent` in a running pod's container).
    pub fn resolve(&self, name: &str, pod: &str, container: &str) -> anyhow::Result<Vec<IpAddr>> {
        let out = self.exec(pod, container, &["getent", "ahostsv4", name])?;
        let mut ips: Vec<IpAddr> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        anyhow::ensure!(
            !ips.is_empty(),
            "{name} does not resolve on {}",
            self.network
        );
        Ok(ips)
    }
}

/// The ordinal of a StatefulSet pod name (`redis-2` -> 2).
pub fn ordinal(pod: &str) -> usize {
    pod.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Removes every pod, container, volume and network of cluster `id`:
/// podman objects carry its label, volumes and the network its name.
fn remove_all(id: &str) {
    let filter = format!("label={LABEL}={id}");
    if let Ok(ids) = podman::call(&["pod", "ps", "-q", "--filter", &filter]) {
        for pod in ids.split_whitespace() {
            let _ = podman::call(&["pod", "rm", "-f", "-t", "0", pod]);
        }
    }
    if let Ok(ids) = podman::call(&["ps", "-aq", "--filter", &filter]) {
        for c in ids.split_whitespace() {
            let _ = podman::call(&["rm", "-f", "-t", "0", c]);
        }
    }
    let prefix = format!("{id}-");
    if let Ok(names) = podman::call(&["volume", "ls", "-q"]) {
        for v in names.split_whitespace().filter(|v| v.starts_with(&prefix)) {
            let _ = podman::call(&["volume", "rm", "-f", v]);
        }
    }
    let _ = podman::call(&["network", "rm", "-f", id]);
}

/// The test process that made cluster `id` (`rhp<pid>x...`), if the name is one.
pub fn owner_pid(id: &str) -> Option<u32> {
    id.strip_prefix("rhp")?.split_once('x')?.0.parse().ok()
}

/// Removes what clusters of test processes that are gone left behind (a
/// process killed before its `Drop` ran).
fn sweep_stale() {
    let Ok(names) = podman::call(&["network", "ls", "--format", "{{.Name}}"]) else {
        return;
    };
    for id in names.split_whitespace() {
        if let Some(pid) = owner_pid(id) {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("podrun: removing {id}, left by a test process that is gone");
                remove_all(id);
            }
        }
    }
}

impl Drop for Cluster {
    /// Removes every pod, container, volume and the network the cluster made.
    fn drop(&mut self) {
        remove_all(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_ha_k8s::options::RenderOptions;

    #[test]
    fn pods_answer_to_their_services_names() {
        let r = Rendered::new(RenderOptions::default()).unwrap();
        let services = r.services();
        let labels = |set: &str| {
            r.stateful_set(set)
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .clone()
                .unwrap()
        };
        let a = aliases(
            "redis-1",
            &labels("redis"),
            Some("redis-headless"),
            &services,
            "redis-sentinel",
            "cluster.local",
        );
        assert!(
            a.contains(&"redis-1.redis-headless.redis-sentinel.svc.cluster.local".to_string()),
            "{a:?}"
        );
        assert!(a.contains(&"redis-headless".to_string()));
        assert!(
            !a.iter()
                .any(|n| n.starts_with("sentinel") || n.starts_with("redis-ha")),
            "{a:?}"
        );
        let proxy = r
            .deployment("redis-ha-proxy")
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        let a = aliases(
            "redis-ha-proxy-abcde",
            &proxy,
            None,
            &services,
            "redis-sentinel",
            "cluster.local",
        );
        assert_eq!(
            a,
            [
                "redis-ha",
                "redis-ha.redis-sentinel",
                "redis-ha.redis-sentinel.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn secrets_get_random_passwords_for_placeholders() {
        let r = Rendered::new(RenderOptions::default()).unwrap();
        let d = secret_data(&r);
        let auth = &d["redis-ha-auth"];
        assert_eq!(auth["password"].len(), 32);
        assert_ne!(auth["password"], auth["sentinel-password"]);
        assert_eq!(ordinal("redis-2"), 2);
        assert_eq!(owner_pid("rhp4811x0kmr"), Some(4811));
        assert_eq!(owner_pid("podman"), None);
        assert_eq!(owner_pid("rhpx1"), None);
        assert_eq!(ordinal("sentinel-10"), 10);
    }
}
