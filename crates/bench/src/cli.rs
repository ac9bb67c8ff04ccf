//! `redis-ha bench` flags (memtier_benchmark's names and meanings) and the
//! command itself.

use crate::chart;
use crate::report::Report;
use crate::run::{run as run_once, RunOptions};
use crate::scenario;
use crate::worker::ConnConfig;
use crate::workload::{parse_range, parse_ratio, KeyPattern, Template, Workload};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use redis_ha_resp::tls::{Tls, TlsSettings};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Scenario {
    /// The original's benchmark: 100% SET to the write endpoint, then 100%
    /// GET over the written keys from the read endpoint (80 connections,
    /// 256 B, 2 minutes each).
    Seed,
}

/// Load-test a Redis endpoint the way memtier_benchmark does, but keep going
/// through failovers: broken connections reconnect with backoff, errors are
/// counted by kind, and outage windows are reported.
///
/// Examples:
///   redis-ha bench -t 2 -c 25 --ratio 1:0 -d 256 --test-time 10
///   redis-ha bench -p 6380 --ratio 0:1 --key-pattern R:R --test-time 30 --chart read.svg
///   redis-ha bench --rate-limiting 100 -c 10 --test-time 60     (open loop, 1000 req/s per thread)
///   redis-ha bench --command "LPUSH __key__ __data__" --command-ratio 1 -n 1000
///   redis-ha bench --scenario seed --test-time 20 --json-out-file seed.json --chart seed.svg
///   redis-ha bench --tls --cacert ca.pem -p 6390 -n 1000             (TLS, server cert signed by ca.pem)
///   redis-ha bench --tls --cacert ca.pem --cert client.pem --key client.key -s redis.example.com
#[derive(Args, Debug, Clone)]
#[command(verbatim_doc_comment)]
pub struct BenchArgs {
    /// Server address (the proxy's write endpoint by default).
    #[arg(short = 's', long, default_value = "127.0.0.1")]
    pub server: String,
    /// Server port (6379: the `redis-ha up` write endpoint).
    #[arg(short = 'p', long, default_value_t = 6379)]
    pub port: u16,
    /// Credentials: PASSWORD, or USER:PASSWORD for an ACL user.
    #[arg(
        short = 'a',
        long = "authenticate",
        env = "REDISCLI_AUTH",
        hide_env_values = true
    )]
    pub authenticate: Option<String>,
    /// Connect with TLS (Redis: tls-port). The server's certificate is
    /// verified against --cacert, or without it against the system's CA
    /// store (/etc/ssl/certs; SSL_CERT_FILE / SSL_CERT_DIR override it), for
    /// the name --sni or else -s.
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    /// Client certificate (PEM) for servers that require one (Redis:
    /// tls-auth-clients yes); needs --key.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"], help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert"], help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// CA certificate(s) (PEM) to verify the server with, instead of the
    /// system's CA store: the CA that signed the server's certificate (with
    /// a private CA, usually the server's tls-ca-cert-file).
    #[arg(long, value_name = "FILE", requires = "tls", help_heading = "TLS")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate (tests only: anyone in the
    /// middle can read the traffic).
    #[arg(
        long,
        requires = "tls",
        conflicts_with = "cacert",
        help_heading = "TLS"
    )]
    pub tls_skip_verify: bool,
    /// Name the server's certificate must be issued for, also sent as SNI
    /// [default: -s; an IP address is checked against the certificate's IP
    /// addresses].
    #[arg(long, value_name = "NAME", requires = "tls", help_heading = "TLS")]
    pub sni: Option<String>,
    /// A local topology's state dir: when it was started with `up --tls`
    /// and -s/-p name one of its endpoints, bench speaks TLS with its CA and
    /// client certificate without --tls.
    #[arg(long, default_value = ".redis-ha", help_heading = "TLS")]
    pub state_dir: PathBuf,
    /// Worker threads [default: 4; seed scenario: 2].
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Connections per thread [default: 50; seed scenario: 40, i.e. the
    /// original's 80 connections].
    #[arg(short = 'c', long)]
    pub clients: Option<usize>,
    /// Run for this many seconds [seed scenario: 120 per phase].
    #[arg(long, value_name = "SECS", conflicts_with = "requests")]
    pub test_time: Option<u64>,
    /// Requests per connection (default 10000 without --test-time).
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// SET:GET ratio, e.g. 1:10, 1:0 (writes only), 0:1 (reads only).
    #[arg(long, default_value = "1:10")]
    pub ratio: String,
    /// Value size in bytes [default: 32; seed scenario: 256].
    #[arg(short = 'd', long)]
    pub data_size: Option<usize>,
    /// Random value size per request, MIN-MAX bytes (overrides -d).
    #[arg(long, value_name = "MIN-MAX")]
    pub data_size_range: Option<String>,
    /// SET:GET key patterns: S sequential, R random, G gaussian, P parallel
    /// (range split among connections).
    #[arg(long, default_value = "R:R")]
    pub key_pattern: String,
    #[arg(long, default_value = "memtier-")]
    pub key_prefix: String,
    #[arg(long, default_value_t = 0)]
    pub key_minimum: u64,
    /// [default: 10000000; seed scenario: 400000, which fits maxmemory
    /// 256mb with noeviction]
    #[arg(long)]
    pub key_maximum: Option<u64>,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Requests per second per connection, on an open-loop schedule:
    /// latency counts from when a request was due, not when it was sent.
    #[arg(long, value_name = "RPS")]
    pub rate_limiting: Option<u64>,
    /// Arbitrary command with __key__ and __data__ placeholders
    /// (repeatable; replaces SET/GET).
    #[arg(long)]
    pub command: Vec<String>,
    /// Weight of each --command, in order (default 1 each).
    #[arg(long)]
    pub command_ratio: Vec<u32>,
    /// Key pattern of each --command, in order (default R).
    #[arg(long)]
    pub command_key_pattern: Vec<String>,
    /// Give each connection its own random seed.
    #[arg(long)]
    pub distinct_client_seed: bool,
    /// Seed from the clock instead of a fixed seed.
    #[arg(long)]
    pub randomize: bool,
    /// Write the results as JSON (memtier's layout plus timeline, errors
    /// and outages).
    #[arg(long, value_name = "FILE")]
    pub json_out_file: Option<PathBuf>,
    /// Write each type's latency histogram to PREFIX_<type>.hgrm.
    #[arg(long, value_name = "PREFIX")]
    pub hdr_file_prefix: Option<String>,
    /// Percentiles in the table and JSON.
    #[arg(long, default_value = "50,99,99.9")]
    pub print_percentiles: String,
    /// Do not print the latency distribution after the table.
    #[arg(long)]
    pub hide_histogram: bool,
    /// Reconnect after this many requests on a connection.
    #[arg(long, value_name = "N")]
    pub reconnect_interval: Option<u64>,
    /// Draw a per-second chart (ops, errors, p50/p99, outages): .svg or .png.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// Print the JSON report on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// A request without a reply for this long counts as a timeout and the
    /// connection is reopened.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub request_timeout: u64,
    /// Longest wait between reconnect attempts.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub reconnect_backoff_max: u64,
    /// A gap without any reply longer than this is reported as an outage.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub stall: u64,
    /// Run a predefined scenario instead of one workload.
    #[arg(long)]
    pub scenario: Option<Scenario>,
    /// Read endpoint port for `--scenario seed` (the proxy's 6380).
    #[arg(long, default_value_t = 6380)]
    pub read_port: u16,
}

impl BenchArgs {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or(4)
    }

    pub fn clients(&self) -> usize {
        self.clients.unwrap_or(50)
    }

    pub fn data_size(&self) -> usize {
        self.data_size.unwrap_or(32)
    }

    pub fn key_maximum(&self) -> u64 {
        self.key_maximum.unwrap_or(10_000_000)
    }

    pub fn percentiles(&self) -> anyhow::Result<Vec<f64>> {
        self.print_percentiles
            .split(',')
            .map(|p| {
                let v: f64 = p.trim().parse().with_context(|| {
                    format!(
                        "--print-percentiles {:?}: use numbers such as 50,99,99.9",
                        self.print_percentiles
                    )
                })?;
                if !(0.0..=100.0).contains(&v) {
                    bail!("--print-percentiles: {v} is not between 0 and 100");
                }
                Ok(v)
            })
            .collect()
    }

    /// Requests per connection; 0 = until --test-time.
    pub fn requests(&self) -> u64 {
        match (self.requests, self.test_time) {
            (Some(n), _) => n,
            (None, Some(_)) => 0,
            (None, None) => 10_000,
        }
    }

    /// The TLS client config from the flags (reads the PEM files), `None`
    /// without --tls. Built once and shared by every connection of a run
    /// (and by both phases of a scenario).
    pub fn tls(&self) -> anyhow::Result<Option<Arc<Tls>>> {
        if !self.tls {
            return match self.local_tls() {
                Some(o) => o.client_tls(),
                None => Ok(None),
            };
        }
        let settings = TlsSettings {
            server_name: Some(self.sni.clone().unwrap_or_else(|| self.server.clone())),
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            skip_verify: self.tls_skip_verify,
            flags: "",
        };
        Ok(Some(Arc::new(Tls::new(&settings)?)))
    }

    /// The `up --tls` topology in --state-dir whose endpoint -s/-p name.
    fn local_tls(&self) -> Option<redis_ha_local::Options> {
        let o = redis_ha_local::Options::load(&self.state_dir).ok()?;
        serves_tls(&o, &self.server, self.port).then_some(o)
    }

    pub fn conn(&self, port: u16, tls: Option<Arc<Tls>>) -> ConnConfig {
        ConnConfig {
            addr: format!("{}:{}", self.server, port),
            tls,
            auth: self.authenticate.clone(),
            pipeline: self.pipeline,
            rate: self.rate_limiting.unwrap_or(0),
            requests: self.requests(),
            reconnect_interval: self.reconnect_interval.unwrap_or(0),
            request_timeout: Duration::from_millis(self.request_timeout.max(1)),
            connect_timeout: Duration::from_secs(2),
            backoff_max: Duration::from_millis(self.reconnect_backoff_max.max(1)),
        }
    }

    pub fn run_options(&self, port: u16, title: &str, tls: Option<Arc<Tls>>) -> RunOptions {
        RunOptions {
            conn: self.conn(port, tls),
            threads: self.threads(),
            clients: self.clients(),
            test_time: self.test_time.map(Duration::from_secs),
            progress: std::io::stderr().is_terminal() && !self.json,
            stall: Duration::from_millis(self.stall.max(1)),
            title: title.to_string(),
        }
    }

    fn seed(&self) -> u64 {
        if self.randomize {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        } else {
            0x5EED
        }
    }

    fn data_sizes(&self) -> anyhow::Result<(usize, usize)> {
        match &self.data_size_range {
            Some(r) => parse_range(r),
            None => Ok((self.data_size(), self.data_size())),
        }
    }

    /// The workload from the flags (`ratio`/`patterns` override the SET/GET
    /// ratio and key patterns, for scenarios).
    pub fn workload(&self, key_min: u64, key_max: u64) -> anyhow::Result<Workload> {
        let (dmin, dmax) = self.data_sizes()?;
        let (templates, ratios) = if self.command.is_empty() {
            let (set, get) = parse_ratio(&self.ratio)?;
            let (ps, pg) = self.key_pattern.split_once(':').with_context(|| {
                format!(
                    "--key-pattern {:?} must be SET:GET, e.g. R:R or S:S",
                    self.key_pattern
                )
            })?;
            (
                vec![
                    Template::set(KeyPattern::parse(ps)?),
                    Template::get(KeyPattern::parse(pg)?),
                ],
                vec![set, get],
            )
        } else {
            let n = self.command.len();
            if self.command_ratio.len() > n || self.command_key_pattern.len() > n {
                bail!("more --command-ratio/--command-key-pattern values than --command flags");
            }
            let mut ts = Vec::new();
            for (i, c) in self.command.iter().enumerate() {
                let p = self
                    .command_key_pattern
                    .get(i)
                    .map(|p| KeyPattern::parse(p))
                    .transpose()?
                    .unwrap_or(KeyPattern::Random);
                ts.push(Template::parse(c, p)?);
            }
            let ratios = (0..n)
                .map(|i| self.command_ratio.get(i).copied().unwrap_or(1))
                .collect();
            (ts, ratios)
        };
        Workload::new(
            templates,
            &ratios,
            &self.key_prefix,
            key_min,
            key_max,
            dmin,
            dmax,
            self.seed(),
            self.distinct_client_seed,
        )
    }

    pub fn config_json(&self, port: u16) -> serde_json::Value {
        json!({
            "server": self.server, "port": port, "threads": self.threads(),
            "clients": self.clients(), "test_time": self.test_time,
            "requests": self.requests(), "ratio": self.ratio,
            "data_size": self.data_size(), "data_size_range": self.data_size_range,
            "key_pattern": self.key_pattern, "key_prefix": self.key_prefix,
            "key_minimum": self.key_minimum, "key_maximum": self.key_maximum(),
            "pipeline": self.pipeline, "rate_limiting": self.rate_limiting,
            "command": self.command, "command_ratio": self.command_ratio,
            "tls": self.tls || self.local_tls().is_some(),
            "tls_skip_verify": self.tls_skip_verify,
            "sni": if self.tls { Some(self.sni.as_deref().unwrap_or(&self.server)) } else { None },
        })
    }
}

/// Whether `server:port` is an endpoint of a TLS topology `o` (a node or
/// the proxy's write or read port, on its host or as localhost).
fn serves_tls(o: &redis_ha_local::Options, server: &str, port: u16) -> bool {
    let host = server == o.host || ["localhost", "127.0.0.1"].contains(&server);
    let proxy = o.proxy.iter().flat_map(|p| [p.write, p.read]);
    let ports: Vec<u16> = proxy.chain(o.redis_ports.iter().copied()).collect();
    o.spec.tls.is_some() && host && ports.contains(&port)
}

/// Runs `redis-ha bench`; the exit code is 0 when the run completed (errors
/// during a failover are results, not failures).
pub async fn run(a: BenchArgs) -> anyhow::Result<u8> {
    if let Some(Scenario::Seed) = a.scenario {
        return seed(&a).await;
    }
    let percentiles = a.percentiles()?;
    let w = Arc::new(a.workload(a.key_minimum, a.key_maximum())?);
    let tls = a.tls()?;
    let mut r = run_once(a.run_options(a.port, "bench", tls), w).await?;
    r.percentiles = percentiles;
    r.config = a.config_json(a.port);
    output(&a, &[("bench", &r)], r.to_json())?;
    Ok(0)
}

/// `--scenario seed`: the flags, with the scenario's defaults, as a
/// [`scenario::SeedConfig`]; then the run, printed like a plain one.
async fn seed(a: &BenchArgs) -> anyhow::Result<u8> {
    if !a.command.is_empty() {
        bail!("--scenario seed sends SET then GET: drop --command (or run without --scenario)");
    }
    let mut w = a.clone();
    // The original: 4 pods × 2 threads × 10 connections = 80, 256 B values,
    // 2 minutes per phase.
    w.threads.get_or_insert(2);
    w.clients.get_or_insert(40);
    w.data_size.get_or_insert(256);
    w.key_maximum.get_or_insert(400_000);
    if w.test_time.is_none() && w.requests.is_none() {
        w.test_time = Some(120);
    }
    // One TLS config for both phases.
    let tls = w.tls()?;
    // Each phase's JSON config says what it ran.
    let phase_config = |w: &mut BenchArgs, ratio: &str, pattern: &str, port: u16| {
        w.ratio = ratio.into();
        w.key_pattern = pattern.into();
        w.config_json(port)
    };
    let (port, read_port) = (w.port, w.read_port);
    let write_config = phase_config(&mut w, "1:0", "S:S", port);
    let read_config = phase_config(&mut w, "0:1", "R:R", read_port);
    let cfg = scenario::SeedConfig {
        write: w.run_options(w.port, "write", tls.clone()),
        read: w.run_options(w.read_port, "read", tls),
        data_size: w.data_sizes()?,
        key_prefix: w.key_prefix.clone(),
        key_min: w.key_minimum,
        key_max: w.key_maximum(),
        seed: w.seed(),
        distinct_client_seed: w.distinct_client_seed,
        percentiles: w.percentiles()?,
        write_config,
        read_config,
    };
    let r = scenario::seed(cfg).await?;
    output(&w, &[("write", &r.write), ("read", &r.read)], r.to_json())?;
    if !w.json {
        println!(
            "== seed scenario: {} keys written, then read back\n{}",
            r.keys_written,
            r.table()
        );
    }
    Ok(0)
}

/// Prints the table(s) (or JSON) and writes the files asked for.
pub fn output(
    a: &BenchArgs,
    runs: &[(&str, &Report)],
    json: serde_json::Value,
) -> anyhow::Result<()> {
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        for (name, r) in runs {
            if runs.len() > 1 {
                println!("== {name}");
            }
            print!("{}", r.render());
            if !a.hide_histogram {
                print!("{}", distribution(r));
            }
        }
    }
    if let Some(f) = &a.json_out_file {
        std::fs::write(f, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("cannot write {}", f.display()))?;
        eprintln!("JSON written to {}", f.display());
    }
    if let Some(prefix) = &a.hdr_file_prefix {
        for (name, r) in runs {
            for (label, s) in r.types.iter().filter(|(_, s)| s.ops > 0) {
                let f = if runs.len() > 1 {
                    format!("{prefix}_{name}_{label}.hgrm")
                } else {
                    format!("{prefix}_{label}.hgrm")
                };
                std::fs::write(&f, hgrm(&s.hist)).with_context(|| format!("cannot write {f}"))?;
            }
        }
    }
    if let Some(f) = &a.chart {
        let phases: Vec<chart::Phase> = runs
            .iter()
            .map(|(name, report)| chart::Phase { name, report })
            .collect();
        let title = format!("redis-ha bench: {}:{}", a.server, a.port);
        match chart::write(f, &title, &phases) {
            Ok(()) => eprintln!("chart written to {}", f.display()),
            // The numbers are already out; a missing font should not fail the run.
            Err(e) => eprintln!("warning: no chart: {e:#}"),
        }
    }
    Ok(())
}

/// A compact latency distribution per type (memtier prints the full one).
fn distribution(r: &Report) -> String {
    let qs = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];
    let mut out = String::from("latency distribution (ms):\n");
    out.push_str(&format!("  {:<8}", "type"));
    for q in qs {
        out.push_str(&format!("{:>10}", format!("p{q}")));
    }
    out.push('\n');
    for (label, s) in r.types.iter().filter(|(_, s)| s.ops > 0) {
        out.push_str(&format!("  {label:<8}"));
        for q in qs {
            out.push_str(&format!(
                "{:>10.3}",
                s.hist.value_at_quantile(q / 100.0) as f64 / 1000.0
            ));
        }
        out.push('\n');
    }
    out
}

/// HdrHistogram's percentile distribution text (the `.hgrm` format), in ms.
fn hgrm(h: &hdrhistogram::Histogram<u64>) -> String {
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut count = 0;
    for v in h.iter_quantiles(1) {
        count += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:.2}", 1.0 / (1.0 - q))
        } else {
            "inf".into()
        };
        out.push_str(&format!(
            "{:>12.3} {:>14.12} {:>10} {:>14}\n",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            count,
            inv
        ));
    }
    out.push_str(&format!(
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]\n",
        h.mean() / 1000.0,
        h.stdev() / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_topology_is_recognised_by_its_endpoints() {
        let dir = std::path::Path::new("/s");
        let mut o = redis_ha_local::Options::with_defaults(Default::default(), dir.into());
        assert!(!serves_tls(&o, "127.0.0.1", 6379), "plain topology");
        o.spec.tls = Some(redis_ha_local::pki::Pki::new(dir).node_files());
        assert!(serves_tls(&o, "127.0.0.1", 6379));
        assert!(serves_tls(&o, "localhost", 6380));
        assert!(serves_tls(&o, "127.0.0.1", 6381), "a Redis node");
        assert!(!serves_tls(&o, "127.0.0.1", 7000), "not one of its ports");
        assert!(!serves_tls(&o, "10.1.1.1", 6379), "another host");
    }
}
