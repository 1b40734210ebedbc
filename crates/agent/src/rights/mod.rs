//! Standing admin rights: found on the machine, taken away when the policy puts their holder in
//! enforce mode, and given back exactly when it no longer does (security invariant 2).
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
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use elevate_core::policy::STANDING_ADMIN_GROUPS;
use elevate_core::{Policy, Subject};

use crate::sudoers::{safe_user_name, Sudoers};

mod scan;
mod sources;

use scan::Grantee;
pub use sources::{end_sessions, ROOT_EQUIVALENT_GROUPS};

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
    /// An admin group as the user's primary group (`gpasswd` cannot take it: reported only).
    PrimaryGroup { group: String },
    /// A grant the agent cannot take apart safely (a sudoers line naming several users, a
    /// continued line, a `User_Alias`; a polkit rule; sudoers from LDAP or SSSD): reported only,
    /// for a person to split or remove.
    Unmanaged {
        file: PathBuf,
        line: String,
        /// 1-based number of the line in `file`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_line: Option<usize>,
    },
}

impl Right {
    /// For messages and audit events.
    pub fn describe(&self) -> String {
        match self {
            Right::Group { group } => format!("membership of group {group}"),
            Right::Sudoers { file, line } => format!("{line:?} in {}", file.display()),
            Right::PrimaryGroup { group } => format!("primary group {group}"),
            Right::Unmanaged {
                file,
                line,
                at_line,
            } => {
                let at = at_line.map(|n| format!(" line {n}")).unwrap_or_default();
                format!(
                    "{line:?} in {}{at} (cannot be revoked automatically)",
                    file.display()
                )
            }
        }
    }

    /// Whether the agent can take this right away and give it back.
    fn manageable(&self) -> bool {
        matches!(self, Right::Group { .. } | Right::Sudoers { .. })
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
    /// A right in enforce mode that the agent cannot take away: a person must.
    Unmanageable {
        user: String,
        right: Right,
    },
    /// A revoked right that could not be given back as it was (its marked line was edited or
    /// removed, or the account now belongs to someone else): dropped from the ledger.
    NotRestored {
        user: String,
        right: Right,
        why: String,
    },
    /// A group was taken, but processes started before still hold it (until they end, or
    /// `elevated rights --end-sessions USER`).
    GroupStillHeld {
        user: String,
        group: String,
        processes: usize,
    },
    /// Something stopped the check itself.
    Error {
        what: String,
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
    /// polkit and NSS.
    pub other: sources::OtherSources,
}

/// The hook called before each change, with the audit action (`rights.revoked`,
/// `rights.restored`, `rights.managed_rule`) and its facts: it records the change, and an error
/// stops it.
pub type Before<'a> = &'a mut dyn FnMut(&str, serde_json::Value) -> anyhow::Result<()>;

fn facts(user: &str, right: &Right) -> serde_json::Value {
    let mut facts =
        serde_json::json!({ "user": user, "right": right, "described": right.describe() });
    if let Right::Group { group } = right {
        facts["note"] = format!(
            "processes started before keep group {group} until they end; \
             `elevated rights --end-sessions {user}` ends them"
        )
        .into();
    }
    facts
}

impl Rights {
    pub fn system(state_dir: &Path) -> Rights {
        Rights {
            state_dir: state_dir.to_path_buf(),
            sudoers: Sudoers::system(),
            main_sudoers: PathBuf::from("/etc/sudoers"),
            group_file: PathBuf::from("/etc/group"),
            gpasswd: PathBuf::from("/usr/bin/gpasswd"),
            other: sources::OtherSources::system(),
        }
    }

    pub fn ledger(&self) -> anyhow::Result<Vec<Revoked>> {
        crate::state_file::read_list(&self.state_dir.join(LEDGER))
    }

    fn write_ledger(&self, ledger: &[Revoked]) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(ledger).expect("ledger serialises");
        crate::state_file::replace(&self.state_dir.join(LEDGER), text.as_bytes(), 0o600)
    }

    /// The groups taken from `user`: they still count as the user's for the policy (a wave
    /// defined by group `sudo` must not let its members go the moment they leave `sudo`).
    pub fn revoked_groups(&self, user: &str, uid: u32) -> Vec<String> {
        self.ledger()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| match r.right {
                Right::Group { group } if r.user == user && r.uid == uid => Some(group),
                _ => None,
            })
            .collect()
    }

    /// For `elevate status`: whether `user`'s standing rights are taken, and how to elevate.
    pub fn summary(&self, user: &str, uid: u32) -> Option<String> {
        let taken: Vec<String> = self
            .ledger()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.user == user && r.uid == uid)
            .map(|r| r.right.describe())
            .collect();
        if taken.is_empty() {
            return None;
        }
        let how = if self.sudoers.path(MANAGED_RULE).exists() {
            "sudo works as before and asks Elevate about every command"
        } else {
            "sudo cannot ask Elevate on this host: use `elevate COMMAND` or `elevate session 30m`"
        };
        Some(format!(
            "your standing admin rights are revoked (enforce mode: {}); {how}",
            taken.join(", ")
        ))
    }

    /// Every standing right on the machine now, by user: membership (or primary group) of an
    /// admin group — `sudo`, `wheel`, `admin`, and any group sudoers grants `ALL` — and sudoers
    /// lines granting a user `ALL`.
    pub fn standing(&self) -> anyhow::Result<Vec<(String, Right)>> {
        let mut found = Vec::new();
        let groups = fs::read_to_string(&self.group_file)
            .with_context(|| format!("cannot read {}", self.group_file.display()))?;
        // name, gid, members
        let table: Vec<(&str, u32, Vec<&str>)> = groups
            .lines()
            .filter_map(|line| {
                let mut f = line.split(':');
                let (name, _, gid, members) = (f.next()?, f.next()?, f.next()?, f.next()?);
                let members = members.split(',').filter(|m| !m.is_empty()).collect();
                Some((name, gid.parse().ok()?, members))
            })
            .collect();
        let mut admin: BTreeSet<String> = STANDING_ADMIN_GROUPS
            .iter()
            .copied()
            .chain(ROOT_EQUIVALENT_GROUPS.iter().map(|(g, _)| *g))
            .map(str::to_owned)
            .collect();
        let by_uid = |uid: u32| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
        };
        let sudoers = scan::Sudoers::read(&self.main_sudoers, &self.sudoers.dir, &|name| {
            name == MANAGED_RULE || name.starts_with("elevate-session-")
        });
        for entry in &sudoers.entries {
            let Some(grant) = sudoers.grant(entry) else {
                continue;
            };
            // One line naming one person by name or uid: commented out and put back exactly.
            let single = grant.grantees.len() == 1 && entry.lines.len() == 1 && !grant.via_alias;
            for g in grant.grantees {
                let user = match g {
                    Grantee::Group(name) => {
                        admin.insert(name);
                        continue;
                    }
                    Grantee::Gid(gid) => {
                        if let Some((name, _, _)) = table.iter().find(|(_, id, _)| *id == gid) {
                            admin.insert(name.to_string());
                        }
                        continue;
                    }
                    Grantee::User(name) => Some(name),
                    Grantee::Uid(uid) => by_uid(uid),
                    Grantee::Alias(_) => None,
                };
                let right = if single && user.is_some() {
                    Right::Sudoers {
                        file: entry.file.clone(),
                        line: entry.lines[0].clone(),
                    }
                } else {
                    Right::Unmanaged {
                        file: entry.file.clone(),
                        line: entry.text.clone(),
                        at_line: Some(entry.at_line),
                    }
                };
                // An alias names nobody the agent can tell: reported under `*`.
                found.push((user.unwrap_or_else(|| "*".to_owned()), right));
            }
        }
        let passwd =
            fs::read_to_string(self.group_file.with_file_name("passwd")).unwrap_or_default();
        // Who has group `gid` as their primary group (passwd entries, not member lists).
        let primary = |gid: u32| -> Vec<String> {
            passwd
                .lines()
                .map(|entry| entry.split(':').collect::<Vec<_>>())
                .filter(|f| f.len() > 3 && f[3].parse::<u32>().ok() == Some(gid))
                .map(|f| f[0].to_owned())
                .collect()
        };
        for (name, gid, members) in &table {
            if !admin.contains(*name) {
                continue;
            }
            let group = name.to_string();
            for member in members {
                found.push((
                    member.to_string(),
                    Right::Group {
                        group: group.clone(),
                    },
                ));
            }
            for user in primary(*gid) {
                found.push((
                    user,
                    Right::PrimaryGroup {
                        group: group.clone(),
                    },
                ));
            }
        }
        // polkit and NSS: reported for each person they name, a group's members included
        // (unless the group is taken away anyway).
        for (who, right) in self.other.grants() {
            let Some(group) = who.strip_prefix('%') else {
                found.push((who, right));
                continue;
            };
            if admin.contains(group) {
                continue;
            }
            if let Some((_, gid, members)) = table.iter().find(|(n, _, _)| *n == group) {
                let holders = members.iter().map(|m| m.to_string()).chain(primary(*gid));
                found.extend(holders.map(|user| (user, right.clone())));
            }
        }
        Ok(found)
    }

    /// Brings the machine in line with `policy`: rights of people in enforce mode are taken
    /// away (again, if they came back), rights of people no longer in it are given back, and
    /// the managed rule lists exactly the people whose rights are taken — only while
    /// `plugin_works()` says the approval plugin gates sudo (asked again right before the rule
    /// is written). Without a working plugin the rule goes first, whatever else fails.
    /// `subject` describes a user for the policy (with the groups taken away counted as theirs).
    pub fn reconcile(
        &self,
        policy: Option<&Policy>,
        subject: &dyn Fn(&str, Vec<String>) -> Option<Subject>,
        plugin_works: &dyn Fn() -> bool,
        before: Before<'_>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        if !plugin_works() {
            changes.extend(self.remove_managed_rule(before));
        }
        let Some(policy) = policy else {
            return changes;
        };
        let (mut ledger, standing) = match (self.ledger(), self.standing()) {
            (Ok(l), Ok(s)) => (l, s),
            (Err(e), _) | (_, Err(e)) => {
                // Who is enforced is unknown: no unchecked ALL stays.
                changes.extend(self.remove_managed_rule(before));
                changes.push(Change::Error {
                    what: format!("{e:#}"),
                });
                return changes;
            }
        };
        let users: BTreeSet<String> = standing
            .iter()
            .map(|(u, _)| u.clone())
            .chain(ledger.iter().map(|r| r.user.clone()))
            .filter(|u| u != "*")
            .collect();
        for user in users {
            let who = subject(&user, Vec::new());
            // Ledger lines for an account that is gone or has another uid now belong to
            // someone else: never given to the new owner.
            let stale: Vec<Revoked> = ledger
                .iter()
                .filter(|r| r.user == user && who.as_ref().is_none_or(|w| w.uid != r.uid))
                .cloned()
                .collect();
            for r in stale {
                ledger.retain(|x| *x != r);
                if let Err(e) = self.write_ledger(&ledger) {
                    changes.push(Change::Error {
                        what: format!("{e:#}"),
                    });
                }
                changes.push(Change::NotRestored {
                    user: r.user.clone(),
                    right: r.right.clone(),
                    why: format!(
                        "the account {} (uid {}) is gone or has another uid now",
                        r.user, r.uid
                    ),
                });
            }
            let Some(first) = who else {
                continue;
            };
            let taken: Vec<String> = ledger
                .iter()
                .filter_map(|r| match &r.right {
                    Right::Group { group } if r.user == user && r.uid == first.uid => {
                        Some(group.clone())
                    }
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
                    if right.manageable() {
                        let change = self.revoke(&mut ledger, (&user, who.uid), right, before);
                        if let (Change::Revoked { .. }, Right::Group { group }) = (&change, right) {
                            changes.extend(still_held(&user, who.uid, group));
                        }
                        changes.push(change);
                    } else {
                        changes.push(Change::Unmanageable {
                            user: user.clone(),
                            right: right.clone(),
                        });
                    }
                }
            } else {
                let mine: Vec<Revoked> =
                    ledger.iter().filter(|r| r.user == user).cloned().collect();
                for r in mine {
                    changes.push(self.restore(&mut ledger, &r, before));
                }
            }
        }
        // Rights granted through an alias name nobody the agent can tell: for a person.
        for (user, right) in &standing {
            if user == "*" {
                changes.push(Change::Unmanageable {
                    user: user.clone(),
                    right: right.clone(),
                });
            }
        }
        match self.managed_rule(&ledger, plugin_works, before) {
            Ok(Some(change)) => changes.push(change),
            Ok(None) => {}
            Err(e) => {
                changes.extend(self.remove_managed_rule(before));
                changes.push(Change::Error {
                    what: format!("{e:#}"),
                });
            }
        }
        changes
    }

    /// Removes the managed rule (if it exists), recorded first; a failure to record does not
    /// keep an unchecked `ALL` in place (it is reported instead).
    fn remove_managed_rule(&self, before: Before<'_>) -> Vec<Change> {
        let path = self.sudoers.path(MANAGED_RULE);
        if !path.exists() {
            return Vec::new();
        }
        let mut changes = Vec::new();
        let facts = serde_json::json!({ "file": path.display().to_string(), "present": false });
        if let Err(e) = before("rights.managed_rule", facts) {
            changes.push(Change::Error {
                what: format!("removing the managed rule without an audit record: {e:#}"),
            });
        }
        match Sudoers::remove(&path) {
            Ok(()) => changes.push(Change::ManagedRule {
                users: Vec::new(),
                present: false,
            }),
            Err(e) => changes.push(Change::Error {
                what: format!("cannot remove {}: {e}", path.display()),
            }),
        }
        changes
    }

    /// Takes `right` from `user`: the ledger line first (one per right: a right that came back
    /// after it was taken is taken again under the same line), then the audit record, then the
    /// change; a failure undoes the ledger line it added.
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
        let again = ledger
            .iter()
            .any(|r| r.user == user && r.uid == uid && r.right == *right);
        let undo = |ledger: &mut Vec<Revoked>| {
            if !again {
                ledger.pop();
                let _ = self.write_ledger(ledger);
            }
        };
        if !again {
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
        }
        let mut audited = facts(user, right);
        audited["again"] = again.into();
        if let Err(e) = before("rights.revoked", audited) {
            undo(ledger);
            return failed(e);
        }
        let made = match right {
            Right::Group { group } => self.gpasswd("-d", user, group),
            Right::Sudoers { file, line } => {
                self.rewrite_sudoers(file, line, &format!("{MARKER}{line}"))
            }
            Right::PrimaryGroup { .. } | Right::Unmanaged { .. } => Err(anyhow::anyhow!(
                "this right cannot be revoked automatically"
            )),
        };
        match made {
            Ok(()) => Change::Revoked {
                user: user.to_owned(),
                right: right.clone(),
            },
            Err(e) => {
                undo(ledger);
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
                self.rewrite_sudoers(file, &format!("{MARKER}{line}"), line)
            }
            Right::PrimaryGroup { .. } | Right::Unmanaged { .. } => Ok(()),
        };
        match made {
            Ok(()) => {}
            // The marked line was edited or removed by hand: nothing is left to give back as
            // it was. Said so, and forgotten.
            Err(e) if e.to_string().contains("no longer holds") => {
                ledger.retain(|x| x != r);
                let _ = self.write_ledger(ledger);
                return Change::NotRestored {
                    user: r.user.clone(),
                    right: r.right.clone(),
                    why: format!("{e:#}"),
                };
            }
            Err(e) => return failed(e),
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
            if bare == from {
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
        crate::state_file::replace_checked(file, out.as_bytes(), mode, |staged| {
            self.sudoers.check(staged, file)
        })
    }

    /// Writes the managed rule for the users whose rights are taken (or removes it). The rule
    /// carries a `NOTAFTER` a quarter of an hour ahead, renewed while the agent runs: if the
    /// agent stops, the unchecked `ALL` ends by itself (and sudo-rs, which ignores the plugin,
    /// drops rules with `NOTAFTER` altogether).
    fn managed_rule(
        &self,
        ledger: &[Revoked],
        plugin_works: &dyn Fn() -> bool,
        before: Before<'_>,
    ) -> anyhow::Result<Option<Change>> {
        let users: BTreeSet<(&str, u32)> =
            ledger.iter().map(|r| (r.user.as_str(), r.uid)).collect();
        let path = self.sudoers.path(MANAGED_RULE);
        let current = fs::read_to_string(&path).ok();
        if users.is_empty() {
            return Ok(self.remove_managed_rule(before).into_iter().next());
        }
        let now = Timestamp::now();
        let listed = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.len() > 1 && l.starts_with('#') && l.as_bytes()[1].is_ascii_digit())
                .map(|l| l.split(' ').next().unwrap_or("").to_owned())
                .collect()
        };
        let wanted: Vec<String> = users.iter().map(|(_, uid)| format!("#{uid}")).collect();
        let same_people = current.as_deref().is_some_and(|t| listed(t) == wanted);
        let fresh = same_people
            && current
                .as_deref()
                .and_then(notafter)
                .is_some_and(|t| t.duration_since(now) > MANAGED_RENEW_BEFORE);
        if fresh {
            return Ok(None);
        }
        // Asked now, right before writing: the plugin may have gone since the pass began.
        if !plugin_works() {
            return Ok(self.remove_managed_rule(before).into_iter().next());
        }
        let until = now
            .checked_add(MANAGED_VALIDITY)
            .unwrap_or(now)
            .strftime("%Y%m%d%H%M%SZ");
        let mut text = String::from(
            "# Managed by elevated: people in enforce mode call sudo as before, and the Elevate\n# approval plugin decides every command. Do not edit; the agent renews this file.\n",
        );
        // By uid: a name such as `OPS` would read as a User_Alias.
        for (user, uid) in &users {
            text.push_str(&format!(
                "# {user}\n#{uid} ALL=(ALL:ALL) NOTAFTER={until} NOPASSWD: NOSETENV: ALL\n"
            ));
        }
        if !same_people {
            before(
                "rights.managed_rule",
                serde_json::json!({ "file": path.display().to_string(),
                    "users": users.iter().map(|(u, _)| u).collect::<Vec<_>>(),
                    "present": true }),
            )?;
        }
        self.sudoers.install(MANAGED_RULE, &text)?;
        Ok((!same_people).then(|| Change::ManagedRule {
            users: users.iter().map(|(u, _)| u.to_string()).collect(),
            present: true,
        }))
    }
}

/// The processes of `user` that keep `group` after it was taken (Linux fixes a process's groups
/// when it starts), if any.
fn still_held(user: &str, uid: u32, group: &str) -> Option<Change> {
    let gid = nix::unistd::Group::from_name(group)
        .ok()
        .flatten()?
        .gid
        .as_raw();
    let processes = sources::processes_holding(uid, gid).len();
    (processes > 0).then(|| Change::GroupStillHeld {
        user: user.to_owned(),
        group: group.to_owned(),
        processes,
    })
}

/// How long the managed rule holds without the agent renewing it.
const MANAGED_VALIDITY: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);
/// It is renewed once less than this is left.
const MANAGED_RENEW_BEFORE: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// The first `NOTAFTER=` of a rule file, as a time.
fn notafter(text: &str) -> Option<Timestamp> {
    let at = text.find("NOTAFTER=")? + "NOTAFTER=".len();
    let stamp = text[at..].split(' ').next()?.strip_suffix('Z')?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", stamp).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
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
}
