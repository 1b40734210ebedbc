//! Test support, never shipped: `spawn` starts a real server on 127.0.0.1 port 0 over a fresh
//! SQLite file or a fresh PostgreSQL database, with a clock the test moves, an admin and an
//! enrolled device; plus small HTTP helpers.
//!
//! Must never: touch a database it did not create (PostgreSQL databases are `elevate_t_<uuid>`
//! and are dropped when the server is dropped).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use elevate_server::app::{Keys, Role, Settings};
use elevate_server::store::Store;
use elevate_server::{App, Running};
use jiff::{SignedDuration, Timestamp};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use (CI and every dev machine run one here).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Both backends, for tests that must hold on each.
pub const BACKENDS: [Db; 2] = [Db::Sqlite, Db::Postgres];

/// A clock that only moves when the test says so.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    pub fn at(t: Timestamp) -> FakeClock {
        FakeClock(Arc::new(AtomicI64::new(t.as_millisecond())))
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).expect("valid fake time")
    }

    pub fn advance(&self, d: SignedDuration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millisecond(), Ordering::SeqCst);
    }
}

/// The password of every account the testkit creates.
pub const PASSWORD: &str = "test-password-0123";

/// A running test server.
pub struct TestServer {
    pub url: String,
    pub app: App,
    pub clock: FakeClock,
    pub db: Db,
    pub http: reqwest::Client,
    running: Option<Running>,
    pg_database: Option<String>,
    dir: std::path::PathBuf,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url)
            .field("db", &self.db)
            .finish()
    }
}

/// Monday 2026-11-23 10:00 UTC: inside business hours of the demo policy.
pub fn monday_morning() -> Timestamp {
    "2026-11-23T10:00:00Z".parse().expect("valid literal")
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
        match &self.pg_database {
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

/// A client for the portal as a browser without JavaScript is: it keeps no cookies and follows
/// no redirects, so a test sees both.
pub fn portal_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// Signs `account` (with the testkit password) in to the portal at `url`; returns the session
/// cookie as a `cookie` header takes it.
pub async fn portal_cookie(http: &reqwest::Client, url: &str, account: &str) -> String {
    let r = http
        .post(format!("{url}/portal/login"))
        .form(&[
            ("account", account),
            ("password", PASSWORD),
            ("next", "/portal/"),
        ])
        .send()
        .await
        .expect("the portal answers");
    assert_eq!(r.status(), 303, "sign-in should redirect");
    let cookie = r.headers()["set-cookie"].to_str().expect("a cookie");
    cookie.split(';').next().expect("a name=value").to_owned()
}

/// The CSRF token of the (first) form on a portal page.
pub fn csrf_of(page: &str) -> String {
    const FIELD: &str = "name=\"csrf\" value=\"";
    let at = page.find(FIELD).expect("a form with a CSRF token") + FIELD.len();
    page[at..]
        .split('"')
        .next()
        .expect("a quoted token")
        .to_string()
}

/// A portal page as the holder of `cookie` sees it.
pub async fn portal_page(http: &reqwest::Client, url: &str, cookie: &str, path: &str) -> String {
    http.get(format!("{url}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("the portal answers")
        .text()
        .await
        .expect("a page")
}

/// A test server's database and keys served by the real `elevate-server` binary, as its own
/// process on the same address, so that a test can `kill -9` the server and start it again.
#[derive(Debug)]
pub struct ServerProcess {
    pub url: String,
    listen: std::net::SocketAddr,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl TestServer {
    /// Stops the in-process server (its database stays) and serves the same database, keys and
    /// address from an `elevate-server` process. SQLite only.
    pub async fn into_process(mut self) -> ServerProcess {
        assert_eq!(
            self.db,
            Db::Sqlite,
            "a server process takes over SQLite servers only"
        );
        let running = self.running.take().expect("the server runs");
        let listen = running.addr;
        running.stop().await;
        // The same keys as `spawn_at` gives the in-process server, as the binary reads them.
        let keys = self.dir.join("keys");
        std::fs::create_dir_all(&keys).expect("key folder");
        for (file, byte) in [("policy-signing.key", 1u8), ("device-master.key", 2u8)] {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(keys.join(file))
                .expect("key file");
            std::io::Write::write_all(&mut f, hex_bytes(&[byte; 32]).as_bytes()).expect("key");
        }
        let mut process = ServerProcess {
            url: self.url.clone(),
            listen,
            dir: std::mem::take(&mut self.dir),
            child: None,
        };
        process.start().await;
        process
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ServerProcess {
    /// Starts the server and waits until it answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the server already runs");
        let child = std::process::Command::new(cargo_bin("elevate-server"))
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--listen")
            .arg(self.listen.to_string())
            .env("ELEVATE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("elevate-server starts");
        self.child = Some(child);
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("elevate-server did not become ready at {}", self.url);
    }

    /// `kill -9`: no shutdown, requests in flight cut off.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// The path of a workspace binary (e.g. `elevate`, `elevated`), built on demand: tests of one
/// crate sometimes need another crate's binary, which cargo does not build for them.
pub fn cargo_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("a target folder");
    let path = dir.join(name);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--bin", name])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// A shared library of the workspace (`lib<name>.so`, e.g. the sudo plugin). The test's crate
/// names its package as a dev-dependency, so cargo builds it fresh into `deps/` before the test
/// runs (a cdylib is built with every crate type as a dependency; only a top-level build copies
/// it up, and that copy can be stale).
pub fn cargo_cdylib(package: &str, name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let deps = exe.parent().expect("a deps folder");
    let path = deps.join(format!("lib{name}.so"));
    assert!(
        path.exists(),
        "{} is missing: add {package} to the test crate's dev-dependencies",
        path.display()
    );
    path
}

/// A file of third-party test material in `../shared/testdata` (beside the project in CI), or
/// `None` with a note when it is not there. In CI (`CI` set) a missing file fails the test.
pub fn testdata(relative: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").is_err(),
        "{} is missing in CI",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} not found (the shared folder sits beside the project in CI)",
        path.display()
    );
    None
}

/// Checks `instance` against the JSON Schema in the testdata file `schema` (any draft from 4
/// to 2020-12); returns the validator's complaint. `None` when the file is not here.
pub fn schema_errors(schema: &str, instance: &Value) -> Option<Result<(), String>> {
    let path = testdata(schema)?;
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let index = compiler
        .compile(path.to_str().expect("a UTF-8 path"), &mut schemas)
        .unwrap_or_else(|e| panic!("the schema {schema} compiles: {e:#}"));
    Some(
        schemas
            .validate(instance, index)
            .map_err(|e| format!("{e:#}")),
    )
}

/// One HTTP request a `Receiver` got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How a `Receiver` answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The `WebHook-Allowed-Origin` it answers an `OPTIONS` with (`None`: 405, no handshake).
    pub allow_origin: Option<String>,
    /// The status of every other request.
    pub status: u16,
    /// The body of every other request's answer (JSON when it starts with `{`).
    pub body: String,
    /// Hold every answer but the handshake's this long (a receiver that hangs).
    pub delay: std::time::Duration,
}

impl Default for Behaviour {
    /// Allows any origin, answers 200 with no body.
    fn default() -> Self {
        Behaviour {
            allow_origin: Some("*".into()),
            status: 200,
            body: String::new(),
            delay: std::time::Duration::ZERO,
        }
    }
}

/// A real HTTP server on loopback that records what it is sent (webhooks, chat and card
/// posts). Every answer closes its connection, so `stop` really makes it unreachable.
#[derive(Debug)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub received: Arc<std::sync::Mutex<Vec<Received>>>,
    pub behaviour: Arc<std::sync::Mutex<Behaviour>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free port, or on `port` (to come back where it was).
    pub async fn start(port: u16, behaviour: Behaviour) -> Receiver {
        Self::start_sharing(
            port,
            Arc::new(std::sync::Mutex::new(behaviour)),
            Arc::default(),
        )
        .await
    }

    async fn start_sharing(
        port: u16,
        behaviour: Arc<std::sync::Mutex<Behaviour>>,
        received: Arc<std::sync::Mutex<Vec<Received>>>,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver's port is free");
        let addr = listener.local_addr().expect("bound");
        let (b, r) = (behaviour.clone(), received.clone());
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (b, r) = (b.clone(), r.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 16 << 20)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                r.lock().unwrap().push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect(),
                    body,
                });
                let behaviour = b.lock().unwrap().clone();
                if parts.method != axum::http::Method::OPTIONS {
                    tokio::time::sleep(behaviour.delay).await;
                }
                let mut answer = axum::http::Response::builder().header("connection", "close");
                if parts.method == axum::http::Method::OPTIONS {
                    answer = match behaviour.allow_origin {
                        Some(origin) => answer
                            .status(200)
                            .header("WebHook-Allowed-Origin", origin)
                            .header("Allow", "POST"),
                        None => answer.status(405),
                    };
                } else {
                    answer = answer.status(behaviour.status);
                    if behaviour.body.starts_with('{') {
                        answer = answer.header("content-type", "application/json");
                    }
                    return answer
                        .body(axum::body::Body::from(behaviour.body))
                        .expect("a valid response");
                }
                answer
                    .body(axum::body::Body::empty())
                    .expect("a valid response")
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            received,
            behaviour,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops listening; connections are refused until `restart`.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port, keeping what was received.
    pub async fn restart(&mut self) {
        self.stop().await;
        let again = Self::start_sharing(
            self.addr.port(),
            self.behaviour.clone(),
            self.received.clone(),
        )
        .await;
        *self = again;
    }

    /// What was received so far with `method`.
    pub fn requests(&self, method: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method)
            .cloned()
            .collect()
    }

    /// Waits (up to 30 s) until `n` requests with `method` have arrived.
    pub async fn wait_for(&self, method: &str, n: usize) -> Vec<Received> {
        for _ in 0..300 {
            let got = self.requests(method);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "{n} {method} requests did not arrive; got {:?}",
            self.requests(method)
        );
    }
}

/// One message an `SmtpSink` accepted.
#[derive(Debug, Clone)]
pub struct Mailed {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends, dot-stuffing undone).
    pub data: String,
}

impl Mailed {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The decoded bodies of the parts with this content type (quoted-printable, base64 or
    /// plain), e.g. `text/plain`.
    pub fn parts(&self, content_type: &str) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in self.data.split("\r\n--") {
            let Some((head, body)) = chunk.split_once("\r\n\r\n") else {
                continue;
            };
            let head_l = head.to_ascii_lowercase();
            if !head_l.contains(&format!("content-type: {content_type}")) {
                continue;
            }
            let body = body.trim_end_matches("\r\n");
            let decoded = if head_l.contains("content-transfer-encoding: quoted-printable") {
                quoted_printable(body)
            } else if head_l.contains("content-transfer-encoding: base64") {
                use base64::Engine as _;
                let joined: String = body.split_whitespace().collect();
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(joined)
                        .expect("base64 body"),
                )
                .expect("UTF-8 body")
            } else {
                body.to_string()
            };
            out.push(decoded);
        }
        out
    }
}

fn quoted_printable(body: &str) -> String {
    let bytes = body.replace("=\r\n", "").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after quoted-printable")
}

/// A real SMTP server on loopback that accepts every message and keeps it (RFC 5321: EHLO,
/// MAIL, RCPT, DATA with dot-stuffing, RSET, NOOP, QUIT).
#[derive(Debug)]
pub struct SmtpSink {
    pub addr: std::net::SocketAddr,
    pub mailed: Arc<std::sync::Mutex<Vec<Mailed>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let mailed: Arc<std::sync::Mutex<Vec<Mailed>>> = Arc::default();
        let keep = mailed.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read);
                    let _ = write.write_all(b"220 sink.test ESMTP\r\n").await;
                    let (mut from, mut to) = (String::new(), Vec::new());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let command = line.trim_end().to_string();
                        let upper = command.to_ascii_uppercase();
                        let answer: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                            b"250 ok\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            from = command[10..].trim().to_string();
                            to.clear();
                            b"250 ok\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(command[8..].trim().trim_matches(['<', '>']).to_string());
                            b"250 ok\r\n"
                        } else if upper.starts_with("RSET") {
                            from.clear();
                            to.clear();
                            b"250 ok\r\n"
                        } else if upper == "DATA" {
                            let _ = write.write_all(b"354 go ahead\r\n").await;
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                            }
                            keep.lock().unwrap().push(Mailed {
                                from: from.clone(),
                                to: to.clone(),
                                data,
                            });
                            b"250 queued\r\n"
                        } else if upper == "QUIT" {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"502 not implemented\r\n"
                        };
                        if write.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SmtpSink { addr, mailed, task }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The server's e-mail settings for sending here from `from`, with requesters reached at
    /// `<login>@example.com`.
    pub fn email_config(&self, from: &str) -> elevate_server::integrations::email::EmailConfig {
        elevate_server::integrations::email::EmailConfig {
            smtp_url: self.url(),
            user: None,
            password: None,
            from: elevate_server::integrations::email::parse_address(from).expect("a valid sender"),
            requester_domain: Some("example.com".into()),
        }
    }

    /// Waits (up to 30 s) until `n` messages have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Mailed> {
        for _ in 0..300 {
            let got = self.mailed.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "{n} messages did not arrive; got {:?}",
            self.mailed.lock().unwrap()
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
