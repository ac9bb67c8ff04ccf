//! Names shown beside node addresses: those given with `--node-name`
//! (`redis-ha up` names its nodes `redis-0`..., `sentinel-0`...), else, for
//! a node known by a hostname, its first label (`redis-1` for
//! `redis-1.redis-headless:6379`, as on Kubernetes).

use redis_ha_topology::{split_addr, Addr};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Names(HashMap<Addr, String>);

impl Names {
    pub fn new(given: &[(Addr, String)]) -> Names {
        Names(given.iter().cloned().collect())
    }

    /// The name of the node at `addr`, if it has one.
    pub fn of(&self, addr: &str) -> Option<String> {
        if let Some(n) = self.0.get(addr) {
            return Some(n.clone());
        }
        let (host, _) = split_addr(addr)?;
        let label = host.split('.').next()?;
        let ip = host.parse::<std::net::IpAddr>().is_ok();
        (!ip && !label.is_empty() && host != "localhost").then(|| label.to_string())
    }

    /// Address → name, of every address in `addrs` that has a name.
    pub fn map<'a>(&self, addrs: impl IntoIterator<Item = &'a str>) -> HashMap<String, String> {
        addrs
            .into_iter()
            .filter_map(|a| Some((a.to_string(), self.of(a)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_names_then_host_labels() {
        let n = Names::new(&[("127.0.0.1:6381".into(), "redis-0".into())]);
        assert_eq!(n.of("127.0.0.1:6381").as_deref(), Some("redis-0"));
        assert_eq!(n.of("127.0.0.1:6382"), None);
        assert_eq!(n.of("localhost:6382"), None);
        assert_eq!(n.of("[::1]:6382"), None);
        assert_eq!(
            n.of("redis-1.redis-headless.redis-ha.svc.cluster.local:6379")
                .as_deref(),
            Some("redis-1")
        );
        assert_eq!(n.of("sentinel-2:26379").as_deref(), Some("sentinel-2"));
    }
}
