//! `up --tls`: a private CA and certificates in `STATE/tls/`, generated once
//! (rcgen) and kept across restarts. `node.crt` serves every Redis node,
//! Sentinel and the proxy, as server and as client (replication, Sentinel
//! to Redis and its peers, the proxy to both), so it carries both extended
//! key usages; `client.crt` is for people and tools connecting directly to
//! a node (`tls-auth-clients yes`). `ca.crt` is what clients trust.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis_ha_resp::tls::{Tls, TlsSettings};
use redis_ha_topology::TlsFiles;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};

/// The files of a state dir's PKI.
#[derive(Clone, Debug, PartialEq)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(state_dir: &Path) -> Pki {
        Pki {
            dir: state_dir.join("tls"),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn node_cert(&self) -> PathBuf {
        self.dir.join("node.crt")
    }
    pub fn node_key(&self) -> PathBuf {
        self.dir.join("node.key")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The TLS every client of the topology uses: trust its CA, present
    /// its client certificate (the nodes require one).
    pub fn client_tls(&self) -> anyhow::Result<Arc<Tls>> {
        let tls = Tls::new(&TlsSettings {
            server_name: None,
            cacert: Some(self.ca()),
            cert: Some(self.client_cert()),
            key: Some(self.client_key()),
            skip_verify: false,
            flags: "",
        })
        .with_context(|| format!("the TLS files in {} do not load", self.dir.display()))?;
        Ok(Arc::new(tls))
    }

    /// What the nodes' configs name (`Spec::tls`).
    pub fn node_files(&self) -> TlsFiles {
        let s = |p: PathBuf| p.display().to_string();
        TlsFiles {
            cert_file: s(self.node_cert()),
            key_file: s(self.node_key()),
            ca_cert_file: s(self.ca()),
        }
    }

    /// Generates the CA and certificates unless all files exist. `hosts`
    /// (the bind addresses) are in the node certificate beside localhost
    /// and 127.0.0.1, so the names Sentinel announces verify.
    pub fn ensure(&self, hosts: &[&str]) -> anyhow::Result<()> {
        let all = [
            self.ca(),
            self.node_cert(),
            self.node_key(),
            self.client_cert(),
            self.client_key(),
        ];
        if all.iter().all(|p| p.exists()) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        crate::secrets::make_private(&self.dir)?;
        let (ca_pem, ca) = new_ca()?;
        std::fs::write(self.ca(), ca_pem)?;
        let (cert, key) = issue(
            &ca,
            "redis-ha node",
            &sans(hosts),
            &[ServerAuth, ClientAuth],
        )?;
        std::fs::write(self.node_cert(), cert)?;
        crate::secrets::write_private(&self.node_key(), &key)?;
        let (cert, key) = issue(&ca, "redis-ha client", &[], &[ClientAuth])?;
        std::fs::write(self.client_cert(), cert)?;
        crate::secrets::write_private(&self.client_key(), &key)?;
        Ok(())
    }
}

/// The node certificate's names: localhost, loopback and the bind addresses.
pub fn sans(hosts: &[&str]) -> Vec<String> {
    let mut v = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for host in hosts {
        if !v.iter().any(|s| s == host) && !host.is_empty() && *host != "0.0.0.0" {
            v.push(host.to_string());
        }
    }
    v
}

fn new_ca() -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "redis-ha local CA");
    p.key_usages.push(KeyUsagePurpose::KeyCertSign);
    p.key_usages.push(KeyUsagePurpose::DigitalSignature);
    let key = KeyPair::generate()?;
    let pem = p.self_signed(&key)?.pem();
    Ok((pem, Issuer::new(p, key)))
}

/// A certificate and its key (PEM), signed by `ca`, valid ten years.
fn issue(
    ca: &Issuer<'static, KeyPair>,
    cn: &str,
    names: &[String],
    usages: &[ExtendedKeyUsagePurpose],
) -> anyhow::Result<(String, String)> {
    let mut p = CertificateParams::new(names.to_vec())?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.use_authority_key_identifier_extension = true;
    p.key_usages.push(KeyUsagePurpose::DigitalSignature);
    p.extended_key_usages.extend(usages.iter().cloned());
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bind_address_is_named_once() {
        assert_eq!(sans(&["127.0.0.1"]), ["localhost", "127.0.0.1"]);
        assert_eq!(sans(&["10.0.0.5"]), ["localhost", "127.0.0.1", "10.0.0.5"]);
        assert_eq!(sans(&["0.0.0.0"]), ["localhost", "127.0.0.1"]);
        let two = sans(&["10.0.0.5", "10.0.0.6", "10.0.0.5"]);
        assert_eq!(two, ["localhost", "127.0.0.1", "10.0.0.5", "10.0.0.6"]);
    }

    #[test]
    fn files_are_generated_once_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        pki.ensure(&["127.0.0.1"]).unwrap();
        let ca = std::fs::read(pki.ca()).unwrap();
        pki.ensure(&["127.0.0.1"]).unwrap();
        assert_eq!(
            std::fs::read(pki.ca()).unwrap(),
            ca,
            "kept, not regenerated"
        );
        for k in [pki.node_key(), pki.client_key()] {
            let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", k.display());
        }
        assert_eq!(
            pki.node_files().ca_cert_file,
            pki.ca().display().to_string()
        );
    }
}
