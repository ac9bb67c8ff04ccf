//! The cluster-facing side of `redis-ha k8s`: talks to the API server
//! through kube-rs and leaves every decision to [`crate::plan`],
//! [`crate::ready`], [`crate::roles`] and [`crate::results`].

use crate::options::{RenderOptions, SENTINEL_PORT, TLS_VOLUME};
use crate::plan::{apply_plan, delete_plan, label_selector, DeleteStep, Purge, Wait};
use crate::ready::{self, Readiness};
use crate::render::{
    self, Load, Object, Phase, PASSWORD_KEY, PLACEHOLDER_PASSWORD, SENTINEL_PASSWORD_KEY,
};
use crate::results::{merge, report_from_log};
use crate::roles::{
    parse_role, parse_sentinel_master, parse_sentinel_replicas, verdict, Role, SentinelView,
    Verdict,
};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{
    ApiResource, AttachParams, DeleteParams, DynamicObject, ListParams, LogParams, Patch,
    PatchParams, PostParams,
};
use kube::config::KubeConfigOptions;
use kube::{Api, Client, Config, Resource};
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};

const MANAGER: &str = "redis-ha";
const POLL: Duration = Duration::from_secs(2);

/// A created Job and the label selector of its pods.
struct JobRun {
    name: String,
    pods: String,
}

pub struct Cluster {
    client: Client,
    ns: String,
}

fn kubeconfig_help(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach a Kubernetes cluster: {e}\n\
         point at one with KUBECONFIG=/path/to/config (or ~/.kube/config), \
         `kubectl config use-context NAME` or --context NAME; \
         `kubectl get nodes` should work first"
    )
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The API resource, the object as JSON, and whether it is namespaced.
fn erase(obj: &Object) -> anyhow::Result<(ApiResource, Value, bool)> {
    fn typed<K: Resource<DynamicType = ()> + serde::Serialize>(
        k: &K,
        namespaced: bool,
    ) -> anyhow::Result<(ApiResource, Value, bool)> {
        Ok((
            ApiResource::erase::<K>(&()),
            serde_json::to_value(k)?,
            namespaced,
        ))
    }
    match obj {
        Object::Namespace(x) => typed(x, false),
        Object::Secret(x) => typed(x, true),
        Object::ConfigMap(x) => typed(x, true),
        Object::Service(x) => typed(x, true),
        Object::StatefulSet(x) => typed(x, true),
        Object::Deployment(x) => typed(x, true),
        Object::Job(x) => typed(x, true),
        Object::PodDisruptionBudget(x) => typed(x, true),
        Object::NetworkPolicy(x) => typed(x, true),
        Object::Custom(v) => Ok((custom_resource(v)?, v.clone(), true)),
    }
}

/// Pure: the API resource of a rendered custom resource (namespaced, the
/// plural its lower-case kind plus `s`: certificates, servicemonitors).
pub fn custom_resource(v: &Value) -> anyhow::Result<ApiResource> {
    let (api_version, kind) = (v["apiVersion"].as_str(), v["kind"].as_str());
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        anyhow::bail!("a custom resource without apiVersion and kind: {v}");
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let plural = format!("{}s", kind.to_ascii_lowercase());
    Ok(ApiResource::from_gvk_with_plural(&gvk, &plural))
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn spinner(msg: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb.set_message(msg);
    pb
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 404)
}

/// The command-line client inside a pod's `container`: the engine's own,
/// judged from its image (`valkey/valkey:8.0` has valkey-cli).
fn cli_for(pod: &Pod, container: &str) -> &'static str {
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.image.as_deref())
        .unwrap_or("");
    engine_of_image(image).cli()
}

/// `--tls --cert .. --key .. --cacert ..` when the pod's `container` mounts
/// the `--tls-secret` volume (a TLS render), so exec'd cli calls reach the
/// TLS-only port; nothing otherwise.
fn tls_args_for(pod: &Pod, container: &str) -> Vec<String> {
    let mounts_tls = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.volume_mounts.as_ref())
        .is_some_and(|m| m.iter().any(|m| m.name == TLS_VOLUME));
    let o = RenderOptions {
        tls_secret: mounts_tls.then(String::new),
        ..RenderOptions::default()
    };
    o.client_tls_flags()
}

/// The cli command line for `args` inside a pod's `container`: its
/// engine's cli, with the TLS flags when the container mounts the Secret.
fn cli_command(pod: &Pod, container: &str, args: &[&str]) -> Vec<String> {
    let mut cmd = vec![cli_for(pod, container).to_string()];
    cmd.extend(tls_args_for(pod, container));
    cmd.extend(args.iter().map(|a| a.to_string()));
    cmd
}

/// Pure: which engine an image runs (by its name; Redis unless it says Valkey).
pub fn engine_of_image(image: &str) -> redis_ha_topology::Engine {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains("valkey") && !name.starts_with("redis") {
        redis_ha_topology::Engine::Valkey
    } else {
        redis_ha_topology::Engine::Redis
    }
}

impl Cluster {
    /// Connects with the current kubeconfig context, or `context`.
    pub async fn connect(context: Option<&str>, ns: &str) -> anyhow::Result<Cluster> {
        let config = match context {
            Some(c) => {
                let opts = KubeConfigOptions {
                    context: Some(c.into()),
                    ..Default::default()
                };
                Config::from_kubeconfig(&opts)
                    .await
                    .map_err(kubeconfig_help)?
            }
            None => Config::infer().await.map_err(kubeconfig_help)?,
        };
        let client = Client::try_from(config).map_err(kubeconfig_help)?;
        Ok(Cluster {
            client,
            ns: ns.into(),
        })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn dynamic(&self, ar: &ApiResource, namespaced: bool) -> Api<DynamicObject> {
        if namespaced {
            Api::namespaced_with(self.client.clone(), &self.ns, ar)
        } else {
            Api::all_with(self.client.clone(), ar)
        }
    }

    /// Polls `check` until ready, with a progress line; fails on timeout
    /// with `hint`.
    async fn wait_until<F, Fut>(
        &self,
        what: &str,
        hint: &str,
        timeout: Duration,
        check: F,
    ) -> anyhow::Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = anyhow::Result<Readiness>>,
    {
        let pb = spinner(format!("waiting for {what}"));
        let start = Instant::now();
        loop {
            match check().await? {
                Readiness::Ready => {
                    pb.finish_with_message(format!("ready: {what}"));
                    return Ok(());
                }
                Readiness::Failed(why) => {
                    pb.abandon_with_message(format!("failed: {what}: {why}"));
                    anyhow::bail!("{what}: {why}; {hint}");
                }
                Readiness::Waiting(how) => pb.set_message(format!("waiting for {what} ({how})")),
            }
            if start.elapsed() > timeout {
                pb.abandon();
                anyhow::bail!("timed out after {timeout:?} waiting for {what}; {hint}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn apply_object(&self, obj: &Object) -> anyhow::Result<()> {
        let (ar, mut value, namespaced) = erase(obj)?;
        let name = name_of(&value);
        if let Object::Secret(_) = obj {
            if self.api::<Secret>().get_opt(&name).await?.is_some() {
                eprintln!("keeping Secret {name} (its passwords protect the existing data)");
                return Ok(());
            }
            for key in [PASSWORD_KEY, SENTINEL_PASSWORD_KEY] {
                value["stringData"][key] = json!(random_password());
            }
            eprintln!("creating Secret {name} with random passwords (placeholder was {PLACEHOLDER_PASSWORD})");
        }
        let pp = PatchParams::apply(MANAGER).force();
        self.dynamic(&ar, namespaced)
            .patch(&name, &pp, &Patch::Apply(&value))
            .await
            .with_context(|| format!("server-side apply of {} {name}", ar.kind))?;
        Ok(())
    }

    async fn wait_for(&self, wait: &Wait, timeout: Duration) -> anyhow::Result<()> {
        let hint = wait.hint(&self.ns);
        match wait {
            Wait::Nothing => Ok(()),
            Wait::StatefulSet(n) => {
                let api = self.api::<StatefulSet>();
                self.wait_until(&wait.describe(), &hint, timeout, || async {
                    Ok(ready::stateful_set(&api.get(n).await?))
                })
                .await
            }
            Wait::Deployment(n) => {
                let api = self.api::<Deployment>();
                self.wait_until(&wait.describe(), &hint, timeout, || async {
                    Ok(ready::deployment(&api.get(n).await?))
                })
                .await
            }
        }
    }

    /// Server-side applies each manifest file in order, waiting for its
    /// workload before the next.
    pub async fn apply(&self, o: &RenderOptions, timeout: Duration) -> anyhow::Result<u8> {
        let mut tls_checked = false;
        for step in apply_plan(render::manifests(o)?) {
            let has_set = step
                .objects
                .iter()
                .any(|o| matches!(o, Object::StatefulSet(_)));
            if !tls_checked && has_set {
                self.wait_tls_secret(o, timeout).await?;
                tls_checked = true;
            }
            for obj in &step.objects {
                self.apply_object(obj).await?;
            }
            eprintln!("applied {}", step.file);
            for w in &step.waits {
                self.wait_for(w, timeout).await?;
            }
        }
        eprintln!("done: clients use service redis-ha (6379 write, 6380 read); `redis-ha k8s status` checks it");
        Ok(0)
    }

    /// With `--tls-secret`, waits for that Secret before the first pod
    /// would mount it (fails at once when nothing is to create it).
    async fn wait_tls_secret(&self, o: &RenderOptions, timeout: Duration) -> anyhow::Result<()> {
        let Some(name) = &o.tls_secret else {
            return Ok(());
        };
        let api = self.api::<Secret>();
        let issued = o.cert_manager_issuer.is_some();
        let hint = format!(
            "check `kubectl -n {} describe certificate {name}` (cert-manager) or create the Secret",
            self.ns
        );
        self.wait_until(&format!("TLS Secret {name}"), &hint, timeout, || async {
            Ok(ready::tls_secret(api.get_opt(name).await?.as_ref(), issued))
        })
        .await
    }

    async fn delete_object(&self, obj: &Object) -> anyhow::Result<()> {
        let (ar, value, namespaced) = erase(obj)?;
        let name = name_of(&value);
        match self
            .dynamic(&ar, namespaced)
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => eprintln!("deleted {} {name}", ar.kind),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("deleting {} {name}", ar.kind)),
        }
        Ok(())
    }

    /// Deletes in reverse apply order; data only with `purge`.
    pub async fn delete(&self, purge: bool) -> anyhow::Result<u8> {
        let o = RenderOptions {
            namespace: self.ns.clone(),
            ..RenderOptions::default()
        };
        let purge = if purge {
            Purge::Everything
        } else {
            Purge::KeepData
        };
        for step in delete_plan(render::manifests(&o)?, purge) {
            match step {
                DeleteStep::File(m) => {
                    for obj in &m.objects {
                        self.delete_object(obj).await?;
                    }
                }
                DeleteStep::Claims => {
                    let lp = ListParams::default().labels("app.kubernetes.io/name=redis-ha");
                    self.api::<PersistentVolumeClaim>()
                        .delete_collection(&DeleteParams::default(), &lp)
                        .await?;
                    eprintln!("deleted the data volumes (PersistentVolumeClaims)");
                }
            }
        }
        if purge == Purge::KeepData {
            eprintln!(
                "kept the data volumes, the Secret and namespace {}; `--purge` deletes them",
                self.ns
            );
        }
        Ok(0)
    }

    /// Runs `cmd` in a container and returns its stdout.
    async fn exec(&self, pod: &str, container: &str, cmd: &[String]) -> anyhow::Result<String> {
        let ap = AttachParams::default().container(container).stderr(false);
        let mut p = self.api::<Pod>().exec(pod, cmd.to_vec(), &ap).await?;
        let mut out = String::new();
        if let Some(mut s) = p.stdout() {
            tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out).await?;
        }
        p.join().await?;
        Ok(out)
    }

    async fn pods(&self, component: &str) -> anyhow::Result<Vec<Pod>> {
        let lp = ListParams::default().labels(&format!(
            "app.kubernetes.io/name=redis-ha,app.kubernetes.io/component={component}"
        ));
        let mut pods = self.api::<Pod>().list(&lp).await?.items;
        pods.sort_by_key(|p| p.metadata.name.clone());
        Ok(pods)
    }

    fn running(p: &Pod) -> bool {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    }

    async fn roles(&self) -> anyhow::Result<Vec<(String, Role)>> {
        let mut out = Vec::new();
        for p in self.pods("redis").await? {
            let name = p.metadata.name.clone().unwrap_or_default();
            let role = if !Self::running(&p) {
                Role::Unknown {
                    error: "pod not running".into(),
                }
            } else {
                let cmd = cli_command(&p, "redis", &["--no-auth-warning", "ROLE"]);
                match self.exec(&name, "redis", &cmd).await {
                    Ok(text) => parse_role(&text),
                    Err(e) => Role::Unknown {
                        error: format!("exec failed: {e}"),
                    },
                }
            };
            out.push((name, role));
        }
        Ok(out)
    }

    /// Each sentinel's master and the replicas it knows (not flagged down).
    async fn sentinel_views(
        &self,
        master_name: &str,
    ) -> anyhow::Result<Vec<(String, SentinelView)>> {
        let port = SENTINEL_PORT.to_string();
        let ask = |what: &'static str| {
            [
                "--no-auth-warning".to_string(),
                "-p".into(),
                port.clone(),
                "SENTINEL".into(),
                what.into(),
                master_name.to_string(),
            ]
        };
        let (master, replicas) = (ask("get-master-addr-by-name"), ask("replicas"));
        let mut out = Vec::new();
        for p in self.pods("sentinel").await? {
            let name = p.metadata.name.clone().unwrap_or_default();
            let mut view = SentinelView::default();
            if Self::running(&p) {
                let cmd = |args: &[String]| {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    cli_command(&p, "sentinel", &args)
                };
                let said = self.exec(&name, "sentinel", &cmd(&master)).await.ok();
                view.master = said.and_then(|t| parse_sentinel_master(&t));
                let said = self.exec(&name, "sentinel", &cmd(&replicas)).await.ok();
                view.replicas = said.and_then(|t| parse_sentinel_replicas(&t));
            }
            out.push((name, view));
        }
        Ok(out)
    }

    async fn verdict(
        &self,
    ) -> anyhow::Result<(Vec<(String, Role)>, Vec<(String, SentinelView)>, Verdict)> {
        let spec = RenderOptions::default().spec()?;
        let sentinels = self
            .api::<StatefulSet>()
            .get("sentinel")
            .await
            .with_context(|| {
                format!(
                    "no StatefulSet sentinel in namespace {} (deployed? `redis-ha k8s apply`)",
                    self.ns
                )
            })?;
        let want = sentinels.spec.and_then(|s| s.replicas).unwrap_or(3) as usize;
        let roles = self.roles().await?;
        let views = self.sentinel_views(&spec.master_name).await?;
        let v = verdict(&roles, &views, want / 2 + 1);
        Ok((roles, views, v))
    }

    /// Roles, sentinel views and the verdict; the exit code is the verdict's.
    pub async fn status(&self, as_json: bool) -> anyhow::Result<u8> {
        let (roles, views, v) = self.verdict().await?;
        if as_json {
            let pods: Vec<Value> = roles
                .iter()
                .map(|(p, r)| json!({"pod": p, "state": r}))
                .collect();
            let s: Vec<Value> = views
                .iter()
                .map(|(p, v)| json!({"pod": p, "master": v.master, "replicas": v.replicas}))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"redis": pods, "sentinels": s, "verdict": v})
                )?
            );
        } else {
            let mut t = comfy_table::Table::new();
            t.set_header(["pod", "state"]);
            for (p, r) in &roles {
                t.add_row([p.clone(), serde_json::to_string(r)?]);
            }
            for (p, v) in &views {
                let replicas = match &v.replicas {
                    Some(r) if r.is_empty() => "knows no replica".to_string(),
                    Some(r) => format!("knows replicas {}", r.join(", ")),
                    None => "(replicas: no answer)".to_string(),
                };
                t.add_row([
                    p.clone(),
                    format!(
                        "names master {}; {replicas}",
                        v.master.as_deref().unwrap_or("(no answer)")
                    ),
                ]);
            }
            println!("{t}\n{}", serde_json::to_string(&v)?);
        }
        Ok(v.exit_code())
    }

    /// Creates `job` afresh (an older run of the same name is deleted with
    /// its pods first, so their logs are not mistaken for this run's).
    async fn create_job(&self, job: &Job) -> anyhow::Result<JobRun> {
        let api = self.api::<Job>();
        let name = job.metadata.name.clone().unwrap_or_default();
        if api.get_opt(&name).await?.is_some() {
            api.delete(&name, &DeleteParams::foreground()).await?;
            self.wait_until(
                &format!("the previous Job {name} to go"),
                "",
                Duration::from_secs(120),
                || async {
                    Ok(match api.get_opt(&name).await? {
                        None => Readiness::Ready,
                        Some(_) => Readiness::Waiting("deleting".into()),
                    })
                },
            )
            .await?;
        }
        let created = api.create(&PostParams::default(), job).await?;
        let labels = created
            .spec
            .and_then(|s| s.selector)
            .and_then(|s| s.match_labels)
            .unwrap_or_default();
        Ok(JobRun {
            name,
            pods: label_selector(&labels),
        })
    }

    /// Waits for the Job and returns each of its pods' report.
    async fn job_reports(
        &self,
        run: &JobRun,
        timeout: Duration,
    ) -> anyhow::Result<Vec<(String, Value)>> {
        let name = run.name.as_str();
        let api = self.api::<Job>();
        let hint = format!(
            "check `kubectl -n {} describe job {name}` and `kubectl -n {} logs job/{name}`",
            self.ns, self.ns
        );
        self.wait_until(&format!("Job {name}"), &hint, timeout, || async {
            Ok(ready::job(&api.get(name).await?))
        })
        .await?;
        let lp = ListParams::default().labels(&run.pods);
        let mut out = Vec::new();
        for p in self.api::<Pod>().list(&lp).await?.items {
            let pod = p.metadata.name.unwrap_or_default();
            let log = self.api::<Pod>().logs(&pod, &LogParams::default()).await?;
            let report = report_from_log(&log).with_context(|| format!("pod {pod}"))?;
            out.push((pod, report));
        }
        Ok(out)
    }

    /// The original's benchmark: the write Jobs, then the read Jobs.
    pub async fn bench(
        &self,
        o: &RenderOptions,
        secs: u64,
        pods: i32,
        as_json: bool,
    ) -> anyhow::Result<u8> {
        let load = Load {
            pods,
            seconds: secs,
            ..Load::SEED
        };
        let mut phases = Vec::new();
        for phase in [Phase::Write, Phase::Read] {
            let run = self
                .create_job(&render::job(o, phase.job_name(), phase, &load))
                .await?;
            let reports = self
                .job_reports(&run, Duration::from_secs(secs + 300))
                .await?;
            phases.push((run.name, merge(&reports)?));
        }
        print_phases(&phases, as_json)?;
        Ok(0)
    }

    async fn wait_running(&self, run: &JobRun) -> anyhow::Result<()> {
        let lp = ListParams::default().labels(&run.pods);
        let pods = self.api::<Pod>();
        let hint = format!("check `kubectl -n {} describe job {}`", self.ns, run.name);
        self.wait_until(
            &format!("Job {}'s pod to run", run.name),
            &hint,
            Duration::from_secs(180),
            || async {
                let list = pods.list(&lp).await?.items;
                Ok(match list.iter().any(Self::running) {
                    true => Readiness::Ready,
                    false => Readiness::Waiting(format!("{} pods, none running", list.len())),
                })
            },
        )
        .await
    }

    fn master_of(v: &Verdict) -> anyhow::Result<String> {
        match v {
            Verdict::Healthy { master } | Verdict::Degraded { master, .. } => Ok(master.clone()),
            Verdict::Unhealthy { problems } => {
                anyhow::bail!(
                    "no master to drill: {}; see `redis-ha k8s status`",
                    problems.join("; ")
                )
            }
        }
    }

    /// Deletes the master pod under write load; reports the outage the
    /// load saw and the new master.
    pub async fn drill(&self, o: &RenderOptions, d: &crate::cli::DrillArgs) -> anyhow::Result<u8> {
        let (before, length) = (d.before, d.length);
        let old = Self::master_of(&self.verdict().await?.2)?;
        let load = Load {
            pods: 1,
            seconds: length.as_secs().max(before.as_secs() + 10),
            ..Load::SEED
        };
        let run = self
            .create_job(&render::job(o, "drill-load", Phase::Write, &load))
            .await?;
        self.wait_running(&run).await?;
        tokio::time::sleep(before).await;
        let dp = DeleteParams {
            grace_period_seconds: d.fault.grace_period_seconds(),
            ..DeleteParams::default()
        };
        self.api::<Pod>().delete(&old, &dp).await?;
        eprintln!("deleted master pod {old} ({})", d.fault.describe());
        let reports = self
            .job_reports(&run, Duration::from_secs(load.seconds + 300))
            .await?;
        let name = run.name;
        let (_, _, after) = self.verdict().await?;
        let report = json!({
            "deleted master": old,
            "fault": d.fault.describe(),
            "after": after,
            "load": merge(&reports)?,
        });
        if d.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_phases(&[(name, report["load"].clone())], false)?;
            println!(
                "deleted master {old}; afterwards: {}",
                serde_json::to_string(&after)?
            );
        }
        Ok(after.exit_code())
    }
}

fn print_phases(phases: &[(String, Value)], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let m: serde_json::Map<String, Value> = phases.iter().cloned().collect();
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(());
    }
    let mut t = comfy_table::Table::new();
    t.set_header([
        "job",
        "pods",
        "ops/sec",
        "avg ms",
        "p99 ms (worst pod)",
        "errors",
        "outages",
    ]);
    for (name, r) in phases {
        let tot = &r["ALL STATS"]["Totals"];
        let p99 = tot["Percentile Latencies (worst pod)"]
            .as_object()
            .and_then(|p| p.get("p99.00"))
            .cloned();
        t.add_row([
            name.clone(),
            r["Pods"].as_array().map_or(0, Vec::len).to_string(),
            format!("{:.0}", tot["Ops/sec"].as_f64().unwrap_or(0.0)),
            format!("{:.3}", tot["Average Latency"].as_f64().unwrap_or(0.0)),
            p99.map_or("-".into(), |v| v.to_string()),
            tot["Errors"].to_string(),
            r["Outages"].as_array().map_or(0, Vec::len).to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_follows_the_image() {
        use redis_ha_topology::Engine;
        assert_eq!(engine_of_image("redis:7.2"), Engine::Redis);
        assert_eq!(engine_of_image("valkey/valkey:8.0"), Engine::Valkey);
        assert_eq!(
            engine_of_image("registry.local/valkey/valkey:8.0.2"),
            Engine::Valkey
        );
        assert_eq!(
            engine_of_image("docker.io/library/redis:7.2"),
            Engine::Redis
        );
    }

    /// A pod of the rendered StatefulSet in `file`.
    fn pod_of(o: &RenderOptions, file: &str) -> Pod {
        let all = render::manifests(o).unwrap();
        let m = all.iter().find(|m| m.file == file).unwrap();
        let Object::StatefulSet(s) = &m.objects[0] else {
            panic!("{file} is not a StatefulSet")
        };
        Pod {
            spec: s.spec.as_ref().unwrap().template.spec.clone(),
            ..Default::default()
        }
    }

    #[test]
    fn status_asks_over_tls_exactly_when_the_pod_mounts_the_secret() {
        let plain = RenderOptions::default();
        assert_eq!(
            cli_command(
                &pod_of(&plain, "04-statefulset-redis.yaml"),
                "redis",
                &["ROLE"]
            ),
            ["redis-cli", "ROLE"]
        );
        let tls = RenderOptions {
            tls_secret: Some("redis-ha-tls".into()),
            ..RenderOptions::default()
        };
        let sets = [
            ("04-statefulset-redis.yaml", "redis"),
            ("05-statefulset-sentinel.yaml", "sentinel"),
        ];
        for (file, c) in sets {
            assert_eq!(
                cli_command(&pod_of(&tls, file), c, &["PING"]).join(" "),
                "redis-cli --tls --cert /tls/tls.crt --key /tls/tls.key --cacert /tls/ca.crt PING"
            );
        }
    }

    #[test]
    fn custom_resources_get_their_api_resource() {
        let ar =
            custom_resource(&json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"}))
                .unwrap();
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("cert-manager.io", "v1", "certificates")
        );
        assert!(custom_resource(&json!({"kind": "X"})).is_err());
    }
}
