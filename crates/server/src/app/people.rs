//! The people directory: who is behind accounts, Slack ids and the login names on devices, and
//! separation of duties decided on them.
//!
//! Must never: decide that two names are one person because they look alike (only the links
//! the directory holds say so); let one account or login in one scope belong to two people; let
//! a person decide a request made under any of their logins; leave a deactivated person's
//! accounts working; apply half an import.

use std::collections::{BTreeMap, HashMap};

use elevate_core::UnknownRequester;
use elevate_proto::v1::{
    DeviceUsersIn, DirectoryChange, DirectoryImport, DirectoryImportOut, PersonIn, PersonLogin,
    PersonView, MAX_DEVICE_USERS, MAX_IMPORT,
};

use super::{App, AppError, Principal, Result, Role};
use crate::store::{Directory, LoginOwner, PersonRow, Tx};

pub(crate) fn person_view(p: PersonRow) -> PersonView {
    PersonView {
        id: p.id,
        user_name: p.user_name,
        display_name: p.display_name,
        email: p.email,
        department: p.department,
        manager: p.manager,
        accounts: p.accounts,
        slack: p.slack,
        logins: p
            .logins
            .into_iter()
            .map(|(login, scope)| PersonLogin { login, scope })
            .collect(),
        groups: p.groups,
        active: p.deactivated_at.is_none(),
        source: p.source,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// The fields of `row` that differ from what `new` says.
fn changed_fields(row: &PersonRow, new: &PersonRow) -> Vec<String> {
    let mut fields = Vec::new();
    let mut differs = |name: &str, same: bool| {
        if !same {
            fields.push(name.to_owned());
        }
    };
    differs("display_name", row.display_name == new.display_name);
    differs("email", row.email == new.email);
    differs("department", row.department == new.department);
    differs("manager", row.manager == new.manager);
    differs("external_id", row.external_id == new.external_id);
    differs("accounts", row.accounts == new.accounts);
    differs("slack", row.slack == new.slack);
    differs("logins", row.logins == new.logins);
    differs("groups", row.groups == new.groups);
    differs(
        "active",
        row.deactivated_at.is_none() == new.deactivated_at.is_none(),
    );
    fields
}

/// What a person written by `source` becomes, given who they were (if anyone).
pub(crate) fn person_row(
    input: PersonIn,
    old: Option<&PersonRow>,
    source: &str,
    external_id: Option<String>,
    now: jiff::Timestamp,
) -> PersonRow {
    let p = input.normalised();
    PersonRow {
        id: old.map_or_else(|| uuid::Uuid::now_v7().to_string(), |o| o.id.clone()),
        user_name: p.user_name,
        display_name: p.display_name,
        email: p.email,
        department: p.department,
        manager: p.manager,
        external_id: external_id.or_else(|| old.and_then(|o| o.external_id.clone())),
        source: source.to_owned(),
        created_at: old.map_or(now, |o| o.created_at),
        updated_at: now,
        deactivated_at: match (p.active, old.and_then(|o| o.deactivated_at)) {
            (true, _) => None,
            (false, Some(at)) => Some(at),
            (false, None) => Some(now),
        },
        scim: None,
        accounts: p.accounts,
        slack: p.slack,
        logins: p.logins.into_iter().map(|l| (l.login, l.scope)).collect(),
        groups: p.groups,
    }
}

/// Refuses a directory in which one account, Slack id, or login in one scope belongs to two
/// people, naming both.
pub(crate) fn check_unique(people: &[&PersonRow]) -> Result<()> {
    let mut owner: HashMap<(&str, &str, &str), &str> = HashMap::new();
    for p in people {
        for link in p.links() {
            if let Some(other) = owner.insert(link, &p.user_name) {
                if other != p.user_name {
                    let (kind, value, scope) = link;
                    let place = if scope == "*" {
                        String::new()
                    } else {
                        format!(" (scope {scope})")
                    };
                    return Err(AppError::Conflict(format!(
                        "{kind} {value:?}{place} would belong to both {other} and {}; one account, Slack id or login is one person's",
                        p.user_name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// How closely a login's `scope` fits a device with `name` and `tags`: 2 named for the
/// device, 1 for one of its tags, 0 fleet-wide; `None` when it does not fit.
pub(crate) fn scope_fit(scope: &str, name: &str, tags: &[String]) -> Option<u8> {
    match scope.split_once(':') {
        _ if scope == "*" => Some(0),
        Some(("device", d)) if d == name => Some(2),
        Some(("tag", t)) if tags.iter().any(|x| x == t) => Some(1),
        _ => None,
    }
}

/// The owners of a login at the narrowest scope that fits a device with `name` and `tags`:
/// the device's own, else its tags', else the fleet's.
pub(crate) fn narrowest(owners: Vec<LoginOwner>, name: &str, tags: &[String]) -> Vec<LoginOwner> {
    narrowest_by(owners, |o| &o.scope, name, tags)
}

/// [`narrowest`] of any kind of owner, given where each one's scope is.
pub(crate) fn narrowest_by<T>(
    owners: impl IntoIterator<Item = T>,
    scope: impl Fn(&T) -> &str,
    name: &str,
    tags: &[String],
) -> Vec<T> {
    let owners: Vec<T> = owners.into_iter().collect();
    let level = |o: &T| scope_fit(scope(o), name, tags);
    let best = owners.iter().filter_map(level).max();
    owners
        .into_iter()
        .filter(|o| best.is_some() && level(o) == best)
        .collect()
}

impl App {
    /// Everyone in the directory (admins, auditors, approvers).
    pub async fn people(&self, caller: &Principal) -> Result<Vec<PersonView>> {
        caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        Ok(self
            .store
            .people()
            .await?
            .into_iter()
            .map(person_view)
            .collect())
    }

    pub async fn person(&self, caller: &Principal, user_name: &str) -> Result<PersonView> {
        caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        self.store
            .person(user_name)
            .await?
            .map(person_view)
            .ok_or_else(|| AppError::NotFound(format!("the directory has no {user_name:?}")))
    }

    /// Creates or replaces one person (admins).
    pub async fn put_person(&self, caller: &Principal, person: PersonIn) -> Result<PersonView> {
        let admin = caller.require(&[Role::Admin])?;
        let name = person.user_name.clone();
        let actor = format!("account:{}", admin.name);
        let mut tx = self.store.begin().await?;
        self.write_people(&mut tx, &actor, "api", vec![person], false, false)
            .await?;
        tx.commit().await?;
        self.person(caller, &name).await
    }

    /// Removes one person (admins). Their accounts stay; only the links go.
    pub async fn remove_person(&self, caller: &Principal, user_name: &str) -> Result<()> {
        let admin = caller.require(&[Role::Admin])?;
        let mut tx = self.store.begin().await?;
        let Some(p) = tx
            .people_in_tx()
            .await?
            .into_iter()
            .find(|p| p.user_name == user_name)
        else {
            return Err(AppError::NotFound(format!(
                "the directory has no {user_name:?}"
            )));
        };
        tx.delete_person(&p.id).await?;
        tx.append_audit(self.event(
            format!("account:{}", admin.name),
            "person.removed",
            format!("person:{}", p.id),
            serde_json::json!({ "user_name": p.user_name }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Many people at once, all or nothing (admins). A dry run says what would change.
    pub async fn import_directory(
        &self,
        caller: &Principal,
        import: DirectoryImport,
    ) -> Result<DirectoryImportOut> {
        let admin = caller.require(&[Role::Admin])?;
        if import.people.len() > MAX_IMPORT {
            return Err(AppError::BadRequest(format!(
                "an import may name at most {MAX_IMPORT} people; split the file"
            )));
        }
        let actor = format!("account:{}", admin.name);
        let mut tx = self.store.begin().await?;
        let out = self
            .write_people(
                &mut tx,
                &actor,
                "csv",
                import.people,
                import.remove_missing,
                import.dry_run,
            )
            .await?;
        if !import.dry_run {
            tx.commit().await?;
        }
        Ok(out)
    }

    /// Writes `people` (each checked; the whole directory checked afterwards) with an audit
    /// record each, deactivates accounts of people who left, and with `remove_missing` removes
    /// the people `source`'s kind wrote that are not named. Nothing is written if any check
    /// fails, nor on a `dry_run` (which says what would change); the caller commits.
    pub(crate) async fn write_people(
        &self,
        tx: &mut Tx<'_>,
        actor: &str,
        source: &str,
        people: Vec<PersonIn>,
        remove_missing: bool,
        dry_run: bool,
    ) -> Result<DirectoryImportOut> {
        let now = self.now();
        let existing = tx.people_in_tx().await?;
        let by_name: HashMap<&str, &PersonRow> =
            existing.iter().map(|p| (p.user_name.as_str(), p)).collect();
        let mut named: BTreeMap<String, usize> = BTreeMap::new();
        let mut written: Vec<(PersonRow, Vec<String>, bool)> = Vec::new();
        let mut unchanged = 0;
        for (i, person) in people.into_iter().enumerate() {
            person
                .check()
                .map_err(|e| AppError::BadRequest(format!("person {}: {e}", i + 1)))?;
            if let Some(first) = named.insert(person.user_name.clone(), i) {
                return Err(AppError::BadRequest(format!(
                    "{} is named twice (people {} and {}); name each person once",
                    person.user_name,
                    first + 1,
                    i + 1
                )));
            }
            let old = by_name.get(person.user_name.as_str()).copied();
            if let Some(o) = old.filter(|o| o.source.starts_with("scim:") && o.source != source) {
                return Err(AppError::Conflict(format!(
                    "{} is managed by the identity provider {} (SCIM); change them there",
                    o.user_name,
                    o.source.trim_start_matches("scim:")
                )));
            }
            let row = person_row(person, old, source, None, now);
            match old {
                Some(o) => {
                    let fields = changed_fields(o, &row);
                    if fields.is_empty() {
                        unchanged += 1;
                    } else {
                        written.push((row, fields, false));
                    }
                }
                None => written.push((row, vec![], true)),
            }
        }
        let scim = |p: &PersonRow| p.source.starts_with("scim:");
        let removed: Vec<&PersonRow> = if remove_missing {
            existing
                .iter()
                .filter(|p| !named.contains_key(&p.user_name) && !scim(p))
                .collect()
        } else {
            vec![]
        };
        // The directory as it would be.
        let replaced: HashMap<&str, &PersonRow> = written
            .iter()
            .map(|(p, _, _)| (p.user_name.as_str(), p))
            .collect();
        let after: Vec<&PersonRow> = existing
            .iter()
            .filter(|p| !removed.iter().any(|r| r.id == p.id))
            .map(|p| replaced.get(p.user_name.as_str()).copied().unwrap_or(p))
            .chain(written.iter().filter(|(_, _, new)| *new).map(|(p, _, _)| p))
            .collect();
        check_unique(&after)?;
        let mut out = DirectoryImportOut {
            dry_run,
            created: 0,
            updated: 0,
            unchanged,
            removed: removed.len() as u32,
            changes: vec![],
        };
        for (row, fields, new) in &written {
            if *new {
                out.created += 1;
            } else {
                out.updated += 1;
            }
            out.changes.push(DirectoryChange {
                user_name: row.user_name.clone(),
                change: if *new { "create" } else { "update" }.into(),
                fields: fields.clone(),
            });
            if dry_run {
                continue;
            }
            tx.put_person(row).await?;
            tx.append_audit(self.event(
                actor,
                if *new {
                    "person.created"
                } else {
                    "person.updated"
                },
                format!("person:{}", row.id),
                serde_json::json!({ "user_name": row.user_name, "source": row.source,
                    "fields": fields, "accounts": row.accounts, "slack": row.slack,
                    "logins": row.logins, "groups": row.groups, "department": row.department,
                    "manager": row.manager, "active": row.deactivated_at.is_none() }),
            ))
            .await?;
            if row.deactivated_at.is_some() {
                self.disable_accounts_of(tx, row).await?;
            }
        }
        for p in removed {
            out.changes.push(DirectoryChange {
                user_name: p.user_name.clone(),
                change: "remove".into(),
                fields: vec![],
            });
            if dry_run {
                continue;
            }
            tx.delete_person(&p.id).await?;
            tx.append_audit(self.event(
                actor,
                "person.removed",
                format!("person:{}", p.id),
                serde_json::json!({ "user_name": p.user_name }),
            ))
            .await?;
        }
        Ok(out)
    }

    /// A person who left: their accounts stop working (each disabled, with an audit record).
    pub(crate) async fn disable_accounts_of(
        &self,
        tx: &mut Tx<'_>,
        person: &PersonRow,
    ) -> Result<()> {
        let now = self.now();
        for name in &person.accounts {
            let Some(account) = tx.account_in_tx(name).await? else {
                continue;
            };
            if account.disabled_at.is_some() {
                continue;
            }
            tx.set_account_disabled(name, Some(now)).await?;
            tx.end_credentials(name).await?;
            tx.append_audit(self.event(
                "directory",
                "account.disabled",
                format!("account:{name}"),
                serde_json::json!({ "because": format!("{} is no longer active in the directory", person.user_name) }),
            ))
            .await?;
        }
        Ok(())
    }

    /// A device's check-in: the human logins it has, replacing what it said before.
    pub async fn report_device_users(
        &self,
        caller: &Principal,
        body: DeviceUsersIn,
    ) -> Result<u32> {
        let device = caller.device()?;
        if body.users.len() > MAX_DEVICE_USERS {
            return Err(AppError::BadRequest(format!(
                "a device reports at most {MAX_DEVICE_USERS} logins"
            )));
        }
        let mut users: Vec<(u32, String)> = Vec::with_capacity(body.users.len());
        for u in body.users {
            elevate_proto::v1::check_name("a login", &u.login).map_err(AppError::BadRequest)?;
            if u.uid < 1000 {
                return Err(AppError::BadRequest(format!(
                    "uid {} is below 1000; a device reports its human logins only",
                    u.uid
                )));
            }
            users.push((u.uid, u.login));
        }
        users.sort();
        users.dedup_by_key(|u| u.0);
        let mut tx = self.store.begin().await?;
        tx.set_device_users(&device.id, &users, self.now()).await?;
        tx.commit().await?;
        Ok(users.len() as u32)
    }

    /// The people the login `login` on device `device` belongs to (empty: unknown). Several
    /// when the directory names it for several of the device's tags: then each of them counts
    /// as the requester.
    pub(crate) async fn owners_of_login(
        dir: &mut Directory<'_>,
        device: &str,
        login: &str,
    ) -> Result<Vec<LoginOwner>> {
        let owners = dir.login_owners(login).await?;
        if owners.is_empty() {
            return Ok(owners);
        }
        let tags = dir.device_tags(device).await?;
        Ok(narrowest(owners, device, &tags))
    }

    /// True when accounts `a` and `b` are one person's (the same account, or linked to the same
    /// person in the directory).
    pub(crate) async fn same_person(dir: &mut Directory<'_>, a: &str, b: &str) -> Result<bool> {
        if a == b {
            return Ok(true);
        }
        let Some((pa, _)) = dir.person_linked("account", a).await? else {
            return Ok(false);
        };
        Ok(dir
            .person_linked("account", b)
            .await?
            .is_some_and(|(pb, _)| pa == pb))
    }

    /// Separation of duties: `Err` (what to tell the approver) when the account `approver` is
    /// the person behind `login` on `device`, or when the login is unknown and `unknown` says
    /// such requests are refused. Read through `dir` (a transaction's, where there is one).
    pub(crate) async fn separation(
        dir: &mut Directory<'_>,
        approver: &str,
        device: &str,
        login: &str,
        unknown: UnknownRequester,
    ) -> Result<std::result::Result<(), String>> {
        if approver == login {
            return Ok(Err(
                "you cannot decide your own request; another approver must".into(),
            ));
        }
        let owners = Self::owners_of_login(dir, device, login).await?;
        if owners.is_empty() {
            return Ok(match unknown {
                UnknownRequester::CompareNames => Ok(()),
                UnknownRequester::Refuse => Err(format!(
                    "the directory does not say whose login {login:?} on {device} is, and this rule refuses unknown requesters; add the login to the directory (elevatectl directory import) and decide again"
                )),
            });
        }
        let Some((person, user_name)) = dir.person_linked("account", approver).await? else {
            return Ok(Ok(()));
        };
        if owners.iter().any(|o| o.person_id == person) {
            return Ok(Err(format!(
                "this request was made under {login:?}, a login of {user_name}, and {approver} is {user_name}'s account: you cannot decide your own request; another approver must"
            )));
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(person: &str, scope: &str) -> LoginOwner {
        LoginOwner {
            person_id: person.into(),
            user_name: person.into(),
            scope: scope.into(),
        }
    }

    #[test]
    fn the_narrowest_scope_that_fits_the_device_wins() {
        let all = vec![
            owner("fleet", "*"),
            owner("finance", "tag:finance"),
            owner("ops", "tag:ops"),
            owner("web", "device:web-1"),
        ];
        let names = |o: Vec<LoginOwner>| o.into_iter().map(|o| o.person_id).collect::<Vec<_>>();
        assert_eq!(names(narrowest(all.clone(), "web-1", &[])), ["web"]);
        assert_eq!(
            names(narrowest(all.clone(), "pc-7", &["finance".into()])),
            ["finance"]
        );
        // Two tags that name two people: both count as the requester.
        assert_eq!(
            names(narrowest(
                all.clone(),
                "pc-7",
                &["finance".into(), "ops".into()]
            )),
            ["finance", "ops"]
        );
        assert_eq!(names(narrowest(all.clone(), "pc-8", &[])), ["fleet"]);
        assert!(narrowest(vec![owner("web", "device:web-1")], "web-2", &[]).is_empty());
    }
}
