//! SCIM provisioning: an identity provider (one bearer token each) creates, changes and removes
//! the people and groups it manages; a User is a person of the directory (userName is their
//! Elevate account's name; the Elevate extension carries device logins and Slack ids).
//!
//! Must never: let a provider read or change people or groups another source manages; leave
//! a deactivated or deleted person's accounts working; store a token (only its SHA-256); apply
//! half a change.

use elevate_proto::v1::{PersonIn, PersonLogin};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::people::{check_unique, person_row};
use super::{App, AppError, Principal, Role};
use crate::scim::{self, Invalid, Kind};
use crate::store::{GroupRow, PersonRow, StoreError, Tx};

/// An answer a SCIM client reads: status, `scimType` and detail.
#[derive(Debug)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl From<Invalid> for ScimError {
    fn from(e: Invalid) -> Self {
        ScimError {
            status: 400,
            scim_type: Some(e.scim_type),
            detail: e.message,
        }
    }
}

impl From<AppError> for ScimError {
    fn from(e: AppError) -> Self {
        let (status, scim_type) = match &e {
            AppError::BadRequest(_) => (400, Some("invalidValue")),
            AppError::Unauthenticated(_) => (401, None),
            AppError::Forbidden(_) => (403, None),
            AppError::NotFound(_) => (404, None),
            AppError::Conflict(_) => (409, Some("uniqueness")),
            AppError::Unexpected(err) => {
                tracing::error!(error = ?err, "SCIM request failed");
                return ScimError {
                    status: 500,
                    scim_type: None,
                    detail: "internal error; the server log has the details".into(),
                };
            }
            _ => (400, None),
        };
        ScimError {
            status,
            scim_type,
            detail: e.to_string(),
        }
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        AppError::from(e).into()
    }
}

type Result<T> = std::result::Result<T, ScimError>;

fn not_found(kind: Kind, id: &str) -> ScimError {
    ScimError {
        status: 404,
        scim_type: None,
        detail: format!("no {} {id}", kind.name()),
    }
}

/// The person `id` among `people`, if `source` (a provider) manages them.
fn own_person<'a>(people: &'a [PersonRow], id: &str, source: &str) -> Result<&'a PersonRow> {
    people
        .iter()
        .find(|p| p.id == id && p.source == source)
        .ok_or_else(|| not_found(Kind::User, id))
}

/// The group `id` among `groups`, if `source` (a provider) manages it.
fn own_group<'a>(groups: &'a [GroupRow], id: &str, source: &str) -> Result<&'a GroupRow> {
    groups
        .iter()
        .find(|g| g.id == id && g.source == source)
        .ok_or_else(|| not_found(Kind::Group, id))
}

/// The identity provider a SCIM request comes from.
#[derive(Debug, Clone)]
pub struct Provider(pub String);

impl Provider {
    fn source(&self) -> String {
        format!("scim:{}", self.0)
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The most resources one list answer holds.
pub const MAX_PAGE: usize = 1000;

/// Which resources a list asks for.
#[derive(Debug, Default)]
pub struct ListQuery<'a> {
    pub filter: Option<&'a str>,
    /// 1-based.
    pub start: Option<usize>,
    pub count: Option<usize>,
}

fn login_of(text: &str) -> PersonLogin {
    for marker in ["@device:", "@tag:"] {
        if let Some(at) = text.rfind(marker) {
            return PersonLogin {
                login: text[..at].to_owned(),
                scope: text[at + 1..].to_owned(),
            };
        }
    }
    PersonLogin {
        login: text.to_owned(),
        scope: "*".into(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The person a cleaned User resource describes (groups stay as they are: Groups own them).
/// `link_account`: whether the person's userName names an Elevate account they may be linked
/// to (never a local account: single sign-on and SCIM do not take those over).
fn person_in(
    doc: &Value,
    groups: Vec<String>,
    people: &[PersonRow],
    link_account: bool,
) -> Result<PersonIn> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let emails = doc["emails"].as_array().cloned().unwrap_or_default();
    let email = emails
        .iter()
        .find(|e| e["primary"] == true)
        .or(emails.first())
        .and_then(|e| text(e.get("value")));
    let enterprise = &doc[scim::ENTERPRISE];
    // The manager is named by id; the directory keeps their user_name.
    let manager = text(enterprise["manager"].get("value")).map(|id| {
        people
            .iter()
            .find(|p| p.id == id)
            .map_or(id, |p| p.user_name.clone())
    });
    let elevate = &doc[scim::ELEVATE];
    let user_name = text(doc.get("userName")).unwrap_or_default();
    let person = PersonIn {
        user_name: user_name.clone(),
        display_name: text(doc.get("displayName")),
        email,
        department: text(enterprise.get("department")),
        manager,
        accounts: if link_account {
            vec![user_name]
        } else {
            vec![]
        },
        slack: strings(elevate.get("slack")),
        logins: strings(elevate.get("logins"))
            .iter()
            .map(|l| login_of(l))
            .collect(),
        groups,
        active: doc["active"].as_bool().unwrap_or(true),
    };
    person.check().map_err(|e| ScimError {
        status: 400,
        scim_type: Some("invalidValue"),
        detail: e,
    })?;
    Ok(person)
}

impl App {
    /// A new SCIM token for `provider` (admins); its previous one stops working. Shown once.
    pub async fn create_scim_token(
        &self,
        caller: &Principal,
        provider: &str,
    ) -> std::result::Result<String, AppError> {
        let admin = caller.require(&[Role::Admin])?;
        if provider.is_empty()
            || provider.len() > 64
            || !provider
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AppError::BadRequest(
                "a provider's name is 1 to 64 letters, digits, - or _ (e.g. okta, entra)".into(),
            ));
        }
        let token = format!("scim_{}", hex::encode(rand::random::<[u8; 32]>()));
        let mut tx = self.store.begin().await?;
        tx.put_scim_token(provider, &token_hash(&token), self.now())
            .await?;
        tx.append_audit(self.event(
            format!("account:{}", admin.name),
            "scim.token_issued",
            format!("scim:{provider}"),
            json!({ "provider": provider }),
        ))
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The provider behind a SCIM bearer token.
    pub async fn scim_provider(&self, token: &str) -> Result<Provider> {
        match self.store.scim_provider(&token_hash(token)).await? {
            Some(p) => Ok(Provider(p)),
            None => Err(ScimError {
                status: 401,
                scim_type: None,
                detail: "the bearer token is not a SCIM token of this server (elevatectl directory scim-token PROVIDER makes one)".into(),
            }),
        }
    }

    fn scim_base(&self) -> String {
        format!("{}/scim/v2", self.public_url().trim_end_matches('/'))
    }

    fn user_resource(&self, p: &PersonRow, groups: &[GroupRow]) -> Value {
        let base = self.scim_base();
        let mut doc: Value = p
            .scim
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| json!({ "userName": p.user_name }));
        let mut schemas = vec![json!(scim::USER)];
        for ext in [scim::ENTERPRISE, scim::ELEVATE] {
            if doc.get(ext).is_some() {
                schemas.push(json!(ext));
            }
        }
        doc["schemas"] = Value::Array(schemas);
        doc["id"] = json!(p.id);
        let of: Vec<Value> = groups
            .iter()
            .filter(|g| g.members.contains(&p.id))
            .map(|g| json!({ "value": g.id, "display": g.display_name }))
            .collect();
        if !of.is_empty() {
            doc["groups"] = Value::Array(of);
        }
        doc["meta"] = json!({ "resourceType": "User", "created": p.created_at.to_string(),
            "lastModified": p.updated_at.to_string(), "location": format!("{base}/Users/{}", p.id) });
        doc
    }

    fn group_resource(&self, g: &GroupRow) -> Value {
        let base = self.scim_base();
        let mut doc = json!({ "schemas": [scim::GROUP], "id": g.id, "displayName": g.display_name,
            "meta": { "resourceType": "Group", "created": g.created_at.to_string(),
                "lastModified": g.updated_at.to_string(), "location": format!("{base}/Groups/{}", g.id) } });
        if let Some(x) = &g.external_id {
            doc["externalId"] = json!(x);
        }
        if !g.members.is_empty() {
            doc["members"] = Value::Array(
                g.members
                    .iter()
                    .map(|m| json!({ "value": m, "$ref": format!("{base}/Users/{m}") }))
                    .collect(),
            );
        }
        doc
    }

    /// Users or Groups of `provider`, filtered and paged: (page, total).
    pub async fn scim_list(
        &self,
        provider: &Provider,
        kind: Kind,
        q: &ListQuery<'_>,
    ) -> Result<(Vec<Value>, usize, usize)> {
        let filter = q
            .filter
            .map(|f| scim::filter::parse(f).map_err(|e| scim::invalid("invalidFilter", e.0)))
            .transpose()?;
        let source = provider.source();
        let groups = self.store.groups().await?;
        let all: Vec<Value> = match kind {
            Kind::User => self
                .store
                .people()
                .await?
                .iter()
                .filter(|p| p.source == source)
                .map(|p| self.user_resource(p, &groups))
                .collect(),
            Kind::Group => groups
                .iter()
                .filter(|g| g.source == source)
                .map(|g| self.group_resource(g))
                .collect(),
        };
        let hits: Vec<Value> = all
            .into_iter()
            .filter(|r| filter.as_ref().is_none_or(|f| scim::filter::matches(r, f)))
            .collect();
        let start = q.start.unwrap_or(1).max(1);
        let count = q.count.unwrap_or(100).min(MAX_PAGE);
        let total = hits.len();
        let page = hits.into_iter().skip(start - 1).take(count).collect();
        Ok((page, total, start))
    }

    /// One User or Group of `provider`.
    pub async fn scim_get(&self, provider: &Provider, kind: Kind, id: &str) -> Result<Value> {
        let source = provider.source();
        let groups = self.store.groups().await?;
        match kind {
            Kind::User => {
                let people = self.store.people().await?;
                let p = own_person(&people, id, &source)?;
                Ok(self.user_resource(p, &groups))
            }
            Kind::Group => {
                let g = own_group(&groups, id, &source)?;
                Ok(self.group_resource(g))
            }
        }
    }

    /// Creates (`id` `None`), replaces or patches a User or Group of `provider`. `make` turns
    /// the resource as stored (cleaned; `None` when new) into the new one.
    pub async fn scim_write(
        &self,
        provider: &Provider,
        kind: Kind,
        id: Option<&str>,
        make: impl FnOnce(Option<&Value>) -> std::result::Result<Value, Invalid>,
    ) -> Result<Value> {
        let mut tx = self.store.begin().await?;
        let written = match kind {
            Kind::User => self.write_user(&mut tx, provider, id, make).await?,
            Kind::Group => self.write_group(&mut tx, provider, id, make).await?,
        };
        tx.commit().await?;
        self.scim_get(provider, kind, &written).await
    }

    async fn write_user(
        &self,
        tx: &mut Tx<'_>,
        provider: &Provider,
        id: Option<&str>,
        make: impl FnOnce(Option<&Value>) -> std::result::Result<Value, Invalid>,
    ) -> Result<String> {
        let source = provider.source();
        let now = self.now();
        let people = tx.people_in_tx().await?;
        let old = match id {
            Some(id) => Some(own_person(&people, id, &source)?),
            None => None,
        };
        let stored: Option<Value> = old
            .and_then(|p| p.scim.as_deref())
            .and_then(|s| serde_json::from_str(s).ok());
        let doc = make(stored.as_ref())?;
        let groups = old.map(|p| p.groups.clone()).unwrap_or_default();
        let user_name = doc["userName"].as_str().unwrap_or_default();
        // A local account (its own password: break glass, small installs) is never linked to a
        // provider's person, so the provider cannot disable it or speak for it.
        let local = tx
            .account_in_tx(user_name)
            .await?
            .is_some_and(|a| !super::oidc::is_sso(&a.password_hash));
        let person = person_in(&doc, groups, &people, !local)?;
        if let Some(other) = people
            .iter()
            .find(|p| p.user_name == person.user_name && Some(&p.id) != old.map(|o| &o.id))
        {
            return Err(ScimError {
                status: 409,
                scim_type: Some("uniqueness"),
                detail: format!("userName {} is taken", other.user_name),
            });
        }
        let external = doc["externalId"].as_str().map(str::to_owned);
        let mut row = person_row(person, old, &source, external, now);
        row.external_id = doc["externalId"].as_str().map(str::to_owned);
        row.scim = Some(doc.to_string());
        let after: Vec<&PersonRow> = people
            .iter()
            .filter(|p| Some(&p.id) != old.map(|o| &o.id))
            .chain(std::iter::once(&row))
            .collect();
        check_unique(&after)?;
        tx.put_person(&row).await?;
        tx.append_audit(self.event(
            format!("scim:{}", provider.0),
            if old.is_some() {
                "person.updated"
            } else {
                "person.created"
            },
            format!("person:{}", row.id),
            json!({ "user_name": row.user_name, "source": row.source, "accounts": row.accounts,
                "slack": row.slack, "logins": row.logins, "department": row.department,
                "manager": row.manager, "active": row.deactivated_at.is_none() }),
        ))
        .await?;
        if row.deactivated_at.is_some() {
            self.disable_accounts_of(tx, &row).await?;
        }
        Ok(row.id)
    }

    async fn write_group(
        &self,
        tx: &mut Tx<'_>,
        provider: &Provider,
        id: Option<&str>,
        make: impl FnOnce(Option<&Value>) -> std::result::Result<Value, Invalid>,
    ) -> Result<String> {
        let source = provider.source();
        let now = self.now();
        let groups = tx.groups_in_tx().await?;
        let old = match id {
            Some(id) => Some(own_group(&groups, id, &source)?),
            None => None,
        };
        let stored = old.map(|g| {
            let mut v = json!({ "displayName": g.display_name });
            if let Some(x) = &g.external_id {
                v["externalId"] = json!(x);
            }
            if !g.members.is_empty() {
                v["members"] =
                    Value::Array(g.members.iter().map(|m| json!({ "value": m })).collect());
            }
            v
        });
        let doc = make(stored.as_ref())?;
        let name = doc["displayName"].as_str().unwrap_or_default().to_owned();
        elevate_proto::v1::check_name("displayName", &name)
            .map_err(|e| scim::invalid("invalidValue", e))?;
        if groups
            .iter()
            .any(|g| g.display_name == name && Some(&g.id) != old.map(|o| &o.id))
        {
            return Err(ScimError {
                status: 409,
                scim_type: Some("uniqueness"),
                detail: format!("a group called {name} exists"),
            });
        }
        let people = tx.people_in_tx().await?;
        let mut members: Vec<String> = Vec::new();
        for m in doc["members"].as_array().into_iter().flatten() {
            let value = m["value"].as_str().unwrap_or_default();
            if !people.iter().any(|p| p.id == value && p.source == source) {
                return Err(scim::invalid(
                    "invalidValue",
                    format!("no User {value:?} to be a member"),
                )
                .into());
            }
            members.push(value.to_owned());
        }
        members.sort();
        members.dedup();
        let row = GroupRow {
            id: old.map_or_else(|| uuid::Uuid::now_v7().to_string(), |g| g.id.clone()),
            display_name: name,
            external_id: doc["externalId"].as_str().map(str::to_owned),
            source,
            created_at: old.map_or(now, |g| g.created_at),
            updated_at: now,
            members,
        };
        tx.put_group(&row).await?;
        tx.append_audit(self.event(
            format!("scim:{}", provider.0),
            "group.written",
            format!("group:{}", row.id),
            json!({ "display_name": row.display_name, "members": row.members }),
        ))
        .await?;
        Ok(row.id)
    }

    /// Deletes a User (their accounts are disabled first: the provider says they left) or a
    /// Group of `provider`.
    pub async fn scim_delete(&self, provider: &Provider, kind: Kind, id: &str) -> Result<()> {
        let source = provider.source();
        let mut tx = self.store.begin().await?;
        match kind {
            Kind::User => {
                let people = tx.people_in_tx().await?;
                let p = own_person(&people, id, &source)?;
                self.disable_accounts_of(&mut tx, p).await?;
                tx.delete_person(id).await?;
                tx.append_audit(self.event(
                    format!("scim:{}", provider.0),
                    "person.removed",
                    format!("person:{id}"),
                    json!({ "user_name": p.user_name }),
                ))
                .await?;
            }
            Kind::Group => {
                let groups = tx.groups_in_tx().await?;
                let g = own_group(&groups, id, &source)?;
                tx.delete_group(id).await?;
                tx.append_audit(self.event(
                    format!("scim:{}", provider.0),
                    "group.removed",
                    format!("group:{id}"),
                    json!({ "display_name": g.display_name }),
                ))
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
