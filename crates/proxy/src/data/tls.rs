//! TLS on the client endpoints (`--tls-port`, `--tls-read-port`): the
//! rustls server config built from `--tls-cert-file`, `--tls-key-file` and
//! `--tls-ca-cert-file` with `--tls-auth-clients` (Redis's names and
//! meanings), rebuilt on SIGHUP without touching open connections, and the
//! handshake each accepted client goes through.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `--tls-auth-clients`, as Redis's `tls-auth-clients`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthClients {
    /// A client certificate signed by the CA is required.
    #[default]
    Yes,
    /// Client certificates are not asked for.
    No,
    /// A client certificate is checked if one is given.
    Optional,
}

/// The files and policy the TLS endpoints are built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that client certificates must chain to (needed unless `auth_clients` is no).
    pub ca: Option<PathBuf>,
    pub auth_clients: AuthClients,
}

/// The server config in force; [`Terminator::reload`] swaps it.
pub struct Terminator {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Terminator {
    /// Loads the files once; an error names the file and what is wrong.
    pub fn new(files: TlsFiles) -> anyhow::Result<Arc<Terminator>> {
        let cfg = server_config(&files)?;
        Ok(Arc::new(Terminator {
            files,
            current: RwLock::new(cfg),
        }))
    }

    /// Re-reads the files; on error the old config stays (and is said).
    pub fn reload(&self) -> anyhow::Result<()> {
        let cfg = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = cfg;
        Ok(())
    }

    /// The handshake of one client, with [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, sock: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let cfg = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let hs = tokio_rustls::TlsAcceptor::from(cfg).accept(sock);
        tokio::time::timeout(HANDSHAKE_TIMEOUT, hs)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })?
    }

    /// Reloads on every SIGHUP until the process ends. The handler is
    /// installed here, at once (a SIGHUP before it would end the process),
    /// the waiting happens in the returned future.
    pub fn reload_on_sighup(self: Arc<Self>) -> impl std::future::Future<Output = ()> {
        use tokio::signal::unix::{signal, SignalKind};
        let hup = signal(SignalKind::hangup());
        async move {
            let Ok(mut hup) = hup else {
                tracing::warn!("cannot watch SIGHUP: TLS certificates will not be reloaded");
                return;
            };
            self.reload_each(&mut hup).await;
        }
    }

    async fn reload_each(&self, hup: &mut tokio::signal::unix::Signal) {
        while hup.recv().await.is_some() {
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificates reloaded")
                }
                Err(e) => tracing::error!("TLS reload failed, keeping the old certificates: {e:#}"),
            }
        }
    }
}

/// The rustls server config for `files`.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&files.cert, "--tls-cert-file")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| {
        format!(
            "--tls-key-file {}: no PEM private key could be read",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match (files.auth_clients, &files.ca) {
        (AuthClients::No, _) => builder.with_no_client_auth(),
        (_, None) => anyhow::bail!(
            "--tls-auth-clients {:?} needs --tls-ca-cert-file (the CA client certificates are checked against), or use --tls-auth-clients no",
            files.auth_clients
        ),
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca, "--tls-ca-cert-file")? {
                roots
                    .add(c)
                    .with_context(|| format!("--tls-ca-cert-file {}", ca.display()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = match auth {
                AuthClients::Optional => v.allow_unauthenticated(),
                _ => v,
            };
            builder.with_client_cert_verifier(v.build().context("client certificate verifier")?)
        }
    };
    let cfg = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "--tls-cert-file {} and --tls-key-file {} do not make a usable pair",
            files.cert.display(),
            files.key.display()
        )
    })?;
    Ok(Arc::new(cfg))
}

/// Every certificate in a PEM file; none is an error naming the flag.
fn read_certs(path: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{flag} {}: cannot read it", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{flag} {}: not a PEM certificate file", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{flag} {}: holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}
