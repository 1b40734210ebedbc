//! Reconciling standing rights with the policy: taking rights from people it puts in enforce
//! mode and giving them back exactly when it no longer does, the managed rule that sends their
//! sudo through the approval plugin, and the groups that processes still hold.
//!
//! Must never: change anything before its ledger line and its audit event are written, or keep
//! the managed rule without a working plugin.

use super::*;

/// Why a sudoers line could not be rewritten; a caller gives up on a right whose line is gone.
#[derive(Debug, thiserror::Error)]
pub(super) enum RewriteError {
    /// The line was edited or removed by hand since.
    #[error("{file} no longer holds the line {line:?}")]
    LineGone { file: String, line: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Rights {
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
    pub(super) fn remove_managed_rule(&self, before: Before<'_>) -> Vec<Change> {
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
    pub(super) fn revoke(
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
            Right::Sudoers { file, line } => self
                .rewrite_sudoers(file, line, &format!("{MARKER}{line}"))
                .map_err(anyhow::Error::from),
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
    pub(super) fn restore(
        &self,
        ledger: &mut Vec<Revoked>,
        r: &Revoked,
        before: Before<'_>,
    ) -> Change {
        let failed = |e: anyhow::Error| Change::Failed {
            user: r.user.clone(),
            right: r.right.clone(),
            error: format!("{e:#}"),
        };
        if let Err(e) = before("rights.restored", facts(&r.user, &r.right)) {
            return failed(e);
        }
        let made = match &r.right {
            Right::Group { group } => self
                .gpasswd("-a", &r.user, group)
                .map_err(RewriteError::Other),
            Right::Sudoers { file, line } => {
                self.rewrite_sudoers(file, &format!("{MARKER}{line}"), line)
            }
            Right::PrimaryGroup { .. } | Right::Unmanaged { .. } => Ok(()),
        };
        match made {
            Ok(()) => {}
            // The marked line was edited or removed by hand: nothing is left to give back as
            // it was. Said so, and forgotten.
            Err(e @ RewriteError::LineGone { .. }) => {
                ledger.retain(|x| x != r);
                let _ = self.write_ledger(ledger);
                return Change::NotRestored {
                    user: r.user.clone(),
                    right: r.right.clone(),
                    why: format!("{e:#}"),
                };
            }
            Err(e) => return failed(e.into()),
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

    pub(super) fn gpasswd(&self, flag: &str, user: &str, group: &str) -> anyhow::Result<()> {
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
    pub(super) fn rewrite_sudoers(
        &self,
        file: &Path,
        from: &str,
        to: &str,
    ) -> Result<(), RewriteError> {
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
            return Err(RewriteError::LineGone {
                file: file.display().to_string(),
                line: from.to_owned(),
            });
        }
        let mode = fs::metadata(file).map_err(anyhow::Error::from)?.mode() & 0o7777;
        crate::state_file::replace_checked(file, out.as_bytes(), mode, |staged| {
            self.sudoers.check(staged, file)
        })?;
        Ok(())
    }

    /// Writes the managed rule for the users whose rights are taken (or removes it). The rule
    /// carries a `NOTAFTER` a quarter of an hour ahead, renewed while the agent runs: if the
    /// agent stops, the unchecked `ALL` ends by itself (and sudo-rs, which ignores the plugin,
    /// drops rules with `NOTAFTER` altogether).
    pub(super) fn managed_rule(
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
        let wanted: Vec<String> = users.iter().map(|(_, uid)| format!("#{uid}")).collect();
        let same_people = current
            .as_deref()
            .is_some_and(|t| crate::sudoers::granted_uids(t) == wanted);
        let fresh = same_people
            && current
                .as_deref()
                .and_then(crate::sudoers::notafter)
                .is_some_and(|t| t.duration_since(now) > MANAGED_RENEW_BEFORE);
        if fresh {
            return Ok(None);
        }
        // Asked now, right before writing: the plugin may have gone since the pass began.
        if !plugin_works() {
            return Ok(self.remove_managed_rule(before).into_iter().next());
        }
        let until = now.checked_add(MANAGED_VALIDITY).unwrap_or(now);
        let text = crate::sudoers::managed_rule(&users, until);
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
    let gid = crate::users::gid_of(group)?;
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
