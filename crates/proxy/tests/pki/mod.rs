//! A test PKI in a temporary directory: a CA, another CA nobody trusts, and
//! certificates signed by the first (`NAME.pem` / `NAME.key`): `server`,
//! `client`, `expired`, and `node` (server and client use, as Redis and
//! Sentinel need with tls-replication), `node-expired`.

#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis_ha_proxy::data::tls::{AuthClients, TlsFiles};
use redis_ha_resp::tls::{Tls, TlsSettings};
use std::path::PathBuf;
use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};

/// A CA, another CA, and certificates signed by the first.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (other, _) = new_ca("some other CA");
        std::fs::write(dir.path().join("other-ca.pem"), other).unwrap();
        let (ca_pem, ca) = new_ca("redis-ha test CA");
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        let pki = Pki { dir, ca };
        pki.issue("server", &[ServerAuth], false);
        pki.issue("client", &[ClientAuth], false);
        pki.issue("expired", &[ServerAuth], true);
        // Redis and Sentinel present theirs both ways (replication, peers).
        pki.issue("node", &[ServerAuth, ClientAuth], false);
        pki.issue("node-expired", &[ServerAuth, ClientAuth], true);
        pki
    }

    /// `NAME.pem` and `NAME.key`, for localhost/127.0.0.1.
    pub fn issue(&self, name: &str, usages: &[ExtendedKeyUsagePurpose], expired: bool) {
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.use_authority_key_identifier_extension = true;
        p.key_usages.push(KeyUsagePurpose::DigitalSignature);
        p.extended_key_usages.extend(usages.iter().cloned());
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn files(&self, cert: &str, auth: AuthClients) -> TlsFiles {
        TlsFiles {
            cert: self.path(&format!("{cert}.pem")),
            key: self.path(&format!("{cert}.key")),
            ca: Some(self.path("ca.pem")),
            auth_clients: auth,
        }
    }

    /// A client trusting `ca_file`, with the client certificate or without.
    pub fn client(&self, ca_file: &str, with_cert: bool) -> Tls {
        Tls::new(&TlsSettings {
            server_name: Some("localhost".into()),
            cacert: Some(self.path(ca_file)),
            cert: with_cert.then(|| self.path("client.pem")),
            key: with_cert.then(|| self.path("client.key")),
            skip_verify: false,
            flags: "",
        })
        .unwrap()
    }
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages.push(KeyUsagePurpose::KeyCertSign);
    p.key_usages.push(KeyUsagePurpose::DigitalSignature);
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(p, key))
}
