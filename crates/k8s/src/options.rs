//! What a rendered deployment can be tuned by: the `redis-ha k8s render`
//! flags, and the names and DNS addresses derived from them.

use clap::Args;
use redis_ha_topology::spec::{Spec, TlsFiles};

/// CPU request and limit, written `REQUEST:LIMIT` (e.g. `250m:1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Cpu {
    pub request: String,
    pub limit: String,
}

impl std::str::FromStr for Cpu {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((r, l)) if !r.is_empty() && !l.is_empty() => Ok(Cpu {
                request: r.into(),
                limit: l.into(),
            }),
            _ => Err(format!("{s:?}: write CPU as REQUEST:LIMIT, e.g. 250m:1")),
        }
    }
}

/// The settings of one rendered deployment. Defaults are the original's.
#[derive(Args, Clone, Debug)]
pub struct RenderOptions {
    /// Namespace everything lives in (the `k8s --namespace` flag).
    #[arg(skip = String::from(DEFAULT_NAMESPACE))]
    pub namespace: String,
    /// Redis pods (the first is the first-boot master).
    #[arg(long, default_value_t = 3)]
    pub redis_replicas: u16,
    /// Sentinel pods (quorum is a majority of them).
    #[arg(long, default_value_t = 3)]
    pub sentinels: u16,
    /// Volume size per Redis pod.
    #[arg(long, default_value = "1Gi")]
    pub storage_size: String,
    /// StorageClass of the Redis and Sentinel volumes (cluster default if unset).
    #[arg(long)]
    pub storage_class: Option<String>,
    /// Redis maxmemory.
    #[arg(long, default_value = "256mb")]
    pub maxmemory: String,
    /// Redis appendfsync. everysec: a whole-cluster crash or kill can lose
    /// the writes acknowledged in its last second or two (Redis postpones
    /// the AOF write while an fsync runs on a slow disk); always: none, at
    /// a throughput cost (README, Restarts).
    #[arg(long, default_value = "everysec", value_parser = ["always", "everysec", "no"])]
    pub appendfsync: String,
    /// Redis min-replicas-to-write: a master that has not heard from this
    /// many replicas for 10 s refuses writes; 0 turns it off.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub min_replicas_to_write: u32,
    /// Sentinel down-after-milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub down_after_ms: u64,
    /// Server engine of the Redis and Sentinel pods: redis or valkey (their
    /// commands and default image follow it).
    #[arg(long, default_value = "redis", value_name = "redis|valkey")]
    pub engine: redis_ha_topology::Engine,
    /// Server image of the Redis and Sentinel pods (default: the engine's
    /// official image, redis:7.2 or valkey/valkey:8.0).
    #[arg(long, value_name = "IMAGE")]
    pub redis_image: Option<String>,
    /// The redis-ha image (init-role, proxy, bench); see the Dockerfile.
    #[arg(long, default_value = "redis-ha:0.1.0")]
    pub image: String,
    /// Secret holding `password` and `sentinel-password`.
    #[arg(long, default_value = "redis-ha-auth")]
    pub password_secret: String,
    /// Proxy pods.
    #[arg(long, default_value_t = 2)]
    pub proxy_replicas: u16,
    /// Redis CPU request:limit.
    #[arg(long, default_value = "250m:1")]
    pub redis_cpu: Cpu,
    /// Redis memory (request = limit; leave room above maxmemory for forks).
    #[arg(long, default_value = "512Mi")]
    pub redis_memory: String,
    /// Sentinel CPU request:limit.
    #[arg(long, default_value = "50m:250m")]
    pub sentinel_cpu: Cpu,
    #[arg(long, default_value = "64Mi")]
    pub sentinel_memory: String,
    /// Proxy CPU request:limit.
    #[arg(long, default_value = "250m:1")]
    pub proxy_cpu: Cpu,
    #[arg(long, default_value = "128Mi")]
    pub proxy_memory: String,
    /// Benchmark pod CPU request:limit.
    #[arg(long, default_value = "500m:2")]
    pub bench_cpu: Cpu,
    #[arg(long, default_value = "256Mi")]
    pub bench_memory: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// TLS everywhere: the Secret (tls.crt, tls.key, ca.crt, as cert-manager
    /// writes them) mounted at /tls in every pod that talks to Redis or
    /// Sentinel; Redis, Sentinel and the proxy then listen on TLS only.
    #[arg(long, value_name = "NAME")]
    pub tls_secret: Option<String>,
    /// Also render a cert-manager Certificate for --tls-secret, issued by
    /// this Issuer (or ClusterIssuer, see --cert-manager-issuer-kind).
    #[arg(long, value_name = "NAME", requires = "tls_secret")]
    pub cert_manager_issuer: Option<String>,
    /// Add a redis_exporter sidecar (Prometheus metrics on :9121) to every
    /// Redis and Sentinel pod, and a ServiceMonitor for it to the monitoring
    /// component: the Grafana board's "Redis nodes" row and the node alerts.
    #[arg(long)]
    pub metrics: bool,
    /// The redis_exporter image of --metrics.
    #[arg(
        long,
        default_value = "oliver006/redis_exporter:v1.62.0",
        value_name = "IMAGE"
    )]
    pub exporter_image: String,
    /// Kind of --cert-manager-issuer.
    #[arg(long, default_value = "Issuer", value_name = "Issuer|ClusterIssuer")]
    pub cert_manager_issuer_kind: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            o: RenderOptions,
        }
        P::parse_from(["render"]).o
    }
}

pub const DEFAULT_NAMESPACE: &str = "redis-sentinel";
pub const REDIS_PORT: u16 = 6379;
pub const SENTINEL_PORT: u16 = 26379;
pub const WRITE_PORT: u16 = 6379;
pub const READ_PORT: u16 = 6380;
pub const ADMIN_PORT: u16 = 8404;
pub const REDIS_SERVICE: &str = "redis-headless";
pub const SENTINEL_SERVICE: &str = "sentinel-headless";
pub const PROXY_SERVICE: &str = "redis-ha";
/// Where the `--tls-secret` volume is mounted, read-only.
pub const TLS_DIR: &str = "/tls";
/// The name of that volume in the pod specs.
pub const TLS_VOLUME: &str = "tls";

impl RenderOptions {
    /// The topology spec the configs are rendered from (as `redis-ha up`).
    pub fn spec(&self) -> anyhow::Result<Spec> {
        let sentinels = usize::from(self.sentinels);
        let spec = Spec {
            redis_nodes: usize::from(self.redis_replicas),
            sentinels,
            quorum: sentinels / 2 + 1,
            down_after_ms: self.down_after_ms,
            maxmemory: self.maxmemory.clone(),
            appendfsync: self.appendfsync.clone(),
            min_replicas_to_write: self.min_replicas_to_write,
            // Pods are known by their DNS names, which outlive their IPs.
            announce_hostnames: true,
            engine: self.engine,
            tls: self.tls_files(),
            ..Spec::default()
        };
        spec.validate()?;
        anyhow::ensure!(
            self.proxy_replicas >= 1,
            "--proxy-replicas must be at least 1"
        );
        anyhow::ensure!(
            ["Issuer", "ClusterIssuer"].contains(&self.cert_manager_issuer_kind.as_str()),
            "--cert-manager-issuer-kind must be Issuer or ClusterIssuer"
        );
        Ok(spec)
    }

    /// The certificate, key and CA in the mounted `--tls-secret`, under the
    /// `kubernetes.io/tls` / cert-manager key names; `None` without TLS.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        self.tls_secret.as_ref().map(|_| TlsFiles {
            cert_file: format!("{TLS_DIR}/tls.crt"),
            key_file: format!("{TLS_DIR}/tls.key"),
            ca_cert_file: format!("{TLS_DIR}/ca.crt"),
        })
    }

    /// `--tls --cert .. --key .. --cacert ..`: the client flags redis-cli,
    /// valkey-cli and `redis-ha bench`, `init-role` and `switchover` share
    /// (the same certificate is the client's, as `tls-auth-clients yes`
    /// wants one); empty without TLS.
    pub fn client_tls_flags(&self) -> Vec<String> {
        let Some(t) = self.tls_files() else {
            return Vec::new();
        };
        [
            "--tls",
            "--cert",
            &t.cert_file,
            "--key",
            &t.key_file,
            "--cacert",
            &t.ca_cert_file,
        ]
        .map(String::from)
        .to_vec()
    }

    /// [`Self::client_tls_flags`] as a shell word list with a leading space
    /// (`""` without TLS), to follow a cli name in a script.
    pub fn client_tls_words(&self) -> String {
        self.client_tls_flags()
            .iter()
            .map(|f| format!(" {f}"))
            .collect()
    }

    /// The names the certificate must cover: every Redis and Sentinel pod
    /// (as announced and as the proxy verifies them) and the proxy Service
    /// in each form a client may use (`redis-ha` is the bench Jobs' SNI).
    pub fn certificate_dns_names(&self) -> Vec<String> {
        let svc = |s: &str| format!("{s}.{}.svc.{}", self.namespace, self.cluster_domain);
        let ns = &self.namespace;
        vec![
            format!("*.{}", svc(REDIS_SERVICE)),
            format!("*.{}", svc(SENTINEL_SERVICE)),
            PROXY_SERVICE.to_string(),
            format!("{PROXY_SERVICE}.{ns}"),
            format!("{PROXY_SERVICE}.{ns}.svc"),
            svc(PROXY_SERVICE),
        ]
    }

    /// The Redis and Sentinel pods' image.
    pub fn server_image(&self) -> String {
        (self.redis_image.clone()).unwrap_or_else(|| self.engine.image().to_string())
    }

    /// DNS name of pod `pod` behind headless service `service`.
    pub fn pod_host(&self, pod: &str, service: &str) -> String {
        format!(
            "{pod}.{service}.{}.svc.{}",
            self.namespace, self.cluster_domain
        )
    }

    /// The same with the pod name left to `POD_NAME`, written as
    /// Kubernetes expands it in args (`$(POD_NAME)`) or as a shell does
    /// (`$POD_NAME`).
    pub fn own_host(&self, service: &str, var: &str) -> String {
        self.pod_host(var, service)
    }

    pub fn redis_host(&self, i: usize) -> String {
        self.pod_host(&Spec::redis_name(i), REDIS_SERVICE)
    }

    /// `HOST:PORT` of every sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        (0..usize::from(self.sentinels))
            .map(|i| {
                format!(
                    "{}:{SENTINEL_PORT}",
                    self.pod_host(&Spec::sentinel_name(i), SENTINEL_SERVICE)
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_request_colon_limit() {
        let c: Cpu = "250m:1".parse().unwrap();
        assert_eq!((c.request.as_str(), c.limit.as_str()), ("250m", "1"));
        assert!("250m".parse::<Cpu>().is_err());
        assert!(":1".parse::<Cpu>().is_err());
    }

    #[test]
    fn the_engine_picks_the_image_unless_one_is_given() {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            o: RenderOptions,
        }
        let v = P::parse_from(["render", "--engine", "valkey"]).o;
        assert_eq!(v.server_image(), "valkey/valkey:8.0");
        assert_eq!(v.spec().unwrap().engine, redis_ha_topology::Engine::Valkey);
        let pinned = P::parse_from([
            "render",
            "--engine",
            "valkey",
            "--redis-image",
            "valkey/valkey:8.0.2",
        ])
        .o;
        assert_eq!(pinned.server_image(), "valkey/valkey:8.0.2");
        let always = P::parse_from(["render", "--appendfsync", "always"]).o;
        assert_eq!(always.spec().unwrap().appendfsync, "always");
        assert_eq!(
            RenderOptions::default().spec().unwrap().appendfsync,
            "everysec"
        );
        assert!(P::try_parse_from(["render", "--appendfsync", "sometimes"]).is_err());
    }

    #[test]
    fn defaults_are_the_originals() {
        let o = RenderOptions::default();
        assert_eq!(o.namespace, "redis-sentinel");
        assert_eq!((o.redis_replicas, o.sentinels, o.proxy_replicas), (3, 3, 2));
        assert_eq!(
            (o.server_image().as_str(), o.image.as_str()),
            ("redis:7.2", "redis-ha:0.1.0")
        );
        let spec = o.spec().unwrap();
        assert_eq!(
            (spec.quorum, spec.down_after_ms, spec.failover_timeout_ms),
            (2, 5000, 180_000)
        );
        assert_eq!(
            o.sentinel_addrs()[2],
            "sentinel-2.sentinel-headless.redis-sentinel.svc.cluster.local:26379"
        );
    }

    #[test]
    fn tls_is_off_by_default_and_names_the_mounted_files() {
        let o = RenderOptions::default();
        assert!(o.tls_secret.is_none() && o.spec().unwrap().tls.is_none());
        assert!(o.client_tls_flags().is_empty() && o.client_tls_words().is_empty());
        let t = RenderOptions {
            tls_secret: Some("redis-ha-tls".into()),
            ..o
        };
        let files = t.spec().unwrap().tls.unwrap();
        assert_eq!(
            (files.cert_file.as_str(), files.key_file.as_str()),
            ("/tls/tls.crt", "/tls/tls.key")
        );
        assert_eq!(files.ca_cert_file, "/tls/ca.crt");
        assert_eq!(
            t.client_tls_words(),
            " --tls --cert /tls/tls.crt --key /tls/tls.key --cacert /tls/ca.crt"
        );
    }

    #[test]
    fn the_certificate_names_cover_every_pod_and_the_service() {
        let o = RenderOptions {
            namespace: "prod".into(),
            ..RenderOptions::default()
        };
        assert_eq!(
            o.certificate_dns_names(),
            [
                "*.redis-headless.prod.svc.cluster.local",
                "*.sentinel-headless.prod.svc.cluster.local",
                "redis-ha",
                "redis-ha.prod",
                "redis-ha.prod.svc",
                "redis-ha.prod.svc.cluster.local",
            ]
        );
        let wild = |h: &str| format!("*{}", &h[h.find('.').unwrap()..]);
        let names = o.certificate_dns_names();
        assert!(names.contains(&wild(&o.redis_host(2))));
        let s = o.sentinel_addrs()[0]
            .rsplit_once(':')
            .unwrap()
            .0
            .to_string();
        assert!(names.contains(&wild(&s)));
    }

    #[test]
    fn the_issuer_kind_is_issuer_or_cluster_issuer() {
        let bad = RenderOptions {
            cert_manager_issuer_kind: "Issuers".into(),
            ..RenderOptions::default()
        };
        assert!(bad.spec().is_err());
    }
}
