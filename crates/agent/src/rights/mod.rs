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

mod reconcile;
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
        let by_uid = crate::users::name_of;
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
}
