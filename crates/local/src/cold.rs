//! A whole-topology stop (every process killed at once, a power cut) and
//! the cold start after it, in a chosen order: what the `cold-restart`
//! drill and the restart tests do. Every node's own start makes the boot
//! decision ([`crate::boot`]), so the order only changes who waits.

use crate::Topology;
use anyhow::Context;
use redis_ha_topology::Spec;
use std::time::Duration;

/// The order processes come back in after a whole-topology stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Redis nodes and the proxy first, the sentinels a while later (the
    /// Redis nodes wait: silence is not a first boot).
    SentinelsLast,
    /// The stale node (see `stale`) first, everything else a while later.
    StaleFirst,
    /// Every process at once.
    AllAtOnce,
    /// The sentinels first, the Redis nodes and the proxy a while later
    /// (the sentinels name a master that is not up yet).
    SentinelsFirst,
    /// The proxy first, every node a while later (the proxy answers but
    /// holds writes: it finds no master until the nodes are back).
    ProxyFirst,
}

/// How long the later group of a staged order waits after the first.
pub const STAGGER: Duration = Duration::from_secs(2);

/// Pure: the launch delay of each node for `order` (`stale`: the index of
/// the stale Redis node; redis-0 when there is none).
pub fn plan(names: &[String], order: Order, stale: Option<usize>) -> Vec<(String, Duration)> {
    let first = Spec::redis_name(stale.unwrap_or(0));
    names
        .iter()
        .map(|n| {
            let later = match order {
                Order::AllAtOnce => false,
                Order::SentinelsLast => n.starts_with("sentinel-"),
                Order::StaleFirst => *n != first,
                Order::SentinelsFirst => !n.starts_with("sentinel-"),
                Order::ProxyFirst => n != "proxy",
            };
            (n.clone(), if later { STAGGER } else { Duration::ZERO })
        })
        .collect()
}

impl Topology {
    /// SIGKILL of every process of the topology, all at once.
    pub fn kill_all(&self) {
        for n in self.running() {
            let _ = self.kill(&n);
        }
    }

    /// Removes every sentinel's config file: as if their volumes were
    /// recreated (the sentinels must be stopped).
    pub fn forget_sentinel_state(&self) -> anyhow::Result<()> {
        for i in 0..self.opts.sentinel_ports.len() {
            let f = self
                .opts
                .node_dir(&Spec::sentinel_name(i))
                .join("sentinel.conf");
            if f.exists() {
                std::fs::remove_file(&f)
                    .with_context(|| format!("cannot remove {}", f.display()))?;
            }
        }
        Ok(())
    }

    /// Removes a Redis node's data (its RDB and AOF files): a lost disk.
    /// The node must be stopped.
    pub fn wipe_data(&self, i: usize) -> anyhow::Result<()> {
        let d = self.data_dir(i);
        if d.exists() {
            std::fs::remove_dir_all(&d)
                .with_context(|| format!("cannot remove {}", d.display()))?;
        }
        std::fs::create_dir_all(&d)?;
        Ok(())
    }

    /// Starts every stopped node again in `order`; each node's start waits
    /// for what it needs, so they all run at once, staggered per [`plan`].
    pub async fn cold_start(&self, order: Order, stale: Option<usize>) -> anyhow::Result<()> {
        let names = self.opts.node_names();
        let starts = plan(&names, order, stale)
            .into_iter()
            .map(|(n, delay)| async move {
                tokio::time::sleep(delay).await;
                self.restart(&n)
                    .await
                    .with_context(|| format!("{n} did not start"))
            });
        futures::future::try_join_all(starts).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [
            "redis-0",
            "redis-1",
            "redis-2",
            "sentinel-0",
            "sentinel-1",
            "proxy",
        ]
        .map(String::from)
        .to_vec()
    }

    fn later(order: Order, stale: Option<usize>) -> Vec<String> {
        plan(&names(), order, stale)
            .into_iter()
            .filter(|(_, d)| !d.is_zero())
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn orders_say_who_starts_later() {
        assert!(later(Order::AllAtOnce, Some(1)).is_empty());
        assert_eq!(
            later(Order::SentinelsLast, None),
            ["sentinel-0", "sentinel-1"]
        );
        assert_eq!(
            later(Order::StaleFirst, Some(1)),
            ["redis-0", "redis-2", "sentinel-0", "sentinel-1", "proxy"]
        );
        assert_eq!(
            later(Order::SentinelsFirst, None),
            ["redis-0", "redis-1", "redis-2", "proxy"]
        );
        assert_eq!(
            later(Order::ProxyFirst, Some(2)),
            ["redis-0", "redis-1", "redis-2", "sentinel-0", "sentinel-1"]
        );
    }
}
