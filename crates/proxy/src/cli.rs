//! `redis-ha proxy` command line.

use crate::config::{ConnMode, ProxyConfig, ReadBalance, ReadFallback};
use crate::secret;
use redis_ha_resp::tls::{Tls, TlsSettings};
use redis_ha_resp::Login;
use redis_ha_topology::addr;
use std::time::Duration;

/// Sentinel-aware RESP proxy: clients connect to one address and never need to
/// know a failover happened.
///
/// Writes (port 6379) go to the master the sentinels agree on, verified with
/// ROLE; reads (port 6380) go to healthy replicas. During a failover commands
/// are held (up to --failover-hold) instead of failing, and re-sent to the new
/// master. Admin page, /metrics, /api/status, /healthz, /readyz on port 8404.
///
/// Example:
///   redis-ha proxy --sentinel 127.0.0.1:26380 --sentinel 127.0.0.1:26381 --sentinel 127.0.0.1:26382
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("password_given").args(["password", "password_file"])))]
#[command(group(
    clap::ArgGroup::new("sentinel_password_given").args(["sentinel_password", "sentinel_password_file"])
))]
pub struct ProxyArgs {
    /// Sentinel address (repeatable; more are discovered from the first ones).
    #[arg(long = "sentinel", value_name = "HOST:PORT", required = true)]
    pub sentinels: Vec<String>,
    /// Sentinel's name for the master.
    #[arg(long, default_value = "mymaster")]
    pub master_name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Write endpoint port (every command goes to the master); 0 turns the
    /// plain endpoint off, for TLS only (with --tls-port), as Redis's port 0
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// Read endpoint port (commands go to healthy replicas); 0 turns it off
    #[arg(long, default_value_t = 6380)]
    pub read_port: u16,
    /// Admin HTTP port (dashboard, /metrics, /api/status, /healthz, /readyz).
    #[arg(long, default_value_t = 8404)]
    pub admin_port: u16,
    /// How long commands wait for a master during a failover before failing
    /// with TRYAGAIN (0 disables holding).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub failover_hold: Duration,
    /// Replicas acknowledging replication less often than this leave the read rotation.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub max_replica_lag: Duration,
    /// With no healthy replica: read from the master, or refuse with an error.
    #[arg(long, value_enum, default_value = "master")]
    pub read_fallback: ReadFallback,
    /// How read connections are spread over replicas.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub read_balance: ReadBalance,
    /// Without a sentinel majority and a reachable master for this long, stop
    /// routing writes (fail closed) instead of guessing.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub quorum_timeout: Duration,
    /// Backend connections. multiplex: stateless commands of all clients
    /// share a few pipelined connections per node (fewer connections and
    /// syscalls on Redis); a client that goes stateful (MULTI, WATCH, SELECT,
    /// SUBSCRIBE, blocking commands, AUTH, HELLO, CLIENT ...) moves to its
    /// own connection. dedicated: one backend connection per client.
    #[arg(long, value_enum, default_value = "multiplex")]
    pub mode: ConnMode,
    /// Worker threads. 1 runs everything on one thread, with no cross-thread
    /// wake-ups: best where the proxy shares a few cores with Redis (as in
    /// `redis-ha up`). Raise it when the proxy has cores of its own.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Shared connections per Redis node in multiplex mode.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub mux_connections: u16,
    /// ACL user the proxy logs in to Redis as (with --password or
    /// --password-file), e.g. the `proxy` user of `redis-ha up --acl`; without
    /// it, the default user. In multiplex mode clients that log in as this
    /// user share the proxy's connections; any other login is judged by
    /// Redis and gets a dedicated connection (it may have other rights)
    #[arg(
        long,
        env = "REDIS_HA_USER",
        value_name = "USER",
        requires = "password_given"
    )]
    pub user: Option<String>,
    /// Password for the Redis nodes (of --user, else of the default user).
    /// Clients of the proxy must then log in too (AUTH PASSWORD, AUTH USER
    /// PASSWORD, HELLO 3 AUTH ...), as they would with Redis, unless
    /// --client-auth none (visible to `ps`: prefer --password-file)
    #[arg(long, env = "REDIS_HA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// --password read from this file (its first line), so it stays off the
    /// command line
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    pub password_file: Option<std::path::PathBuf>,
    /// Whether clients must log in when --password is set. none: the proxy
    /// logs in for clients that send no AUTH, so anyone who can reach its
    /// ports can use Redis (only for a trusted network, e.g. a sidecar)
    #[arg(long, value_enum, default_value = "required")]
    pub client_auth: ClientAuth,
    /// ACL user for the sentinels (with --sentinel-password[-file]); without
    /// it, the sentinels' default user
    #[arg(long, value_name = "USER", requires = "sentinel_password_given")]
    pub sentinel_user: Option<String>,
    /// Password for the sentinels, if they require one.
    #[arg(long, env = "REDIS_HA_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    /// --sentinel-password read from this file (its first line)
    #[arg(long, value_name = "FILE", conflicts_with = "sentinel_password")]
    pub sentinel_password_file: Option<std::path::PathBuf>,
    /// Bearer token (first line of FILE) the admin endpoint then requires
    /// for everything but /healthz and /readyz: `curl -H "Authorization:
    /// Bearer $(cat FILE)" http://HOST:8404/metrics`, or in a browser
    /// http://HOST:8404/?token=TOKEN (the dashboard passes it on). Without
    /// it the admin endpoint is open to whoever reaches its port
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Commands refused at the proxy, comma-separated; a subcommand as
    /// "CLIENT KILL" or CLIENT|KILL; "" allows all. The default keeps one
    /// client from stopping, reconfiguring or freezing the cluster behind
    /// the proxy, or killing the proxy's shared connections. SYNC/PSYNC are
    /// always refused (a replication stream cannot pass the proxy)
    #[arg(long, default_value = crate::data::deny::DEFAULT)]
    pub deny_commands: String,
    /// Replies held for one client (unread, or waiting behind an earlier
    /// one), past which it is closed, as by Redis's
    /// client-output-buffer-limit: on a shared connection (multiplex mode)
    /// and for a subscriber (at most 32mb). From 1mb held the proxy stops
    /// reading the client's requests and, on a dedicated connection, reading
    /// from Redis, until the client reads: a dedicated client is paused,
    /// not closed. Units: b, kb, mb, gb
    #[arg(long, default_value = "32mb", value_parser = parse_size)]
    pub client_output_limit: usize,
    /// Replies held for all clients together, past which every client
    /// holding more than 64kb is paused, and one on a shared connection
    /// holding more than 1mb is closed (as Redis's maxmemory-clients)
    #[arg(long, default_value = "128mb", value_parser = parse_size)]
    pub client_output_total: usize,
    /// Close a client idle for this long (0: never, as Redis's timeout).
    /// Subscribers are never closed for being idle
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// On SIGTERM (or POST /drain on the admin port) the proxy drains:
    /// /readyz turns not ready at once and the ports keep accepting for this
    /// long (time for a load balancer to stop sending clients), then close
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub drain_grace: Duration,
    /// Then each client gets the replies to everything already sent to
    /// Redis and is closed between requests (idle ones at once; a request
    /// read but not sent gets a TRYAGAIN "not run"). Clients still busy
    /// after this are cut, and the exit code is 3 instead of 0. A second
    /// SIGTERM or Ctrl-C cuts at once
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Listen with SO_REUSEPORT, beside an older proxy started with it too,
    /// and take every new connection from it: a restart without refused
    /// connections (start the new proxy, then SIGTERM the old one, which
    /// drains). `redis-ha up` / `node restart proxy` use it. Without it a
    /// port in use is an error
    #[arg(long)]
    pub reuse_port: bool,
    /// Clients connected at once over the write and read ports, as Redis's
    /// maxclients: one more gets `-ERR max number of clients reached`.
    /// Lowered at start (with a warning) if the open-file limit is too low.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub maxclients: u64,
    /// Acknowledge a write to the client only once N replicas have it:
    /// after each batch of writes the proxy sends `WAIT N MS` (one per batch,
    /// not per command) and holds the replies until it answers. Fewer than N
    /// within the timeout: each write gets `-NOREPLICAS` (it ran on the
    /// master and may be lost in a failover). Closes the window asynchronous
    /// replication leaves, at a cost in latency (see benchmarks/).
    /// Format: replicas=N[,timeout=MS] (timeout default 500)
    #[arg(long, value_name = "replicas=N[,timeout=MS]", value_parser = crate::data::ack::WriteAck::parse)]
    pub write_ack: Option<crate::data::ack::WriteAck>,
    /// A name for a node's address on the dashboard and in /api/status
    /// (repeatable), e.g. `--node-name 127.0.0.1:6381=redis-0`; `redis-ha up`
    /// passes its nodes' names. Unnamed nodes known by a hostname show its
    /// first label (`redis-1` for `redis-1.redis-headless:6379`)
    #[arg(long = "node-name", value_name = "ADDR=NAME", value_parser = parse_node_name)]
    pub node_names: Vec<(String, String)>,
    /// TLS write endpoint port, beside the plain one (as Redis's tls-port);
    /// needs --tls-cert-file and --tls-key-file
    #[arg(long, value_name = "PORT", requires_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_port: Option<u16>,
    /// TLS read endpoint port, beside the plain one
    #[arg(long, value_name = "PORT", requires_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_read_port: Option<u16>,
    /// PEM certificate (chain) the TLS endpoints present. Reloaded, with the
    /// key and CA, on SIGHUP (open connections keep theirs)
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert-file
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<std::path::PathBuf>,
    /// PEM CA bundle client certificates must chain to
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert_file: Option<std::path::PathBuf>,
    /// Client certificates on the TLS endpoints, as Redis's
    /// tls-auth-clients: yes (required), optional (checked if given), no
    #[arg(long, value_enum, default_value = "yes")]
    pub tls_auth_clients: crate::data::tls::AuthClients,
    /// TLS toward Redis and the sentinels (their tls-port): every
    /// connection the proxy makes, verified against --backend-cacert (or the
    /// system's CAs) for the name or IP each address has (the ones Sentinel
    /// announces), unless --backend-sni gives one name for all
    #[arg(long, help_heading = "TLS toward Redis and Sentinel")]
    pub backend_tls: bool,
    /// PEM CA bundle the nodes' certificates must chain to (Redis:
    /// tls-ca-cert-file)
    #[arg(
        long,
        value_name = "FILE",
        requires = "backend_tls",
        help_heading = "TLS toward Redis and Sentinel"
    )]
    pub backend_cacert: Option<std::path::PathBuf>,
    /// PEM client certificate, for nodes with tls-auth-clients yes; needs
    /// --backend-key
    #[arg(long, value_name = "FILE", requires_all = ["backend_tls", "backend_key"], help_heading = "TLS toward Redis and Sentinel")]
    pub backend_cert: Option<std::path::PathBuf>,
    /// PEM private key of --backend-cert
    #[arg(long, value_name = "FILE", requires_all = ["backend_tls", "backend_cert"], help_heading = "TLS toward Redis and Sentinel")]
    pub backend_key: Option<std::path::PathBuf>,
    /// One name to verify every node's certificate for (and send as SNI),
    /// when the certificates do not name the addresses Sentinel announces
    #[arg(
        long,
        value_name = "NAME",
        requires = "backend_tls",
        help_heading = "TLS toward Redis and Sentinel"
    )]
    pub backend_sni: Option<String>,
}

/// `ADDR=NAME` of `--node-name`.
pub fn parse_node_name(s: &str) -> Result<(String, String), String> {
    match s.rsplit_once('=') {
        Some((a, n)) if redis_ha_topology::split_addr(a).is_some() && !n.trim().is_empty() => {
            Ok((a.to_string(), n.trim().to_string()))
        }
        _ => Err(format!(
            "{s:?} is not ADDR=NAME (e.g. 127.0.0.1:6381=redis-0)"
        )),
    }
}

/// A size as Redis writes it: 1024, 64kb, 512mb, 1gb (k/m/g: powers of 1000).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: usize = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512mb, 64kb, 1048576)"))?;
    let mult: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use b, kb, mb or gb)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The login for `user` (none: the default user) when a password is given,
/// inline or in a file (`flag` names the file option in errors).
fn login(
    flag: &str,
    user: Option<&str>,
    inline: Option<&str>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<Login>> {
    let password = secret::inline_or_file(flag, inline, file)?;
    Ok(password.map(|password| Login {
        user: user.map(str::to_string),
        password,
    }))
}

impl ProxyArgs {
    pub fn config(&self) -> anyhow::Result<ProxyConfig> {
        for s in &self.sentinels {
            anyhow::ensure!(
                redis_ha_topology::split_addr(s).is_some(),
                "--sentinel {s:?} is not HOST:PORT (e.g. 127.0.0.1:26379)"
            );
        }
        Ok(ProxyConfig {
            sentinels: self.sentinels.clone(),
            master_name: self.master_name.clone(),
            login: login(
                "--password-file",
                self.user.as_deref(),
                self.password.as_deref(),
                self.password_file.as_deref(),
            )?,
            client_auth: self.client_auth == ClientAuth::Required,
            sentinel_login: login(
                "--sentinel-password-file",
                self.sentinel_user.as_deref(),
                self.sentinel_password.as_deref(),
                self.sentinel_password_file.as_deref(),
            )?,
            // Port 0 turns a plain endpoint off, as Redis's `port 0`.
            write_listen: (self.port != 0).then(|| addr(&self.bind, self.port)),
            read_listen: (self.read_port != 0).then(|| addr(&self.bind, self.read_port)),
            admin_listen: addr(&self.bind, self.admin_port),
            failover_hold: self.failover_hold,
            max_replica_lag: self.max_replica_lag,
            read_fallback: self.read_fallback,
            read_balance: self.read_balance,
            quorum_timeout: self.quorum_timeout,
            poll_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            mode: self.mode,
            mux_connections: self.mux_connections.into(),
            deny_commands: self.deny_commands.clone(),
            client_output_limit: self.client_output_limit,
            client_output_total: self.client_output_total,
            idle_timeout: self.timeout,
            reuse_port: self.reuse_port,
            maxclients: self.maxclients as usize,
            write_ack: self.write_ack,
            node_names: self.node_names.clone(),
            admin_token: self
                .admin_token_file
                .as_deref()
                .map(|p| secret::read_file("--admin-token-file", p))
                .transpose()?,
            tls: self.tls()?,
            backend_tls: self.backend_tls()?,
        })
    }

    /// The TLS endpoints asked for; certificate flags without a TLS port
    /// are a mistake worth saying.
    /// The client config toward the nodes (reads the PEM files), if asked.
    fn backend_tls(&self) -> anyhow::Result<Option<std::sync::Arc<Tls>>> {
        if !self.backend_tls {
            return Ok(None);
        }
        let settings = TlsSettings {
            server_name: self.backend_sni.clone(),
            cacert: self.backend_cacert.clone(),
            cert: self.backend_cert.clone(),
            key: self.backend_key.clone(),
            skip_verify: false,
            flags: "backend-",
        };
        Ok(Some(std::sync::Arc::new(Tls::new(&settings)?)))
    }

    fn tls(&self) -> anyhow::Result<Option<crate::config::TlsEndpoints>> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            anyhow::ensure!(
                self.tls_cert_file.is_none() && self.tls_key_file.is_none(),
                "--tls-cert-file and --tls-key-file go together (with --tls-port and/or --tls-read-port)"
            );
            return Ok(None);
        };
        anyhow::ensure!(
            self.tls_port.is_some() || self.tls_read_port.is_some(),
            "--tls-cert-file is set but no TLS endpoint is: add --tls-port PORT and/or --tls-read-port PORT"
        );
        Ok(Some(crate::config::TlsEndpoints {
            files: crate::data::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: self.tls_ca_cert_file.clone(),
                auth_clients: self.tls_auth_clients,
            },
            write_listen: self.tls_port.map(|p| addr(&self.bind, p)),
            read_listen: self.tls_read_port.map(|p| addr(&self.bind, p)),
        }))
    }
}

/// The runtime `--threads` asks for.
pub fn runtime(a: &ProxyArgs) -> std::io::Result<tokio::runtime::Runtime> {
    if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads.into())
            .enable_all()
            .build()
    }
}

/// Where it listens: `write 127.0.0.1:6379  write (TLS) ...  admin http://.../`.
fn listening(h: &crate::server::ProxyHandle) -> String {
    let eps = [
        ("write", h.plain_write_addr),
        ("write (TLS)", h.tls_write_addr),
        ("read", h.plain_read_addr),
        ("read (TLS)", h.tls_read_addr),
    ];
    let mut out: Vec<String> = eps
        .iter()
        .filter_map(|(what, a)| a.map(|a| format!("{what} {a}")))
        .collect();
    out.push(format!("admin http://{}/", h.admin_addr));
    out.join("  ")
}

pub async fn run(a: ProxyArgs) -> anyhow::Result<u8> {
    let cfg = a.config()?;
    let mut h = crate::server::start(cfg).await?;
    // Where it listens goes to stdout: stderr carries only log lines, so
    // with --log-format json every line there is one JSON object.
    println!("redis-ha proxy: {}", listening(&h));
    match h.wait_master(Duration::from_secs(5)).await {
        Ok(m) => println!("master {m}"),
        Err(e) => tracing::warn!("{e:#}; commands are held until one is known"),
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let asked = h.drain_state.clone();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = asked.requested() => {}
    }
    let drained = tokio::select! {
        d = h.drain(a.drain_grace, a.drain_timeout) => d,
        _ = tokio::signal::ctrl_c() => crate::data::drain::Drained::TimedOut { sessions: h.slots.used() },
        _ = term.recv() => crate::data::drain::Drained::TimedOut { sessions: h.slots.used() },
    };
    h.shutdown();
    Ok(drained.exit_code())
}

#[cfg(test)]
mod tests {
    use super::{parse_node_name, parse_size, Login, ProxyArgs};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: ProxyArgs,
    }

    fn config(extra: &[&str]) -> Result<crate::config::ProxyConfig, String> {
        let a = parse(extra).map_err(|e| e.to_string())?;
        a.config().map_err(|e| e.to_string())
    }

    #[test]
    fn port_0_turns_a_plain_endpoint_off() {
        let c = config(&["--port", "0", "--read-port", "0"]).unwrap();
        assert_eq!((c.write_listen, c.read_listen), (None, None));
        let c = config(&[]).unwrap();
        assert_eq!(c.write_listen.as_deref(), Some("127.0.0.1:6379"));
    }

    #[test]
    fn tls_flags_go_together() {
        assert_eq!(config(&[]).unwrap().tls, None);
        let files = ["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"];
        let mut with_port = files.to_vec();
        with_port.extend(["--tls-port", "6389", "--tls-auth-clients", "optional"]);
        let tls = config(&with_port).unwrap().tls.unwrap();
        assert_eq!(tls.write_listen.as_deref(), Some("127.0.0.1:6389"));
        assert_eq!(tls.read_listen, None);
        assert_eq!(
            tls.files.auth_clients,
            crate::data::tls::AuthClients::Optional
        );
        let e = config(&files).unwrap_err();
        assert!(e.contains("add --tls-port"), "{e}");
        let e = config(&["--tls-port", "6389"]).unwrap_err();
        assert!(e.contains("--tls-cert-file"), "{e}");
        let e = config(&["--tls-cert-file", "c.pem"]).unwrap_err();
        assert!(e.contains("go together"), "{e}");
    }

    fn parse(extra: &[&str]) -> Result<ProxyArgs, clap::Error> {
        let base = ["proxy", "--sentinel", "127.0.0.1:26379"];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.a)
    }

    #[test]
    fn secret_files() {
        let dir = std::env::temp_dir().join(format!("redis-ha-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pw, tok) = (dir.join("pw"), dir.join("tok"));
        std::fs::write(&pw, "from-file\n").unwrap();
        std::fs::write(&tok, "t0ken\n").unwrap();
        let (pws, toks) = (pw.to_str().unwrap(), tok.to_str().unwrap());
        let c = parse(&["--password-file", pws, "--sentinel-password-file", pws])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(c.login, Some(Login::default_user("from-file")));
        assert_eq!(c.sentinel_login, Some(Login::default_user("from-file")));
        let c = parse(&[
            "--user",
            "proxy",
            "--password-file",
            pws,
            "--sentinel-user",
            "s",
        ])
        .unwrap_err()
        .to_string();
        assert!(c.contains("--sentinel-password"), "{c}");
        let c = parse(&["--user", "proxy", "--password-file", pws])
            .unwrap()
            .config()
            .unwrap();
        let proxy = Login {
            user: Some("proxy".into()),
            password: "from-file".into(),
        };
        assert_eq!(c.login, Some(proxy));
        let e = parse(&["--user", "proxy"]).unwrap_err().to_string();
        assert!(e.contains("--password"), "{e}");
        let c = parse(&["--admin-token-file", toks])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(c.admin_token.as_deref(), Some("t0ken"));
        assert!(parse(&["--password", "x", "--password-file", pws]).is_err());
        let missing = dir.join("nope");
        let e = parse(&["--password-file", missing.to_str().unwrap()])
            .unwrap()
            .config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--password-file") && e.contains("nope"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn node_names() {
        assert_eq!(
            parse_node_name("127.0.0.1:6381=redis-0"),
            Ok(("127.0.0.1:6381".into(), "redis-0".into()))
        );
        assert!(parse_node_name("redis-0").is_err());
        assert!(parse_node_name("127.0.0.1=redis-0").is_err());
        assert!(parse_node_name("127.0.0.1:6381=").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("64KB"), Ok(64 << 10));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5tb").is_err());
    }
}

/// `--client-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// Clients log in with the password before anything else.
    Required,
    /// Clients need not log in; the proxy does it for them.
    None,
}
