//! A real server on 127.0.0.1 port 0 over a fresh SQLite file or PostgreSQL database: start
//! it, call its API as an admin or a device, check which backends can run here.
//!
//! Must never: touch a database it did not create.

use super::*;

/// A running test server.
pub struct TestServer {
    pub url: String,
    pub app: App,
    pub clock: FakeClock,
    pub db: Db,
    pub http: reqwest::Client,
    pub(crate) running: Option<Running>,
    pub(crate) pg_database: Option<String>,
    pub(crate) dir: std::path::PathBuf,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url)
            .field("db", &self.db)
            .finish()
    }
}

async fn fresh_postgres() -> anyhow::Result<(String, String)> {
    let name = format!("elevate_t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(POSTGRES_ADMIN_URL)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            )
        })?;
    sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str()).await?;
    Ok((
        name.clone(),
        format!("postgres://postgres@127.0.0.1:5432/{name}"),
    ))
}

/// Starts a server on `db` with the clock at `monday_morning()`.
pub async fn spawn(db: Db) -> TestServer {
    spawn_at(db, monday_morning()).await
}

/// Starts a server on `db` with the clock at `t`.
pub async fn spawn_at(db: Db, t: Timestamp) -> TestServer {
    spawn_with(db, t, |_| {}).await
}

/// Starts a server on `db` with the clock at `t` and settings changed by `configure` (e.g.
/// webhook subscriptions).
pub async fn spawn_with(db: Db, t: Timestamp, configure: impl FnOnce(&mut Settings)) -> TestServer {
    let dir = std::env::temp_dir().join(format!("elevate-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (store, pg_database) = match db {
        Db::Sqlite => (
            Store::open_sqlite(&dir.join("elevate.db"))
                .await
                .expect("sqlite store"),
            None,
        ),
        Db::Postgres => {
            let (name, url) = fresh_postgres().await.expect("postgres database");
            (
                Store::connect(&url).await.expect("postgres store"),
                Some(name),
            )
        }
    };
    let clock = FakeClock::at(t);
    let c = clock.clone();
    let app = App::new(
        store,
        Keys::from_bytes([1; 32], [2; 32]),
        Arc::new(move || c.now()),
        {
            let mut settings = Settings::new(dir.clone());
            configure(&mut settings);
            settings
        },
    );
    let running = elevate_server::serve(app.clone(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("server starts");
    TestServer {
        url: running.url(),
        app,
        clock,
        db,
        http: reqwest::Client::new(),
        running: Some(running),
        pg_database,
        dir,
    }
}

/// An HTTP answer: status and JSON (or `Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|e| panic!("unexpected body ({e}): {}", self.text))
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Answer {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

impl TestServer {
    /// Creates an account with the testkit password.
    pub async fn account(&self, name: &str, roles: &[Role], groups: &[&str]) {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.app
            .upsert_account(name, PASSWORD, roles, &groups)
            .await
            .expect("account saved");
    }

    /// An API token for an account created with `account`.
    pub async fn token(&self, name: &str) -> String {
        let a = self
            .post(
                None,
                "/v1/tokens",
                &serde_json::json!({"account": name, "password": PASSWORD}),
            )
            .await
            .expect(201);
        a.body["token"].as_str().expect("token").to_string()
    }

    /// An admin account named `admin` (groups helpdesk, security) and its token.
    pub async fn admin(&self) -> String {
        self.account(
            "admin",
            &[Role::Admin, Role::Approver, Role::Auditor],
            &["helpdesk", "security"],
        )
        .await;
        self.token("admin").await
    }

    /// Enrols a device with a fresh token; returns (credential, full enrolment answer).
    pub async fn enrol(&self, admin_token: &str, name: &str, tags: &[&str]) -> (String, Value) {
        let t = self
            .post(
                Some(admin_token),
                "/v1/enrol-tokens",
                &serde_json::json!({ "tags": tags }),
            )
            .await
            .expect(201);
        let token = t.body["token"].as_str().expect("token").to_string();
        let e = self
            .post(
                None,
                "/v1/enrol",
                &serde_json::json!({ "token": token, "name": name }),
            )
            .await
            .expect(201);
        (
            e.body["credential"]
                .as_str()
                .expect("credential")
                .to_string(),
            e.body,
        )
    }

    pub async fn apply_policy(&self, admin_token: &str, text: &str) -> Answer {
        self.post(
            Some(admin_token),
            "/v1/policies",
            &serde_json::json!({ "text": text }),
        )
        .await
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> Answer {
        let mut rb = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("request sent")).await
    }

    pub async fn post<B: serde::Serialize>(
        &self,
        token: Option<&str>,
        path: &str,
        body: &B,
    ) -> Answer {
        let mut rb = self.http.post(format!("{}{path}", self.url)).json(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("request sent")).await
    }

    pub async fn put<B: serde::Serialize>(
        &self,
        token: Option<&str>,
        path: &str,
        body: &B,
    ) -> Answer {
        let mut rb = self.http.put(format!("{}{path}", self.url)).json(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("request sent")).await
    }

    pub async fn delete(&self, token: Option<&str>, path: &str) -> Answer {
        let mut rb = self.http.delete(format!("{}{path}", self.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("request sent")).await
    }

    /// Posts raw bytes with a content type (for malformed-input tests).
    pub async fn post_raw(
        &self,
        token: Option<&str>,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("request sent")).await
    }

    /// Raw SQL on the server's database (for tampering tests).
    pub async fn sql(&self, statement: &str) {
        sqlx::query(statement)
            .execute(self.app.store().pool())
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Stops the server and removes its database.
    /// A device asks for `body` (a request, e.g. from `command_request`); returns the new
    /// request's id.
    pub async fn ask_id(&self, device: &str, body: &Value) -> String {
        self.post(Some(device), "/v1/requests", body)
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .expect("a request id")
            .to_string()
    }

    /// A request as `token`'s holder reads it in the API.
    pub async fn request_json(&self, token: &str, id: &str) -> Value {
        self.get(Some(token), &format!("/v1/requests/{id}"))
            .await
            .expect(200)
            .body
    }

    /// Every audit record (up to 1000), oldest first, as the API shows them to `admin`.
    pub async fn audit_records(&self, admin: &str) -> Vec<Value> {
        self.get(Some(admin), "/v1/audit?limit=1000")
            .await
            .expect(200)
            .body
            .as_array()
            .expect("audit records")
            .clone()
    }

    /// The database URL of this server (another replica can connect to it).
    pub fn database_url(&self) -> String {
        self.database_url_of(self.pg_database.as_deref())
    }

    pub(crate) fn database_url_of(&self, pg_database: Option<&str>) -> String {
        match pg_database {
            None => format!("sqlite://{}", self.dir.join("elevate.db").display()),
            Some(name) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
        }
    }

    /// Stops this server (its jobs too, mid-send if they are sending) and starts a new one on
    /// the same database, keys and clock, with settings from `configure`: a restart. The URL
    /// changes (a new port).
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Settings)) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        let store = match &self.pg_database {
            None => Store::open_sqlite(&self.dir.join("elevate.db"))
                .await
                .expect("the sqlite store opens again"),
            Some(name) => Store::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
                .await
                .expect("the postgres store opens again"),
        };
        let c = self.clock.clone();
        let mut settings = Settings::new(self.dir.clone());
        configure(&mut settings);
        let app = App::new(
            store,
            Keys::from_bytes([1; 32], [2; 32]),
            Arc::new(move || c.now()),
            settings,
        );
        let running = elevate_server::serve(app.clone(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("the server starts again");
        self.url = running.url();
        self.app = app;
        self.running = Some(running);
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        if let Some(name) = self.pg_database.take() {
            if let Ok(mut admin) =
                <sqlx::PgConnection as sqlx::Connection>::connect(POSTGRES_ADMIN_URL).await
            {
                let _ = sqlx::Executor::execute(
                    &mut admin,
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                )
                .await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text }
}

/// Whether tests on `db` can run here. PostgreSQL tests skip (saying why) when no server answers
/// at 127.0.0.1:5432, except when `ELEVATE_REQUIRE_POSTGRES=1` (CI), where that is a failure.
pub async fn available(db: Db) -> bool {
    if db == Db::Sqlite {
        return true;
    }
    let reachable = <sqlx::PgConnection as sqlx::Connection>::connect(POSTGRES_ADMIN_URL)
        .await
        .is_ok();
    if !reachable {
        if std::env::var("ELEVATE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("PostgreSQL is required (ELEVATE_REQUIRE_POSTGRES=1) but {POSTGRES_ADMIN_URL} does not answer");
        }
        eprintln!(
            "SKIPPED on PostgreSQL: no server at {POSTGRES_ADMIN_URL}; start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        );
    }
    reachable
}

/// A small policy that exercises auto, approve (1 and 2 approvers) and deny.
pub const TEST_POLICY: &str = r#"version = 1

[defaults]
unmatched = "approve"
approvers = "helpdesk"

[[rule]]
name = "package managers for developers"
who = { groups = ["developers"] }
what = { paths = ["/usr/bin/apt", "/usr/bin/apt-get"] }
action = "auto"

[[rule]]
name = "no root shells"
what = { paths = ["/bin/bash", "/usr/bin/bash"] }
action = { deny = "use a specific command instead of a root shell" }

[[rule]]
name = "disk tools need two storage admins"
what = { paths = ["/usr/sbin/fdisk"] }
action = { approve = { approvers = "storage", count = 2 } }
"#;

/// A request body for a command.
pub fn command_request(user: &str, groups: &[&str], path: &str, args: &[&str]) -> Value {
    serde_json::json!({
        "user": user,
        "uid": 1000 + user.len() as u32,
        "groups": groups,
        "target": { "kind": "command", "path": path, "sha256": "ab".repeat(32), "package": "pkg", "args": args },
        "reason": "testing",
        "channel": "native",
    })
}
