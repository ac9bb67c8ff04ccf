//! `redis-ha node restart proxy` without a refused connection: the new
//! proxy starts first, on the same ports (`--reuse-port`: it binds beside
//! the old one and takes every new connection), and only then is the old one
//! sent SIGTERM, on which it drains: its clients get every reply they are
//! owed and are closed between requests, and reconnect to the new one.

use crate::process;
use crate::topo::Topology;
use std::time::Duration;

/// How long the old proxy may take to drain (its --drain-grace and
/// --drain-timeout defaults, 2 s + 10 s, and a margin) before SIGKILL.
pub const PROXY_DRAIN_WAIT: Duration = Duration::from_secs(15);

impl Topology {
    /// Starts a new proxy beside the running one, then drains the old one.
    /// An old proxy that did not listen with --reuse-port (an older
    /// version) is stopped first, as before.
    pub(crate) async fn restart_proxy(&self) -> anyhow::Result<()> {
        let old = self.pid("proxy").filter(|p| process::alive(*p));
        let Some(old) = old else {
            return self.start_proxy().await;
        };
        if !process::cmdline(old).contains("--reuse-port") {
            stop(old, PROXY_DRAIN_WAIT).await;
            return self.start_proxy().await;
        }
        self.start_proxy().await?;
        stop(old, PROXY_DRAIN_WAIT).await;
        Ok(())
    }
}

/// SIGTERM (the proxy drains), SIGKILL after `grace`; waits off the runtime.
async fn stop(pid: u32, grace: Duration) {
    let _ = tokio::task::spawn_blocking(move || process::terminate(pid, grace)).await;
}
