//! The test world: namespace, `/etc` copy, users, server, enrolled agent, and helpers to run
//! `elevate` as a user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use elevate_testkit::{spawn_at, Db, TestServer};

const IN_NAMESPACE: &str = "ELEVATE_E2E_NAMESPACE";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `body` inside a private mount namespace (re-running this test there), as root.
pub fn namespaced(test: &str, body: impl FnOnce()) {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return body();
    }
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var("ELEVATE_REQUIRE_ROOT").as_deref() != Ok("1"),
            "ELEVATE_REQUIRE_ROOT=1 but the tests do not run as root"
        );
        eprintln!("SKIPPED {test}: end-to-end tests need root (they create users and run a root agent); CI runs them as root");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test} failed in its namespace:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its namespace:\n{stdout}\n{stderr}"
    );
    // What the test printed (figures), for `--nocapture`.
    print!("{stdout}");
}

/// The policy of the end-to-end tests.
pub const POLICY: &str = r#"version = 1

[defaults]
unmatched = "approve"
approvers = "helpdesk"

[[wave]]
name = "discovery pilot"
mode = "discover"
who = { users = ["dave"] }

[[rule]]
name = "no shells"
what = { paths = ["/usr/bin/bash", "/usr/bin/dash", "/bin/bash", "/bin/dash"] }
action = { deny = "use a specific command instead of a root shell" }

[[rule]]
name = "tools that work where you are"
what = { paths = ["/opt/e2e/here/*"] }
workdir = "caller"
action = "auto"

[[rule]]
name = "long jobs may outlive their client"
what = { paths = ["/opt/e2e/detach/*"] }
on_disconnect = "continue"
session_max = "6s"
action = "auto"

[[rule]]
name = "maintenance tools need a reason"
what = { paths = ["/opt/e2e/reason/*"] }
reason = "required"
action = "auto"

[[rule]]
name = "developers may open short admin sessions"
who = { groups = ["developers"] }
what = { session = true }
session_max = "1h"
action = "auto"

[[rule]]
name = "developers may run the diagnostics"
who = { groups = ["developers"] }
what = { paths = ["/usr/bin/id", "/usr/bin/env", "/usr/bin/true", "/usr/bin/tty", "/usr/bin/head", "/opt/e2e/auto/*"] }
action = "auto"
"#;

/// A server whose clock starts at `now`, with the policy applied, an admin's token and an
/// enrolment token, all issued at `now`.
pub async fn server_at(now: jiff::Timestamp) -> (TestServer, String, String) {
    let server = spawn_at(Db::Sqlite, now).await;
    let admin = server.admin().await;
    server.apply_policy(&admin, POLICY).await.expect(201);
    let token = server
        .post(
            Some(&admin),
            "/v1/enrol-tokens",
            &serde_json::json!({ "tags": ["e2e"] }),
        )
        .await
        .expect(201);
    let token = token.body["token"].as_str().unwrap().to_string();
    (server, admin, token)
}

/// Everything one test needs.
#[allow(missing_debug_implementations)]
pub struct World {
    pub dir: PathBuf,
    pub runtime: tokio::runtime::Runtime,
    pub server: Option<TestServer>,
    pub admin: String,
    pub agent: Option<Child>,
    pub socket: PathBuf,
    pub elevate: PathBuf,
    /// This world's own cgroup folder for admin sessions (the kernel is shared with other tests).
    pub cgroups: PathBuf,
    /// More arguments for `elevated run` (Linux audit is off: the kernel's audit records are
    /// the whole machine's, and only the test about them may read them).
    pub agent_args: Vec<String>,
}

/// Where the cgroup v2 hierarchy is mounted here.
fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount))
        })
        .expect("a cgroup v2 hierarchy (admin sessions need one)")
}

#[allow(clippy::new_without_default)] // building a world has effects; no Default
impl World {
    /// Users alice (developers) and bob; the server with the policy; an enrolled, running agent.
    pub fn new() -> World {
        let dir = PathBuf::from(format!(
            "/tmp/elevate-e2e-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Users live in a copy of /etc, bind-mounted over /etc in this namespace only.
        run(Command::new("cp").args(["-a", "/etc"]).arg(dir.join("etc")));
        run(Command::new("mount")
            .args(["--bind"])
            .arg(dir.join("etc"))
            .arg("/etc"));
        run(Command::new("groupadd").args(["-f", "developers"]));
        run(Command::new("useradd").args(["-M", "-G", "developers", "alice"]));
        run(Command::new("useradd").args(["-M", "bob"]));
        // Binaries the users may run: a root-owned 0755 folder.
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let elevate = bin.join("elevate");
        std::fs::copy(elevate_testkit::cargo_bin("elevate"), &elevate).unwrap();
        // Test programs live under /opt/e2e, on a tmpfs private to this namespace.
        std::fs::create_dir_all("/opt").unwrap();
        run(Command::new("mount").args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/opt"]));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // The agent decides with the real clock, so the server's starts there too, before it
        // issues anything (tokens issued on a fixed day and then carried to today expire with
        // the calendar).
        let (server, admin, token) = runtime.block_on(server_at(jiff::Timestamp::now()));
        let state = dir.join("agent");
        let elevated = elevate_testkit::cargo_bin("elevated");
        run(Command::new(&elevated)
            .arg("--state-dir")
            .arg(&state)
            .args([
                "enrol",
                "--server",
                &server.url,
                "--token",
                &token,
                "--name",
                "e2e-host",
            ]));
        let socket = dir.join("run/agent.sock");
        let cgroups = cgroup2_mount().join(format!(
            "elevate-e2e-{}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        let mut world = World {
            cgroups,
            agent_args: vec!["--linux-audit".into(), "off".into()],
            dir,
            runtime,
            server: Some(server),
            admin,
            agent: None,
            socket,
            elevate,
        };
        world.start_agent();
        world
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().unwrap()
    }

    /// Starts `elevated` and waits until it has a policy.
    pub fn start_agent(&mut self) {
        let agent = self.agent_command().spawn().unwrap();
        self.agent = Some(agent);
        self.wait_for_agent();
    }

    /// The command that runs this world's agent.
    pub fn agent_command(&self) -> Command {
        let mut agent = Command::new(elevate_testkit::cargo_bin("elevated"));
        agent
            .arg("--state-dir")
            .arg(self.dir.join("agent"))
            .arg("run")
            .arg("--socket")
            .arg(&self.socket)
            .args(["--refresh-secs", "1"])
            .arg("--cgroup-root")
            .arg(&self.cgroups)
            .args(&self.agent_args)
            .env("ELEVATE_LOG", "warn")
            .stdout(Stdio::null());
        agent
    }

    /// Waits until the agent answers and has a policy.
    pub fn wait_for_agent(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.elevate_as("root", &["status"], &[]);
            if String::from_utf8_lossy(&out.stdout).contains("policy:  version") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not get a policy: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }

    /// A root-owned program in `/opt/e2e/<folder>/<name>` with `mode`.
    pub fn program(&self, folder: &str, name: &str, script: &str, mode: u32) -> PathBuf {
        let dir = Path::new("/opt/e2e").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// The `elevate` command, as `user`, with a minimal environment plus `env`.
    pub fn command_as(&self, user: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .arg(&self.elevate)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ELEVATE_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `shell` run as `user` under `script`, which gives it a terminal as a person at a
    /// keyboard has (stdio left for the caller to set).
    pub fn in_terminal_as(&self, user: &str, shell: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .args(["script", "-qec", shell, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ELEVATE_SOCKET", &self.socket);
        cmd
    }

    pub fn elevate_as(&self, user: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command_as(user, args, env).output().unwrap()
    }

    /// Approves request `id` as the admin (an approver); the request as the server then shows it.
    pub fn approve(&self, id: &str, body: serde_json::Value) -> serde_json::Value {
        self.api(self.server().post(
            Some(&self.admin),
            &format!("/v1/requests/{id}/approve"),
            &body,
        ))
        .expect(200)
        .body
    }

    /// Request `id` as the server shows it to the admin.
    pub fn request(&self, id: &str) -> serde_json::Value {
        self.api(
            self.server()
                .get(Some(&self.admin), &format!("/v1/requests/{id}")),
        )
        .expect(200)
        .body
    }

    /// Runs `f` against the server on the world's runtime.
    pub fn api<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// The pending request of `user`, waiting until it appears.
    pub fn pending_request(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let list = self
                .api(
                    self.server()
                        .get(Some(&self.admin), "/v1/requests?state=pending"),
                )
                .expect(200);
            if let Some(id) = list
                .body
                .as_array()
                .unwrap()
                .first()
                .and_then(|r| r["id"].as_str())
            {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no request became pending");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the server has recorded `expected` (in order) for a request; the end of a
    /// command is recorded just after the caller is told, so it may trail the caller's exit.
    pub fn wait_for_actions(&self, request: &str, expected: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let actions = self.audit_actions(request);
            if actions == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "recorded {actions:?}, expected {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every audit record on the server, oldest first.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let page = self
            .api(
                self.server()
                    .get(Some(&self.admin), "/v1/audit?limit=10000"),
            )
            .expect(200);
        page.body.as_array().unwrap().clone()
    }

    /// Waits (20 s at most) until `holds` is true of the server's audit records; the agent
    /// delivers its spool in the background, so its events arrive a little later.
    pub fn eventually_in_audit(
        &self,
        what: &str,
        mut holds: impl FnMut(&[serde_json::Value]) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let records = self.audit();
            if holds(&records) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {records:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Audit actions recorded on the server for a request.
    pub fn audit_actions(&self, request: &str) -> Vec<String> {
        self.audit()
            .iter()
            .filter(|r| r["subject"] == format!("request:{request}"))
            .map(|r| r["action"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_agent();
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.stop());
        }
        // Session cgroups left behind (a test that failed half-way): their processes go.
        if let Ok(entries) = std::fs::read_dir(&self.cgroups) {
            for entry in entries.flatten() {
                let _ = std::fs::write(entry.path().join("cgroup.kill"), "1");
                std::thread::sleep(Duration::from_millis(50));
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&self.cgroups);
        let _ = Command::new("umount").arg("/etc").status();
        let _ = Command::new("umount").arg("/opt").status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the world issues is valid on the day it runs, whatever that day is: its server starts
/// at the clock the world then runs with, years ahead of or behind the day this was written.
/// (The suite once failed from 2026-11-30 on: a token issued on a fixed Monday had expired.)
#[test]
fn the_world_is_issued_on_the_clock_it_runs_with() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let today = jiff::Timestamp::now();
    let years = jiff::SignedDuration::from_hours(24 * 366 * 7);
    for now in [today - years, today, today + years] {
        runtime.block_on(async {
            let (server, admin, token) = server_at(now).await;
            server
                .post(
                    None,
                    "/v1/enrol",
                    &serde_json::json!({ "token": token, "name": "e2e-host" }),
                )
                .await
                .expect(201);
            // An end-to-end test lasts minutes; the admin's token outlives the longest.
            server.clock.advance(jiff::SignedDuration::from_hours(2));
            server.get(Some(&admin), "/v1/whoami").await.expect(200);
        });
    }
}

/// The uid of user `name` (in this namespace's /etc).
pub fn uid_of(name: &str) -> u32 {
    nix::unistd::User::from_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("no user {name}"))
        .uid
        .as_raw()
}

/// Runs `f` on a thread of its own as `uid` (credentials are per thread in the kernel: what
/// it connects to sees that user), and returns what `f` returns.
pub fn on_thread_as<T: Send + 'static>(uid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let uid = rustix::process::Uid::from_raw(uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Sends a run frame with its three descriptors to `socket`, as a (possibly forged) client
/// would, and returns the agent's whole answer.
pub fn send_run_frame(
    socket: &Path,
    frame: &serde_json::Value,
    fds: [std::os::fd::BorrowedFd<'_>; 3],
) -> String {
    use std::io::{Read, Write};
    let body = serde_json::to_vec(frame).unwrap();
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
    let sent = rustix::net::sendmsg(
        &s,
        &[std::io::IoSlice::new(&bytes)],
        &mut control,
        rustix::net::SendFlags::empty(),
    )
    .unwrap();
    s.write_all(&bytes[sent..]).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    text(&answer)
}
