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

/// The one rule the agent grants in sudoers: `uid` may run everything as anyone, without a
/// password and without setting the environment, until `until` (UTC; sudo stops honouring the
/// rule then, whatever happens to the agent). The approval plugin still decides every command.
/// The user is named by uid (`#1001`): a name such as `OPS` would read as a `User_Alias`.
pub fn all_until(uid: u32, until: jiff::Timestamp) -> String {
    let until = until.strftime("%Y%m%d%H%M%SZ");
    format!("#{uid} ALL=(ALL:ALL) NOTAFTER={until} NOPASSWD: NOSETENV: ALL\n")
}

/// The managed rule's file: people in enforce mode (name, uid) may call sudo for anything
/// until `until`, so that every call reaches the approval plugin and the policy decides.
pub fn managed_rule<'a>(
    people: impl IntoIterator<Item = &'a (&'a str, u32)>,
    until: jiff::Timestamp,
) -> String {
    let mut text = String::from(
        "# Managed by elevated: people in enforce mode call sudo as before, and the Elevate\n# approval plugin decides every command. Do not edit; the agent renews this file.\n",
    );
    for (user, uid) in people {
        text.push_str(&format!("# {user}\n"));
        text.push_str(&all_until(*uid, until));
    }
    text
}

/// The first `NOTAFTER=` of a rule file, as a time.
pub fn notafter(text: &str) -> Option<jiff::Timestamp> {
    let at = text.find("NOTAFTER=")? + "NOTAFTER=".len();
    let stamp = text[at..].split(' ').next()?.strip_suffix('Z')?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", stamp).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Who a file of [`all_until`] rules grants to: the `#UID` that starts each rule, as written.
pub fn granted_uids(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.len() > 1 && l.starts_with('#') && l.as_bytes()[1].is_ascii_digit())
        .map(|l| l.split(' ').next().unwrap_or("").to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_managed_rules_expiry_is_read_back() {
        let text = "# x\n#1001 ALL=(ALL:ALL) NOTAFTER=20261127103005Z NOPASSWD: ALL\n";
        assert_eq!(
            notafter(text),
            Some("2026-11-27T10:30:05Z".parse().unwrap())
        );
        assert_eq!(notafter("#1001 ALL=(ALL) ALL\n"), None);
    }

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
