//! Files in `/etc/sudoers.d` that the agent manages: written beside their final place under a
//! name sudo skips (it ignores names with a `.`), checked with `visudo -cf`, then moved into
//! place with one `rename`, so sudo never reads a half-written or invalid rule.
//!
//! Must never: install a file `visudo` did not accept, or write a user name into a rule that
//! sudoers could read as anything but that one user.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Where sudoers rules go and what checks them.
#[derive(Debug, Clone)]
pub struct Sudoers {
    /// The folder sudoers includes (`@includedir /etc/sudoers.d`).
    pub dir: PathBuf,
    pub visudo: PathBuf,
}

impl Sudoers {
    pub fn system() -> Sudoers {
        Sudoers {
            dir: PathBuf::from("/etc/sudoers.d"),
            visudo: PathBuf::from("/usr/sbin/visudo"),
        }
    }

    /// The path of the managed file `name` (which must not contain a `.`: sudo would skip it).
    pub fn path(&self, name: &str) -> PathBuf {
        debug_assert!(!name.contains('.') && !name.contains('/'));
        self.dir.join(name)
    }

    /// Writes `text` as `name` (mode 0440) once `visudo` has accepted it.
    pub fn install(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.path(name);
        crate::state_file::replace_checked(&path, text.as_bytes(), 0o440, |staged| {
            self.check(staged, &path)
        })?;
        Ok(path)
    }

    /// `visudo -cf` of a staged copy of `path`: an error (saying that `path` was left as it
    /// was) unless visudo accepts it.
    pub fn check(&self, staged: &Path, path: &Path) -> anyhow::Result<()> {
        let checked = Command::new(&self.visudo)
            .arg("-cf")
            .arg(staged)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .with_context(|| format!("cannot run {}", self.visudo.display()))?;
        if !checked.status.success() {
            bail!(
                "visudo refused the new {} ({}); it was left as it was",
                path.display(),
                String::from_utf8_lossy(&checked.stderr).trim()
            );
        }
        Ok(())
    }

    /// Removes a managed file; one that is already gone is fine.
    pub fn remove(path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => {
                if let Some(dir) = path.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            }
        }
    }
}

/// Whether `name` can stand in a sudoers rule as exactly that user: letters, digits, `_`, `-`
/// and `.`, not starting with `-` or `#` (sudoers reads `#123` as a uid) and not a keyword.
pub fn safe_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('-')
        && !name.starts_with('.')
        && name != "ALL"
        && !name.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_user_names_go_into_rules() {
        for good in ["alice", "bob.smith", "svc_backup", "a-b", "user1"] {
            assert!(safe_user_name(good), "{good}");
        }
        for bad in [
            "", "ALL", "-x", ".x", "#0", "al ice", "a,b", "a:b", "%sudo", "a\nb", "a=b", "123",
            "a!b",
        ] {
            assert!(!safe_user_name(bad), "{bad:?}");
        }
    }
}
