//! The server engine a topology runs: Redis or Valkey (its Linux Foundation
//! fork, configured the same way). Knows each one's binaries, image and
//! install hint; nothing else in redis-ha depends on which it is.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Redis,
    Valkey,
}

impl Engine {
    pub const ALL: [Engine; 2] = [Engine::Redis, Engine::Valkey];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Redis => "redis",
            Engine::Valkey => "valkey",
        }
    }

    pub fn server(self) -> &'static str {
        match self {
            Engine::Redis => "redis-server",
            Engine::Valkey => "valkey-server",
        }
    }

    pub fn sentinel(self) -> &'static str {
        match self {
            Engine::Redis => "redis-sentinel",
            Engine::Valkey => "valkey-sentinel",
        }
    }

    pub fn cli(self) -> &'static str {
        match self {
            Engine::Redis => "redis-cli",
            Engine::Valkey => "valkey-cli",
        }
    }

    /// The official image the Kubernetes manifests use by default.
    pub fn image(self) -> &'static str {
        match self {
            Engine::Redis => "redis:7.2",
            Engine::Valkey => "valkey/valkey:8.0",
        }
    }

    /// The command that installs this engine on Debian (what an error says).
    pub fn install_hint(self) -> &'static str {
        match self {
            Engine::Redis => "apt-get install -y redis-server redis-sentinel",
            Engine::Valkey => "scripts/install-deps.sh --valkey (Valkey 8 from bookworm-backports)",
        }
    }

    /// The engine the test suite runs on: `REDIS_HA_ENGINE=valkey` switches
    /// every real-process test that starts a topology (the CI matrix).
    pub fn from_env() -> Result<Engine, String> {
        match std::env::var("REDIS_HA_ENGINE") {
            Ok(v) => v.parse(),
            Err(_) => Ok(Engine::Redis),
        }
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown engine {s:?}: use redis or valkey"))
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for e in Engine::ALL {
            assert_eq!(e.name().parse::<Engine>(), Ok(e));
            assert!(e.server().starts_with(e.name()));
            assert!(e.sentinel().starts_with(e.name()));
        }
        assert_eq!(" Valkey".parse::<Engine>(), Ok(Engine::Valkey));
        assert!("keydb"
            .parse::<Engine>()
            .unwrap_err()
            .contains("redis or valkey"));
    }
}
