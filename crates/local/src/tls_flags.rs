//! `--tls --cacert --cert --key` (redis-cli's names and meanings) for the
//! commands that reach sentinels and nodes by address, as the Kubernetes
//! pods run them: `init-role` and `switchover`.

use redis_ha_resp::tls::{Tls, TlsSettings};
use std::path::PathBuf;
use std::sync::Arc;

/// TLS toward the sentinels and nodes named on the command line.
#[derive(clap::Args, Clone, Debug, Default, PartialEq)]
pub struct TlsFlags {
    /// Connect to the sentinels and nodes with TLS (their tls-port); each
    /// certificate is verified for the host of its address (what Sentinel
    /// announces) against --cacert, or the system's CA store without it.
    #[arg(long = "tls", help_heading = "TLS")]
    pub on: bool,
    /// CA certificate(s) (PEM) the nodes' certificates chain to (Redis:
    /// tls-ca-cert-file).
    #[arg(long, value_name = "FILE", requires = "on", help_heading = "TLS")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM), for nodes with tls-auth-clients yes;
    /// needs --key.
    #[arg(long, value_name = "FILE", requires_all = ["on", "key"], help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires_all = ["on", "cert"], help_heading = "TLS")]
    pub key: Option<PathBuf>,
}

impl TlsFlags {
    /// The client config (reads the PEM files); `None` without --tls.
    pub fn client(&self) -> anyhow::Result<Option<Arc<Tls>>> {
        if !self.on {
            return Ok(None);
        }
        let settings = TlsSettings {
            server_name: None,
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            skip_verify: false,
            flags: "",
        };
        Ok(Some(Arc::new(Tls::new(&settings)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        tls: TlsFlags,
    }

    fn parse(args: &[&str]) -> Result<TlsFlags, clap::Error> {
        Cmd::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.tls)
    }

    #[test]
    fn plain_without_tls_and_files_need_it() {
        assert_eq!(parse(&[]).unwrap(), TlsFlags::default());
        assert!(parse(&[]).unwrap().client().unwrap().is_none());
        assert!(parse(&["--cacert", "ca.crt"]).is_err());
        assert!(
            parse(&["--tls", "--cert", "c.crt"]).is_err(),
            "--cert needs --key"
        );
        let f = parse(&[
            "--tls",
            "--cacert",
            "/tls/ca.crt",
            "--cert",
            "/tls/tls.crt",
            "--key",
            "/tls/tls.key",
        ]);
        assert_eq!(f.unwrap().key, Some(PathBuf::from("/tls/tls.key")));
    }

    #[test]
    fn a_missing_ca_file_says_which_flag() {
        let f = parse(&["--tls", "--cacert", "/nonexistent/ca.crt"]).unwrap();
        let Err(e) = f.client() else {
            panic!("a missing CA file was accepted")
        };
        let e = e.to_string();
        assert!(
            e.contains("--cacert") && e.contains("/nonexistent/ca.crt"),
            "{e}"
        );
    }
}
