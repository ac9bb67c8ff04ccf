//! The "which cluster" arguments of the commands that reach a topology by
//! its sentinels, as the Kubernetes pods run them (`init-role`,
//! `switchover`): `--sentinel`, `--master-name`, the nodes' and the
//! sentinels' passwords, and TLS. One group, flattened into each.

use crate::tls_flags::TlsFlags;

#[derive(clap::Args, Clone, Debug, Default, PartialEq)]
pub struct ClusterArgs {
    /// Sentinel address (repeatable).
    #[arg(long = "sentinel", value_name = "HOST:PORT")]
    pub sentinels: Vec<String>,
    /// Sentinel's name for the master (default: mymaster, or the local
    /// topology's where the command has one).
    #[arg(long)]
    pub master_name: Option<String>,
    /// Password of the Redis nodes.
    #[arg(long, env = "REDIS_HA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Password of the sentinels themselves, if they have one.
    #[arg(long, env = "REDIS_HA_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,
    #[command(flatten)]
    pub tls: TlsFlags,
}

impl ClusterArgs {
    /// The sentinels as given: `sentinels` and the default master name.
    pub fn of(sentinels: Vec<String>) -> ClusterArgs {
        ClusterArgs {
            sentinels,
            ..ClusterArgs::default()
        }
    }

    /// `--master-name`, else Sentinel's usual `mymaster`.
    pub fn master_name_or_default(&self) -> String {
        self.master_name
            .clone()
            .unwrap_or_else(|| "mymaster".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        c: ClusterArgs,
    }

    #[test]
    fn the_group_parses_as_each_command_spelled_it() {
        let c = Cmd::parse_from([
            "x",
            "--sentinel",
            "s0:26379",
            "--sentinel",
            "s1:26379",
            "--master-name",
            "m",
            "--tls",
            "--cacert",
            "ca.crt",
        ])
        .c;
        assert_eq!(c.sentinels, ["s0:26379", "s1:26379"]);
        assert_eq!(c.master_name_or_default(), "m");
        assert!(c.tls.on);
        assert_eq!(ClusterArgs::of(vec![]).master_name_or_default(), "mymaster");
    }
}
