//! Client TLS toward Redis and Sentinel (tls-port): the rustls config,
//! built once from a CA, an optional client certificate and an optional
//! name to verify; the handshake; errors that say which flag to change; and
//! the stream type connections use, plain or TLS. `bench` and the proxy's
//! backend connections both use it; their flags differ by a prefix.

use anyhow::{bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// What the TLS flags ask for.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// Name to verify the server's certificate against (and send as SNI
    /// unless it is an IP address); `None`: the host of each address
    /// connected to (the names or IPs Sentinel announces).
    pub server_name: Option<String>,
    /// CA bundle; `None` = the system's trust store.
    pub cacert: Option<PathBuf>,
    /// Client certificate and key, for servers that ask for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub skip_verify: bool,
    /// Put before the flag names in messages (`""`: `--cacert`;
    /// `"backend-"`: `--backend-cacert`).
    pub flags: &'static str,
}

/// A client config ready for every connection of a run.
pub struct Tls {
    connector: TlsConnector,
    /// The fixed name to verify, if one was given.
    name: Option<ServerName<'static>>,
    flags: &'static str,
    /// For error messages: what the run trusts, whether it has a client cert.
    trust: String,
    client_cert: Option<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("name", &self.name)
            .field("trust", &self.trust)
            .field("client_cert", &self.client_cert)
            .finish()
    }
}

impl Tls {
    pub fn new(s: &TlsSettings) -> anyhow::Result<Tls> {
        // ring, named explicitly: no dependence on a process-wide default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let p = s.flags;
        let name = match &s.server_name {
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| {
                anyhow::anyhow!("--{p}sni {n:?}: not a valid DNS name or IP address")
            })?),
            None => None,
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?;
        let (builder, trust) = if s.skip_verify {
            let v = NoVerify(provider.signature_verification_algorithms);
            let b = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(v));
            (b, format!("nothing (--{p}tls-skip-verify)"))
        } else if let Some(path) = &s.cacert {
            let mut roots = RootCertStore::empty();
            for c in load_certs(path, &format!("--{p}cacert"), "the CA certificate(s)")? {
                roots.add(c).map_err(|e| {
                    anyhow::anyhow!(
                        "--{p}cacert {}: not a usable CA certificate ({e}); give the PEM of the CA that signed the server's certificate",
                        path.display()
                    )
                })?;
            }
            (
                builder.with_root_certificates(roots),
                format!("--{p}cacert {}", path.display()),
            )
        } else {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                bail!(
                    "--{p}tls: no CA certificates in the system trust store{why}; give the CA that signed the server's certificate with --{p}cacert FILE (or install ca-certificates)"
                );
            }
            (
                builder.with_root_certificates(roots),
                "the system's CA certificates".to_string(),
            )
        };
        let config = match (&s.cert, &s.key) {
            (Some(cert), Some(key)) => {
                let chain = load_certs(cert, &format!("--{p}cert"), "the client certificate")?;
                let k = load_key(key, p)?;
                builder.with_client_auth_cert(chain, k).map_err(|e| {
                    anyhow::anyhow!(
                        "--{p}cert {} / --{p}key {}: cannot use this certificate and key together ({e}); is the key the certificate's?",
                        cert.display(),
                        key.display()
                    )
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                bail!("--{p}cert needs --{p}key FILE: the client certificate's private key")
            }
            (None, Some(_)) => bail!("--{p}key needs --{p}cert FILE: the client certificate"),
        };
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
            flags: p,
            trust,
            client_cert: s.cert.clone(),
        })
    }

    /// The handshake over `tcp`, connected to `addr` (`host:port`), whose
    /// host is the name verified unless a fixed one was given.
    pub async fn handshake(&self, addr: &str, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let name = match &self.name {
            Some(n) => n.clone(),
            None => name_of(addr)?,
        };
        self.connector.connect(name, tcp).await
    }

    /// [`Tls::handshake`] within `timeout`, its errors explained: the stream,
    /// or a message that says what to change.
    pub async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
        timeout: std::time::Duration,
    ) -> Result<Stream, HandshakeError> {
        match tokio::time::timeout(timeout, self.handshake(addr, tcp)).await {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => Err(match self.explain(addr, &e) {
                Some(msg) => HandshakeError::Refused(msg),
                None => HandshakeError::Broken(format!("TLS handshake with {addr}: {e}")),
            }),
            Err(_) => Err(HandshakeError::Timeout(format!(
                "no TLS handshake with {addr} within {timeout:?}"
            ))),
        }
    }

    /// A clear message for a TLS error (during the handshake or the first
    /// exchange after it, where TLS 1.3 reports a refused client
    /// certificate); `None` if `e` is not a TLS error but plain I/O (reset,
    /// closed), which a reconnect may fix.
    pub fn explain(&self, addr: &str, e: &io::Error) -> Option<String> {
        let err = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        use rustls::Error as E;
        let p = self.flags;
        Some(match err {
            E::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "{addr}: TLS certificate verification failed: {err}; give the name it was issued for with --{p}sni NAME (or --{p}tls-skip-verify, for tests only)"
            ),
            E::InvalidCertificate(_) => format!(
                "{addr}: TLS certificate verification failed: {err}; this run trusts {}: give the CA that signed the server's certificate with --{p}cacert FILE (or --{p}tls-skip-verify, for tests only)",
                self.trust
            ),
            E::AlertReceived(
                a @ (AlertDescription::CertificateRequired
                | AlertDescription::HandshakeFailure
                | AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied),
            ) => match &self.client_cert {
                None => format!(
                    "{addr}: the server refused the TLS connection ({a:?}): it wants a client certificate (Redis: tls-auth-clients yes); give --{p}cert FILE --{p}key FILE"
                ),
                Some(c) => format!(
                    "{addr}: the server refused the TLS connection ({a:?}): it did not accept the client certificate --{p}cert {}; is it signed by a CA the server trusts (Redis: tls-ca-cert-file)?",
                    c.display()
                ),
            },
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
                "{addr}: TLS handshake failed ({err}): is this a TLS port (Redis: tls-port)? For a plain port drop --{p}tls"
            ),
            _ => format!("{addr}: TLS handshake failed: {err}"),
        })
    }
}

fn read_pem(path: &Path, flag: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: cannot read {what}: {e}; give the path of a PEM file",
            path.display()
        )
    })
}

fn load_certs(path: &Path, flag: &str, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read_pem(path, flag, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{flag} {}: not a valid PEM file ({e})", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{flag} {}: no certificate in it; give {what} in PEM (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

fn load_key(path: &Path, p: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read_pem(path, &format!("--{p}key"), "the client key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => anyhow::anyhow!(
            "--{p}key {}: no private key in it; give the client certificate's key in PEM (-----BEGIN PRIVATE KEY-----, or RSA/EC PRIVATE KEY)",
            path.display()
        ),
        e => anyhow::anyhow!("--{p}key {}: not a valid PEM file ({e})", path.display()),
    })
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// A TLS error a reconnect will not fix (certificate, CA, not a TLS
    /// port): the message says what to change.
    Refused(String),
    /// The connection broke during the handshake.
    Broken(String),
    Timeout(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Refused(m) | HandshakeError::Broken(m) | HandshakeError::Timeout(m) => {
                f.write_str(m)
            }
        }
    }
}

/// The name to verify for `host:port` (or `[v6]:port`): an IP address or a
/// DNS name.
pub fn name_of(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: {host:?} is not a DNS name or IP address to verify a certificate for"),
        )
    })
}

/// --tls-skip-verify: accepts any certificate, but still checks that the
/// server holds its key (the handshake signatures).
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A connection's byte stream. An enum rather than `Box<dyn>` so
/// plain TCP pays one predictable branch per poll, not an indirect call.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_to_verify_is_the_host_of_the_address() {
        let ip = |s: &str| ServerName::IpAddress(s.parse::<std::net::IpAddr>().unwrap().into());
        assert_eq!(name_of("127.0.0.1:6379").unwrap(), ip("127.0.0.1"));
        assert_eq!(name_of("[::1]:6379").unwrap(), ip("::1"));
        assert_eq!(
            name_of("redis-0.redis.ns.svc:6379").unwrap(),
            ServerName::try_from("redis-0.redis.ns.svc").unwrap()
        );
        assert!(name_of("bad host:1").is_err());
    }
}
