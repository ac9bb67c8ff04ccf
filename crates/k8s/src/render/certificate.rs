//! The optional cert-manager Certificate for `--tls-secret` (rendered with
//! `--cert-manager-issuer`): cert-manager writes the Secret the pods mount,
//! with `ca.crt` when the issuer is a CA (the CA or self-signed issuers,
//! not ACME). A CRD, so plain JSON as the monitoring component's.

use super::meta::labels;
use crate::options::RenderOptions;
use serde_json::{json, Value};

/// The Certificate, or `None` without `--cert-manager-issuer`. One
/// certificate serves every node as server and as client (replication,
/// Sentinel to Redis, the proxy to both, `tls-auth-clients yes`), so it
/// carries both extended key usages.
pub fn certificate(o: &RenderOptions) -> Option<Value> {
    let (secret, issuer) = (o.tls_secret.as_ref()?, o.cert_manager_issuer.as_ref()?);
    Some(json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": secret, "namespace": o.namespace, "labels": labels(None)},
        "spec": {
            "secretName": secret,
            "issuerRef": {"name": issuer, "kind": o.cert_manager_issuer_kind, "group": "cert-manager.io"},
            "dnsNames": o.certificate_dns_names(),
            "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
        }
    }))
}
