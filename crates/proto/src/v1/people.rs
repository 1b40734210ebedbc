//! The people directory: who is behind accounts, chat ids and the login names on devices.
//!
//! Must never: accept a field without a bound (every text and every list has one, checked by
//! `PersonIn::check` before anything is stored).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most people one import may name.
pub const MAX_IMPORT: usize = 50_000;
/// Largest import body the server reads.
pub const MAX_IMPORT_BODY: usize = 32 * 1024 * 1024;
/// The most accounts, chat ids, logins or groups one person may have, each.
pub const MAX_LINKS: usize = 64;
/// Longest name, login, group or id.
pub const MAX_NAME: usize = 256;
/// The most human logins a device reports.
pub const MAX_DEVICE_USERS: usize = 10_000;

/// A login name a person uses on devices, and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonLogin {
    pub login: String,
    /// `*` (every device, the default), `device:<name>` or `tag:<tag>`. On a device, a login
    /// named for that device wins over one named for its tags, which wins over `*`.
    #[serde(default = "everywhere")]
    pub scope: String,
}

fn everywhere() -> String {
    "*".into()
}

fn yes() -> bool {
    true
}

/// A person as an admin or an import writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonIn {
    /// The directory's handle for them (unique; the identity provider's userName).
    pub user_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    /// The manager's user_name.
    #[serde(default)]
    pub manager: Option<String>,
    /// Elevate accounts (portal and API) that are theirs.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Slack user ids that are theirs.
    #[serde(default)]
    pub slack: Vec<String>,
    /// Login names they use on devices.
    #[serde(default)]
    pub logins: Vec<PersonLogin>,
    /// Directory groups they are in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// False for someone who has left: their accounts are disabled.
    #[serde(default = "yes")]
    pub active: bool,
}

/// A person in the directory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PersonView {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub department: Option<String>,
    pub manager: Option<String>,
    pub accounts: Vec<String>,
    pub slack: Vec<String>,
    pub logins: Vec<PersonLogin>,
    pub groups: Vec<String>,
    pub active: bool,
    /// `api`, `csv` or `scim:<provider>`: what wrote them last.
    pub source: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// Many people at once: the whole file, decided in one transaction.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectoryImport {
    pub people: Vec<PersonIn>,
    /// Show what would change and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Remove people the file does not name (only those an earlier import or the API wrote;
    /// never those a SCIM provider manages).
    #[serde(default)]
    pub remove_missing: bool,
}

/// What an import does to one person.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DirectoryChange {
    pub user_name: String,
    /// `create`, `update` or `remove`.
    pub change: String,
    /// The fields that change (for an update).
    pub fields: Vec<String>,
}

/// The result of an import (or of its dry run).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DirectoryImportOut {
    pub dry_run: bool,
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub removed: u32,
    /// Every person that changes, in the file's order (removals last).
    pub changes: Vec<DirectoryChange>,
}

/// One human login on a device (uid ≥ 1000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceUser {
    pub uid: u32,
    pub login: String,
}

/// A device's check-in: the human logins it has.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceUsersIn {
    pub users: Vec<DeviceUser>,
}

/// A SCIM bearer token for an identity provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimTokenIn {
    /// The provider's name (letters, digits, - and _), e.g. `okta` or `entra`.
    pub provider: String,
}

/// The token, shown once; the provider's previous one stops working.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ScimTokenOut {
    pub provider: String,
    pub token: String,
    /// Where the provider sends SCIM requests.
    pub base_url: String,
}

impl std::fmt::Debug for ScimTokenOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimTokenOut")
            .field("provider", &self.provider)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// What the server kept of a device's check-in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceUsersOut {
    /// How many logins it recorded.
    pub recorded: u32,
}

/// Checks a name, login, group or id: not blank, bounded, no control characters, and no
/// spaces at its ends (a trailing space makes a second, invisible name).
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > MAX_NAME {
        return Err(format!("{what} is longer than {MAX_NAME} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what} {value:?} holds control characters"));
    }
    if value.trim() != value {
        return Err(format!("{what} {value:?} starts or ends with a space"));
    }
    Ok(())
}

/// Checks a login's scope: `*`, `device:<name>` or `tag:<tag>`.
pub fn check_scope(scope: &str) -> Result<(), String> {
    if scope == "*" {
        return Ok(());
    }
    match scope.split_once(':') {
        Some(("device", name)) => check_name("the device in a login's scope", name),
        Some(("tag", tag)) => check_name("the tag in a login's scope", tag),
        _ => Err(format!(
            "scope {scope:?} is not one; write \"*\" (every device), \"device:<name>\" or \"tag:<tag>\""
        )),
    }
}

impl PersonIn {
    /// Checks every field's bound; the message names the person and the field.
    pub fn check(&self) -> Result<(), String> {
        let who = &self.user_name;
        check_name("user_name", who)?;
        let within = |e: String| format!("{who}: {e}");
        for (what, value) in [
            ("display_name", &self.display_name),
            ("email", &self.email),
            ("department", &self.department),
            ("manager", &self.manager),
        ] {
            if let Some(v) = value {
                check_name(what, v).map_err(within)?;
            }
        }
        for (what, list) in [
            ("accounts", &self.accounts),
            ("slack", &self.slack),
            ("groups", &self.groups),
        ] {
            if list.len() > MAX_LINKS {
                return Err(within(format!("more than {MAX_LINKS} {what}")));
            }
            for v in list {
                check_name(&format!("an entry of {what}"), v).map_err(within)?;
            }
        }
        if self.logins.len() > MAX_LINKS {
            return Err(within(format!("more than {MAX_LINKS} logins")));
        }
        for l in &self.logins {
            check_name("a login", &l.login).map_err(within)?;
            check_scope(&l.scope).map_err(within)?;
        }
        Ok(())
    }

    /// The same person with lists sorted and repeats dropped, so that two ways of writing one
    /// person compare equal.
    pub fn normalised(mut self) -> PersonIn {
        for list in [&mut self.accounts, &mut self.slack, &mut self.groups] {
            list.sort();
            list.dedup();
        }
        self.logins.sort();
        self.logins.dedup();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str) -> PersonIn {
        serde_json::from_value(serde_json::json!({ "user_name": name })).unwrap()
    }

    #[test]
    fn a_person_is_bounded_and_plain() {
        assert!(person("alice").check().is_ok());
        assert!(person("").check().is_err());
        assert!(person("al\u{7}ice").check().is_err());
        assert!(person("alice ").check().is_err());
        assert!(person(&"a".repeat(MAX_NAME + 1)).check().is_err());
        let mut p = person("alice");
        p.logins = vec![PersonLogin {
            login: "alice".into(),
            scope: "host:web-1".into(),
        }];
        let e = p.check().unwrap_err();
        assert!(e.contains("device:<name>"), "{e}");
        p.logins[0].scope = "device:web-1".into();
        assert!(p.check().is_ok());
        p.accounts = (0..=MAX_LINKS).map(|i| format!("a{i}")).collect();
        assert!(p.check().is_err());
    }

    #[test]
    fn a_login_is_fleet_wide_unless_scoped_and_people_are_active_unless_said() {
        let p: PersonIn = serde_json::from_value(serde_json::json!({
            "user_name": "alice", "logins": [{ "login": "alice" }] }))
        .unwrap();
        assert_eq!(p.logins[0].scope, "*");
        assert!(p.active);
        assert!(serde_json::from_value::<PersonIn>(
            serde_json::json!({ "user_name": "a", "unknown": 1 })
        )
        .is_err());
    }
}
