//! The people directory (people, what they are known by, their groups) and the human logins
//! devices report.
//!
//! Must never: let one account, chat id, or login in one scope belong to two people (the
//! table's key says so; `app::people` checks first, so the error names both).

use sqlx::any::AnyRow;

use super::{get, opt_ts, ts, Result, Store, Tx};

/// A person and every link they have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub department: Option<String>,
    pub manager: Option<String>,
    pub external_id: Option<String>,
    pub source: String,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
    pub deactivated_at: Option<jiff::Timestamp>,
    /// The SCIM resource as its provider last wrote it (people a provider manages).
    pub scim: Option<String>,
    /// Sorted, as stored.
    pub accounts: Vec<String>,
    pub slack: Vec<String>,
    /// (login, scope), sorted.
    pub logins: Vec<(String, String)>,
    pub groups: Vec<String>,
}

impl PersonRow {
    /// What the person is known by: (kind, value, scope), as `person_links` keeps it.
    pub fn links(&self) -> impl Iterator<Item = (&'static str, &str, &str)> {
        self.accounts
            .iter()
            .map(|a| ("account", a.as_str(), "*"))
            .chain(self.slack.iter().map(|s| ("slack", s.as_str(), "*")))
            .chain(
                self.logins
                    .iter()
                    .map(|(l, scope)| ("login", l.as_str(), scope.as_str())),
            )
    }
}

/// A directory group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub source: String,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
    /// People's ids, sorted.
    pub members: Vec<String>,
}

async fn read_groups(conn: &mut sqlx::AnyConnection) -> Result<Vec<GroupRow>> {
    let rows = sqlx::query(
        "SELECT id, display_name, external_id, source, created_ms, updated_ms \
         FROM directory_groups ORDER BY display_name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut groups: Vec<GroupRow> = rows
        .iter()
        .map(|r| {
            Ok(GroupRow {
                id: get(r, "id")?,
                display_name: get(r, "display_name")?,
                external_id: get(r, "external_id")?,
                source: get(r, "source")?,
                created_at: ts(get(r, "created_ms")?)?,
                updated_at: ts(get(r, "updated_ms")?)?,
                members: vec![],
            })
        })
        .collect::<Result<_>>()?;
    let members =
        sqlx::query("SELECT group_id, person_id FROM directory_members ORDER BY person_id")
            .fetch_all(&mut *conn)
            .await?;
    for m in &members {
        let group: String = get(m, "group_id")?;
        if let Some(g) = groups.iter_mut().find(|g| g.id == group) {
            g.members.push(get(m, "person_id")?);
        }
    }
    Ok(groups)
}

/// A person some login on a device may belong to, with the scope that said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOwner {
    pub person_id: String,
    pub user_name: String,
    pub scope: String,
}

const PERSON_COLUMNS: &str = "id, user_name, display_name, email, department, manager, \
     external_id, source, created_ms, updated_ms, deactivated_ms, scim_json";

fn person(row: &AnyRow) -> Result<PersonRow> {
    Ok(PersonRow {
        id: get(row, "id")?,
        user_name: get(row, "user_name")?,
        display_name: get(row, "display_name")?,
        email: get(row, "email")?,
        department: get(row, "department")?,
        manager: get(row, "manager")?,
        external_id: get(row, "external_id")?,
        source: get(row, "source")?,
        created_at: ts(get(row, "created_ms")?)?,
        updated_at: ts(get(row, "updated_ms")?)?,
        deactivated_at: opt_ts(get(row, "deactivated_ms")?)?,
        scim: get(row, "scim_json")?,
        accounts: vec![],
        slack: vec![],
        logins: vec![],
        groups: vec![],
    })
}

/// Reads people (all, or those `filter` picks) with their links and groups, on `conn`.
async fn read_people(
    conn: &mut sqlx::AnyConnection,
    filter: Option<(&str, &str)>,
) -> Result<Vec<PersonRow>> {
    let rows = match filter {
        None => {
            sqlx::query(&format!(
                "SELECT {PERSON_COLUMNS} FROM people ORDER BY user_name"
            ))
            .fetch_all(&mut *conn)
            .await?
        }
        Some((column, value)) => {
            // `column` is one of this module's literals, never input.
            sqlx::query(&format!(
                "SELECT {PERSON_COLUMNS} FROM people WHERE {column} = $1 ORDER BY user_name"
            ))
            .bind(value)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let mut people: Vec<PersonRow> = rows.iter().map(person).collect::<Result<_>>()?;
    if people.is_empty() {
        return Ok(people);
    }
    let index: std::collections::HashMap<String, usize> = people
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    let links = sqlx::query(
        "SELECT person_id, kind, value, scope FROM person_links ORDER BY kind, value, scope",
    )
    .fetch_all(&mut *conn)
    .await?;
    for l in &links {
        let Some(&i) = index.get(&get::<String>(l, "person_id")?) else {
            continue;
        };
        let value: String = get(l, "value")?;
        match get::<String>(l, "kind")?.as_str() {
            "account" => people[i].accounts.push(value),
            "slack" => people[i].slack.push(value),
            "login" => people[i].logins.push((value, get(l, "scope")?)),
            other => {
                return Err(super::StoreError::Corrupt(format!(
                    "person link kind {other:?}"
                )))
            }
        }
    }
    let members = sqlx::query(
        "SELECT m.person_id, g.display_name FROM directory_members m \
         JOIN directory_groups g ON g.id = m.group_id ORDER BY g.display_name",
    )
    .fetch_all(&mut *conn)
    .await?;
    for m in &members {
        if let Some(&i) = index.get(&get::<String>(m, "person_id")?) {
            people[i].groups.push(get(m, "display_name")?);
        }
    }
    Ok(people)
}

impl Tx<'_> {
    /// Every person, read inside this transaction (an import decides on what it reads here).
    pub async fn people_in_tx(&mut self) -> Result<Vec<PersonRow>> {
        read_people(&mut self.tx, None).await
    }

    /// Writes a person and replaces their links and groups (groups are made when first named).
    pub async fn put_person(&mut self, p: &PersonRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO people (id, user_name, display_name, email, department, manager, \
             external_id, source, created_ms, updated_ms, deactivated_ms, scim_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET user_name = excluded.user_name, \
             display_name = excluded.display_name, email = excluded.email, \
             department = excluded.department, manager = excluded.manager, \
             external_id = excluded.external_id, source = excluded.source, \
             updated_ms = excluded.updated_ms, deactivated_ms = excluded.deactivated_ms, \
             scim_json = excluded.scim_json",
        )
        .bind(&p.id)
        .bind(&p.user_name)
        .bind(&p.display_name)
        .bind(&p.email)
        .bind(&p.department)
        .bind(&p.manager)
        .bind(&p.external_id)
        .bind(&p.source)
        .bind(p.created_at.as_millisecond())
        .bind(p.updated_at.as_millisecond())
        .bind(p.deactivated_at.map(|t| t.as_millisecond()))
        .bind(&p.scim)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM person_links WHERE person_id = $1")
            .bind(&p.id)
            .execute(&mut *self.tx)
            .await?;
        for (kind, value, scope) in p.links() {
            sqlx::query(
                "INSERT INTO person_links (person_id, kind, value, scope) VALUES ($1, $2, $3, $4)",
            )
            .bind(&p.id)
            .bind(kind)
            .bind(value)
            .bind(scope)
            .execute(&mut *self.tx)
            .await?;
        }
        sqlx::query("DELETE FROM directory_members WHERE person_id = $1")
            .bind(&p.id)
            .execute(&mut *self.tx)
            .await?;
        for group in &p.groups {
            let id = self.directory_group(group, &p.source, p.updated_at).await?;
            sqlx::query("INSERT INTO directory_members (group_id, person_id) VALUES ($1, $2)")
                .bind(&id)
                .bind(&p.id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// The id of the directory group called `name`, made if it does not exist.
    async fn directory_group(
        &mut self,
        name: &str,
        source: &str,
        now: jiff::Timestamp,
    ) -> Result<String> {
        if let Some(row) = sqlx::query("SELECT id FROM directory_groups WHERE display_name = $1")
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await?
        {
            return get(&row, "id");
        }
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO directory_groups (id, display_name, source, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&id)
        .bind(name)
        .bind(source)
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(id)
    }

    /// Writes a directory group and replaces its members (people's ids).
    pub async fn put_group(&mut self, g: &GroupRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO directory_groups (id, display_name, external_id, source, created_ms, \
             updated_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             display_name = excluded.display_name, external_id = excluded.external_id, \
             source = excluded.source, updated_ms = excluded.updated_ms",
        )
        .bind(&g.id)
        .bind(&g.display_name)
        .bind(&g.external_id)
        .bind(&g.source)
        .bind(g.created_at.as_millisecond())
        .bind(g.updated_at.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM directory_members WHERE group_id = $1")
            .bind(&g.id)
            .execute(&mut *self.tx)
            .await?;
        for person in &g.members {
            sqlx::query("INSERT INTO directory_members (group_id, person_id) VALUES ($1, $2)")
                .bind(&g.id)
                .bind(person)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    pub async fn delete_group(&mut self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM directory_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every directory group with its members, read inside this transaction.
    pub async fn groups_in_tx(&mut self) -> Result<Vec<GroupRow>> {
        read_groups(&mut self.tx).await
    }

    /// Gives `provider` a new SCIM token (its old one stops working).
    pub async fn put_scim_token(
        &mut self,
        provider: &str,
        token_hash: &str,
        now: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO scim_tokens (provider, token_hash, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (provider) DO UPDATE SET token_hash = excluded.token_hash, \
             created_ms = excluded.created_ms",
        )
        .bind(provider)
        .bind(token_hash)
        .bind(now.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Removes a person (their links and memberships go with them).
    pub async fn delete_person(&mut self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM people WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the human logins a device reported.
    pub async fn set_device_users(
        &mut self,
        device_id: &str,
        users: &[(u32, String)],
        now: jiff::Timestamp,
    ) -> Result<()> {
        sqlx::query("DELETE FROM device_users WHERE device_id = $1")
            .bind(device_id)
            .execute(&mut *self.tx)
            .await?;
        for (uid, login) in users {
            sqlx::query(
                "INSERT INTO device_users (device_id, uid, login, seen_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(device_id)
            .bind(i64::from(*uid))
            .bind(login)
            .bind(now.as_millisecond())
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }
}

/// Who is behind an account or a login, read on the connection of a transaction (so a
/// decision reads what it writes beside) or of the pool.
pub struct Directory<'c>(Conn<'c>);

impl std::fmt::Debug for Directory<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Directory")
    }
}

enum Conn<'c> {
    Pool(sqlx::pool::PoolConnection<sqlx::Any>),
    Tx(&'c mut sqlx::AnyConnection),
}

impl Directory<'_> {
    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.0 {
            Conn::Pool(c) => c,
            Conn::Tx(c) => c,
        }
    }

    /// The person an account or chat id (`kind` `account` or `slack`) belongs to: (id,
    /// user_name).
    pub async fn person_linked(
        &mut self,
        kind: &str,
        value: &str,
    ) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT p.id, p.user_name FROM person_links l JOIN people p ON p.id = l.person_id \
             WHERE l.kind = $1 AND l.value = $2",
        )
        .bind(kind)
        .bind(value)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| Ok((get(&r, "id")?, get(&r, "user_name")?)))
            .transpose()
    }

    /// Everyone who has the login `login` in some scope (the caller picks the scope that fits).
    pub async fn login_owners(&mut self, login: &str) -> Result<Vec<LoginOwner>> {
        let rows = sqlx::query(
            "SELECT p.id, p.user_name, l.scope FROM person_links l \
             JOIN people p ON p.id = l.person_id WHERE l.kind = 'login' AND l.value = $1",
        )
        .bind(login)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LoginOwner {
                    person_id: get(r, "id")?,
                    user_name: get(r, "user_name")?,
                    scope: get(r, "scope")?,
                })
            })
            .collect()
    }

    /// The tags of the device called `name` (none when there is no such device).
    pub async fn device_tags(&mut self, name: &str) -> Result<Vec<String>> {
        let row = sqlx::query("SELECT tags_json FROM devices WHERE name = $1")
            .bind(name)
            .fetch_optional(self.conn())
            .await?;
        match row {
            Some(r) => super::json_list(&get::<String>(&r, "tags_json")?),
            None => Ok(vec![]),
        }
    }
}

impl Tx<'_> {
    /// The directory as this transaction sees it.
    pub fn directory(&mut self) -> Directory<'_> {
        Directory(Conn::Tx(&mut self.tx))
    }
}

impl Store {
    /// The directory, on a connection of the pool.
    pub async fn directory(&self) -> Result<Directory<'static>> {
        Ok(Directory(Conn::Pool(self.pool.acquire().await?)))
    }

    /// Every directory group with its members.
    pub async fn groups(&self) -> Result<Vec<GroupRow>> {
        let mut conn = self.pool.acquire().await?;
        read_groups(&mut conn).await
    }

    /// The provider a SCIM token (its SHA-256, hex) belongs to.
    pub async fn scim_provider(&self, token_hash: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT provider FROM scim_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get(&r, "provider")).transpose()
    }

    /// Every person, by user_name.
    pub async fn people(&self) -> Result<Vec<PersonRow>> {
        let mut conn = self.pool.acquire().await?;
        read_people(&mut conn, None).await
    }

    /// One person, by user_name.
    pub async fn person(&self, user_name: &str) -> Result<Option<PersonRow>> {
        let mut conn = self.pool.acquire().await?;
        Ok(read_people(&mut conn, Some(("user_name", user_name)))
            .await?
            .pop())
    }

    /// The login a device last reported for `uid`.
    pub async fn device_user(&self, device_id: &str, uid: u32) -> Result<Option<String>> {
        let row = sqlx::query("SELECT login FROM device_users WHERE device_id = $1 AND uid = $2")
            .bind(device_id)
            .bind(i64::from(uid))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get(&r, "login")).transpose()
    }

    /// The human logins a device last reported, by uid.
    pub async fn device_users(&self, device_id: &str) -> Result<Vec<(u32, String)>> {
        let rows =
            sqlx::query("SELECT uid, login FROM device_users WHERE device_id = $1 ORDER BY uid")
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let uid: i64 = get(r, "uid")?;
                Ok((
                    u32::try_from(uid)
                        .map_err(|_| super::StoreError::Corrupt(format!("uid {uid}")))?,
                    get(r, "login")?,
                ))
            })
            .collect()
    }
}
