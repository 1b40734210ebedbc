//! Standing admin rights: found on the machine, taken away when the policy puts their holder in
//! enforce mode, and given back exactly when it no longer does (DESIGN invariant 2).
//!
//! A standing right is membership of an admin group (`sudo`, `wheel`, `admin`) or a sudoers line
//! that names the user and grants `ALL` (in `/etc/sudoers` or `/etc/sudoers.d`). Only people's
//! accounts are touched (uid 1000 and up, not `nobody`), never break-glass accounts. Every
//! change is recorded in the ledger (`revoked-rights.json`) *before* it is made, and audited
//! before it is made (the caller's `before` hook spools the event; if that fails, nothing
//! changes). Group membership is changed with `gpasswd`; a sudoers line is commented out with a
//! marker and put back word for word, each file checked with `visudo` before it replaces the
//! old one.
//!
//! In enforce mode, when the sudo plugin is installed and working, a managed rule
//! (`/etc/sudoers.d/elevate-managed`) lets those users call sudo for anything, so that every
//! call reaches the approval plugin and the policy decides. Without a working plugin (or with
//! sudo-rs, which ignores plugins) that rule is never written, and is removed if it exists: an
//! unchecked `ALL` would be a standing right again. People then use `elevate COMMAND`.
//!
//! Must never: take a right away without a ledger line to give it back, touch a break-glass
//! account or a system account, or leave the managed rule in place without a working plugin.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use elevate_core::policy::STANDING_ADMIN_GROUPS;
use elevate_core::{Policy, Subject};

use crate::sudoers::{safe_user_name, Sudoers};

const LEDGER: &str = "revoked-rights.json";
/// The managed rule's file in the sudoers folder.
pub const MANAGED_RULE: &str = "elevate-managed";
/// What a revoked sudoers line becomes; the original follows it.
const MARKER: &str = "# elevate revoked this standing right (elevated puts it back when its holder leaves enforce mode): ";
/// People's accounts start here (Debian's FIRST_UID; system accounts are below).
const FIRST_PERSON_UID: u32 = 1000;
const NOBODY: u32 = 65534;

/// One standing right.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Right {
    /// Membership of an admin group.
    Group { group: String },
    /// A sudoers line naming the user and granting `ALL`, exactly as written, in `file`.
    Sudoers { file: PathBuf, line: String },
}

impl Right {
    /// For messages and audit events.
    pub fn describe(&self) -> String {
        match self {
            Right::Group { group } => format!("membership of group {group}"),
            Right::Sudoers { file, line } => format!("{line:?} in {}", file.display()),
        }
    }
}

/// A right the agent took away, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub user: String,
    pub uid: u32,
    pub right: Right,
    pub at: Timestamp,
}

/// What one reconciliation changed (or failed to change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Revoked {
        user: String,
        right: Right,
    },
    Restored {
        user: String,
        right: Right,
    },
    /// A change that could not be made; the right stays as it was.
    Failed {
        user: String,
        right: Right,
        error: String,
    },
    /// The managed rule was written or removed (with the users it lists).
    ManagedRule {
        users: Vec<String>,
        present: bool,
    },
}

/// Where standing rights live on this machine.
#[derive(Debug, Clone)]
pub struct Rights {
    pub state_dir: PathBuf,
    pub sudoers: Sudoers,
    /// The main sudoers file.
    pub main_sudoers: PathBuf,
    pub group_file: PathBuf,
    pub gpasswd: PathBuf,
}

/// The hook called before each change, with the audit action (`rights.revoked`,
/// `rights.restored`, `rights.managed_rule`) and its facts: it records the change, and an error
/// stops it.
pub type Before<'a> = &'a mut dyn FnMut(&str, serde_json::Value) -> anyhow::Result<()>;

fn facts(user: &str, right: &Right) -> serde_json::Value {
    serde_json::json!({ "user": user, "right": right, "described": right.describe() })
}

impl Rights {
    pub fn system(state_dir: &Path) -> Rights {
        Rights {
            state_dir: state_dir.to_path_buf(),
            sudoers: Sudoers::system(),
            main_sudoers: PathBuf::from("/etc/sudoers"),
            group_file: PathBuf::from("/etc/group"),
            gpasswd: PathBuf::from("/usr/bin/gpasswd"),
        }
    }

    pub fn ledger(&self) -> anyhow::Result<Vec<Revoked>> {
        let path = self.state_dir.join(LEDGER);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn write_ledger(&self, ledger: &[Revoked]) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(ledger).expect("ledger serialises");
        crate::sudo_setup::replace_file(&self.state_dir.join(LEDGER), &text, 0o600)
    }

    /// The groups taken from `user`: they still count as the user's for the policy (a wave
    /// defined by group `sudo` must not let its members go the moment they leave `sudo`).
    pub fn revoked_groups(&self, user: &str) -> Vec<String> {
        self.ledger()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| match r.right {
                Right::Group { group } if r.user == user => Some(group),
                _ => None,
            })
            .collect()
    }

    /// Every standing right on the machine now, by user.
    pub fn standing(&self) -> anyhow::Result<Vec<(String, Right)>> {
        let mut found = Vec::new();
        let groups = fs::read_to_string(&self.group_file)
            .with_context(|| format!("cannot read {}", self.group_file.display()))?;
        for line in groups.lines() {
            let mut fields = line.split(':');
            let (Some(name), Some(_), Some(_), Some(members)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if STANDING_ADMIN_GROUPS.contains(&name) {
                for member in members.split(',').filter(|m| !m.is_empty()) {
                    found.push((
                        member.to_owned(),
                        Right::Group {
                            group: name.to_owned(),
                        },
                    ));
                }
            }
        }
        for file in self.sudoers_files() {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            for line in text.lines() {
                if let Some(user) = all_grant_user(line) {
                    found.push((
                        user,
                        Right::Sudoers {
                            file: file.clone(),
                            line: line.to_owned(),
                        },
                    ));
                }
            }
        }
        Ok(found)
    }

    /// The main sudoers file and the files sudo includes from the sudoers folder (it skips
    /// names with a `.` or ending in `~`), except Elevate's own.
    fn sudoers_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.main_sudoers.clone()];
        if let Ok(entries) = fs::read_dir(&self.sudoers.dir) {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.contains('.') && !n.ends_with('~'))
                .filter(|n| n != MANAGED_RULE && !n.starts_with("elevate-session-"))
                .collect();
            names.sort();
            files.extend(names.into_iter().map(|n| self.sudoers.dir.join(n)));
        }
        files
    }

    /// Brings the machine in line with `policy`: rights of people in enforce mode are taken
    /// away, rights of people no longer in it are given back, and the managed rule lists exactly
    /// the people whose rights are taken (when `plugin_works`). `subject` describes a user for
    /// the policy (with the groups taken away counted as theirs).
    pub fn reconcile(
        &self,
        policy: &Policy,
        subject: &dyn Fn(&str, Vec<String>) -> Option<Subject>,
        plugin_works: bool,
        before: Before<'_>,
    ) -> anyhow::Result<Vec<Change>> {
        let mut changes = Vec::new();
        let mut ledger = self.ledger()?;
        let standing = self.standing()?;
        let users: BTreeSet<String> = standing
            .iter()
            .map(|(u, _)| u.clone())
            .chain(ledger.iter().map(|r| r.user.clone()))
            .collect();
        for user in users {
            let taken: Vec<String> = ledger
                .iter()
                .filter_map(|r| match &r.right {
                    Right::Group { group } if r.user == user => Some(group.clone()),
                    _ => None,
                })
                .collect();
            let Some(who) = subject(&user, taken) else {
                continue;
            };
            if who.uid < FIRST_PERSON_UID || who.uid == NOBODY || !safe_user_name(&user) {
                continue;
            }
            if policy.revokes_standing_rights(&who) {
                for (_, right) in standing.iter().filter(|(u, _)| *u == user) {
                    if ledger.iter().any(|r| r.user == user && r.right == *right) {
                        continue;
                    }
                    let change = self.revoke(&mut ledger, (&user, who.uid), right, before);
                    changes.push(change);
                }
            } else {
                let mine: Vec<Revoked> =
                    ledger.iter().filter(|r| r.user == user).cloned().collect();
                for r in mine {
                    changes.push(self.restore(&mut ledger, &r, before));
                }
            }
        }
        if let Some(change) = self.managed_rule(&ledger, plugin_works, before)? {
            changes.push(change);
        }
        Ok(changes)
    }

    /// Takes `right` from `user`: ledger line first, then the change; undone in the ledger if
    /// the change fails.
    fn revoke(
        &self,
        ledger: &mut Vec<Revoked>,
        (user, uid): (&str, u32),
        right: &Right,
        before: Before<'_>,
    ) -> Change {
        let failed = |e: anyhow::Error| Change::Failed {
            user: user.to_owned(),
            right: right.clone(),
            error: format!("{e:#}"),
        };
        if let Err(e) = before("rights.revoked", facts(user, right)) {
            return failed(e);
        }
        ledger.push(Revoked {
            user: user.to_owned(),
            uid,
            right: right.clone(),
            at: Timestamp::now(),
        });
        if let Err(e) = self.write_ledger(ledger) {
            ledger.pop();
            return failed(e);
        }
        let made = match right {
            Right::Group { group } => self.gpasswd("-d", user, group),
            Right::Sudoers { file, line } => {
                self.rewrite_sudoers(file, line, &format!("{MARKER}{line}"))
            }
        };
        match made {
            Ok(()) => Change::Revoked {
                user: user.to_owned(),
                right: right.clone(),
            },
            Err(e) => {
                ledger.pop();
                let _ = self.write_ledger(ledger);
                failed(e)
            }
        }
    }

    /// Gives a revoked right back: the change first, then the ledger line goes (a crash in
    /// between gives it back again, which changes nothing).
    fn restore(&self, ledger: &mut Vec<Revoked>, r: &Revoked, before: Before<'_>) -> Change {
        let failed = |e: anyhow::Error| Change::Failed {
            user: r.user.clone(),
            right: r.right.clone(),
            error: format!("{e:#}"),
        };
        if let Err(e) = before("rights.restored", facts(&r.user, &r.right)) {
            return failed(e);
        }
        let made = match &r.right {
            Right::Group { group } => self.gpasswd("-a", &r.user, group),
            Right::Sudoers { file, line } => {
                match self.rewrite_sudoers(file, &format!("{MARKER}{line}"), line) {
                    // Someone removed the marked line by hand: nothing to give back.
                    Err(e) if e.to_string().contains("no longer holds") => {
                        tracing::warn!(file = %file.display(), "a revoked sudoers line was removed by hand; nothing to restore");
                        Ok(())
                    }
                    other => other,
                }
            }
        };
        if let Err(e) = made {
            return failed(e);
        }
        ledger.retain(|x| x != r);
        if let Err(e) = self.write_ledger(ledger) {
            return failed(e);
        }
        Change::Restored {
            user: r.user.clone(),
            right: r.right.clone(),
        }
    }

    fn gpasswd(&self, flag: &str, user: &str, group: &str) -> anyhow::Result<()> {
        let out = Command::new(&self.gpasswd)
            .args([flag, user, group])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .with_context(|| format!("cannot run {}", self.gpasswd.display()))?;
        if !out.status.success() {
            bail!(
                "gpasswd {flag} {user} {group} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Replaces the line `from` with `to` in a sudoers file, through a staged copy `visudo`
    /// accepted, keeping the file's mode.
    fn rewrite_sudoers(&self, file: &Path, from: &str, to: &str) -> anyhow::Result<()> {
        let text =
            fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut replaced = false;
        let mut out = String::with_capacity(text.len() + MARKER.len());
        for line in text.split_inclusive('\n') {
            let (bare, end) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            if !replaced && bare == from {
                out.push_str(to);
                out.push_str(end);
                replaced = true;
            } else {
                out.push_str(line);
            }
        }
        if !replaced {
            bail!("{} no longer holds the line {from:?}", file.display());
        }
        let mode = fs::metadata(file)?.mode() & 0o7777;
        let dir = file.parent().context("a sudoers file without a folder")?;
        let name = file.file_name().context("a sudoers file without a name")?;
        let staging = dir.join(format!(".{}.elevate-tmp", name.to_string_lossy()));
        {
            use std::io::Write;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o440)
                .open(&staging)
                .with_context(|| format!("cannot write {}", staging.display()))?;
            f.write_all(out.as_bytes())?;
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            f.sync_all()?;
        }
        let checked = Command::new(&self.sudoers.visudo)
            .arg("-cf")
            .arg(&staging)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output();
        match checked {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let _ = fs::remove_file(&staging);
                bail!(
                    "visudo refused the changed {} ({}); it was left as it was",
                    file.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            Err(e) => {
                let _ = fs::remove_file(&staging);
                return Err(e).context("cannot run visudo");
            }
        }
        fs::rename(&staging, file).with_context(|| format!("cannot replace {}", file.display()))?;
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Writes the managed rule for the users whose rights are taken (or removes it).
    fn managed_rule(
        &self,
        ledger: &[Revoked],
        plugin_works: bool,
        before: Before<'_>,
    ) -> anyhow::Result<Option<Change>> {
        let users: BTreeSet<(&str, u32)> =
            ledger.iter().map(|r| (r.user.as_str(), r.uid)).collect();
        let path = self.sudoers.path(MANAGED_RULE);
        let wanted = (plugin_works && !users.is_empty()).then(|| {
            let mut text = String::from(
                "# Managed by elevated: people in enforce mode call sudo as before, and the Elevate\n# approval plugin decides every command. Do not edit; the agent rewrites this file.\n",
            );
            // By uid: a name such as `OPS` would read as a User_Alias.
            for (user, uid) in &users {
                text.push_str(&format!("# {user}\n#{uid} ALL=(ALL:ALL) NOPASSWD: ALL\n"));
            }
            text
        });
        let current = fs::read_to_string(&path).ok();
        if current == wanted {
            return Ok(None);
        }
        before(
            "rights.managed_rule",
            serde_json::json!({ "file": path.display().to_string(),
                "users": users.iter().map(|(u, _)| u).collect::<Vec<_>>(),
                "present": wanted.is_some(), "plugin_works": plugin_works }),
        )?;
        match &wanted {
            Some(text) => {
                self.sudoers.install(MANAGED_RULE, text)?;
            }
            None => Sudoers::remove(&path)?,
        }
        Ok(Some(Change::ManagedRule {
            users: users.iter().map(|(u, _)| u.to_string()).collect(),
            present: wanted.is_some(),
        }))
    }
}

/// The user a sudoers line grants `ALL` to, if it is such a line: `alice ALL=(ALL:ALL) ALL`,
/// `alice ALL=(ALL) NOPASSWD: ALL`, `alice ALL = ALL, !/usr/bin/passwd` (an `ALL` with
/// exceptions is still everything but a few). Group (`%`), netgroup (`+`) and alias lines,
/// `Defaults`, includes, comments and continued lines are not user grants.
fn all_grant_user(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty()
        || line.starts_with('#')
        || line.starts_with('@')
        || line.starts_with('%')
        || line.starts_with('+')
        || line.ends_with('\\')
    {
        return None;
    }
    let (user, rest) = line.split_once(char::is_whitespace)?;
    if user.starts_with("Defaults") || user.ends_with("_Alias") || !safe_user_name(user) {
        return None;
    }
    let (_hosts, commands) = rest.split_once('=')?;
    let grants_all = commands.split(',').any(|item| {
        let mut item = item.trim();
        if let Some(after) = item.strip_prefix('(').and_then(|i| i.split_once(')')) {
            item = after.1.trim();
        }
        // Tags such as NOPASSWD: SETENV:
        while let Some((tag, after)) = item.split_once(':') {
            if !tag.is_empty() && tag.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                item = after.trim();
            } else {
                break;
            }
        }
        item == "ALL"
    });
    grants_all.then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudoers_lines_that_grant_everything_are_found() {
        for (line, user) in [
            ("alice ALL=(ALL:ALL) ALL", Some("alice")),
            ("alice ALL=(ALL) NOPASSWD: ALL", Some("alice")),
            ("  bob   ALL = (root) NOPASSWD:SETENV: ALL", Some("bob")),
            ("bob ALL=(ALL) NOPASSWD: ALL, !/usr/bin/passwd", Some("bob")),
            ("carol ALL=ALL", Some("carol")),
            ("dave ALL=(ALL) /usr/bin/apt, /usr/bin/systemctl", None),
            ("%sudo ALL=(ALL:ALL) ALL", None),
            ("+admins ALL=(ALL) ALL", None),
            ("# alice ALL=(ALL) ALL", None),
            ("Defaults env_reset", None),
            ("Defaults:alice !requiretty", None),
            ("User_Alias ADMINS = alice, bob", None),
            ("@includedir /etc/sudoers.d", None),
            ("alice ALL=(ALL) \\", None),
            ("erin ALL=(ALL) NOPASSWD: /usr/bin/ALL", None),
            ("", None),
        ] {
            assert_eq!(all_grant_user(line).as_deref(), user, "{line:?}");
        }
    }
}
