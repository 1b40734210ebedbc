//! Where `elevatectl` keeps the server URL and token between runs:
//! `$XDG_CONFIG_HOME/elevate/elevatectl.toml` (or `~/.config/...`), mode 0600.
//!
//! Must never: write the token to a file that others can read.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: Option<String>,
    pub token: Option<String>,
    /// The organisation's own CA for the server's certificate (`--ca-file` at login).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Settings {
    pub fn path() -> anyhow::Result<PathBuf> {
        let base = match std::env::var_os("XDG_CONFIG_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from(
                std::env::var_os("HOME").context("HOME is not set; set XDG_CONFIG_HOME")?,
            )
            .join(".config"),
        };
        Ok(base.join("elevate").join("elevatectl.toml"))
    }

    pub fn load() -> anyhow::Result<Settings> {
        let path = Self::path()?;
        if !path.exists() {
            return Ok(Settings::default());
        }
        let mode = fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} holds a token and is readable by others; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "{} is not valid; delete it and log in again",
                path.display()
            )
        })
    }

    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path()?;
        let dir = path.parent().expect("the settings path has a folder");
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = path.with_extension("toml.tmp");
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(toml::to_string(self)?.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        Ok(path)
    }
}
