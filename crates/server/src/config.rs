//! Server configuration: defaults that work with no file, an optional TOML file, then
//! `ELEVATE_*` environment variables on top.
//!
//! Must never: be a global (it is a value passed in), or keep a secret in a field that is logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use jiff::SignedDuration;
use serde::Deserialize;

/// Everything the server process needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://…`; SQLite in `data_dir` when absent.
    pub database_url: Option<String>,
    pub request_ttl: SignedDuration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::store::redact_url),
            )
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("a valid literal address"),
            data_dir: PathBuf::from("/var/lib/elevate"),
            database_url: None,
            request_ttl: SignedDuration::from_hours(24),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    request_ttl: Option<String>,
}

const ENV: [&str; 4] = [
    "ELEVATE_LISTEN",
    "ELEVATE_DATA_DIR",
    "ELEVATE_DATABASE_URL",
    "ELEVATE_REQUEST_TTL",
];

/// Variables read elsewhere (logging, tests, benchmarks, the CLI): not configuration mistakes.
const OTHER_ENV: [&str; 5] = [
    "ELEVATE_LOG",
    "ELEVATE_REQUIRE_POSTGRES",
    "ELEVATE_SERVER",
    "ELEVATE_TOKEN",
    "ELEVATE_BENCH_",
];

impl ServerConfig {
    /// Defaults, then the file (if given), then the environment.
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let f: FileConfig = toml::from_str(&text)
                .with_context(|| format!("{} is not a valid configuration", path.display()))?;
            config.apply(f.listen, f.data_dir, f.database_url, f.request_ttl)?;
        }
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        for (key, _) in env {
            let known = ENV.contains(&key.as_str()) || OTHER_ENV.iter().any(|k| key.starts_with(k));
            if key.starts_with("ELEVATE_") && !known {
                tracing::warn!(variable = %key, "unknown ELEVATE_ environment variable ignored");
            }
        }
        let listen = var("ELEVATE_LISTEN")
            .map(|v| {
                v.parse().with_context(|| {
                    format!("ELEVATE_LISTEN={v} is not an address like 127.0.0.1:8080")
                })
            })
            .transpose()?;
        config.apply(
            listen,
            var("ELEVATE_DATA_DIR").map(PathBuf::from),
            var("ELEVATE_DATABASE_URL"),
            var("ELEVATE_REQUEST_TTL"),
        )?;
        Ok(config)
    }

    fn apply(
        &mut self,
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
        request_ttl: Option<String>,
    ) -> anyhow::Result<()> {
        if let Some(l) = listen {
            self.listen = l;
        }
        if let Some(d) = data_dir {
            self.data_dir = d;
        }
        if let Some(u) = database_url.filter(|u| !u.is_empty()) {
            if !(u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || u.starts_with("sqlite://"))
            {
                bail!("database_url must start with postgres:// or sqlite://");
            }
            self.database_url = Some(u);
        }
        if let Some(t) = request_ttl {
            self.request_ttl = elevate_core::duration::parse(&t)
                .map_err(|e| anyhow::anyhow!("request_ttl: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_file_then_environment() {
        let dir = std::env::temp_dir().join(format!("elevate-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("server.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nrequest_ttl = \"2h\"\n").unwrap();
        let c =
            ServerConfig::load(Some(&file), &env(&[("ELEVATE_LISTEN", "127.0.0.1:9100")])).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.request_ttl.as_secs(), 7200);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/elevate"));

        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlisten_port = 1\n").unwrap();
        let err = format!("{:#}", ServerConfig::load(Some(&file), &[]).unwrap_err());
        assert!(err.contains("unknown field `listen_port`"), "{err}");
        let err =
            ServerConfig::load(None, &env(&[("ELEVATE_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
        let secret = ServerConfig::load(
            None,
            &env(&[("ELEVATE_DATABASE_URL", "postgres://u:pw@h/db")]),
        )
        .unwrap();
        assert!(!format!("{secret:?}").contains("pw"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
