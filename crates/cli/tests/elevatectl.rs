//! `elevatectl` end to end: the real binary against a real server on port 0 (SQLite), doing what
//! an admin and an approver do.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use elevate_server::app::Role;
use elevate_testkit::{command_request, spawn, Db, TestServer, PASSWORD, TEST_POLICY};

struct Ctl {
    url: String,
    home: std::path::PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ctl {
    fn new(server: &TestServer) -> Ctl {
        let home = std::env::temp_dir().join(format!("elevatectl-{}", uuid_like()));
        std::fs::create_dir_all(&home).unwrap();
        Ctl {
            url: server.url.clone(),
            home,
        }
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_elevatectl"));
        cmd.args(args)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("ELEVATE_SERVER", &self.url)
            .env_remove("ELEVATE_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("elevatectl runs");
            let mut pipe = child.stdin.take().unwrap();
            if let Some(text) = input {
                pipe.write_all(text.as_bytes()).unwrap();
            }
            drop(pipe);
            let out = child.wait_with_output().unwrap();
            Out {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    #[track_caller]
    fn ok(out: &Out) -> &str {
        assert_eq!(
            out.code, 0,
            "stdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        &out.stdout
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.home.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_manages_policy_requests_devices_and_audit() {
    let server = spawn(Db::Sqlite).await;
    server
        .account(
            "admin",
            &[Role::Admin, Role::Approver, Role::Auditor],
            &["helpdesk"],
        )
        .await;
    let ctl = Ctl::new(&server);

    // Sign in; the token is saved privately.
    let out = ctl
        .run(
            &["login", "--account", "admin", "--password-stdin"],
            Some(PASSWORD),
        )
        .await;
    assert!(Ctl::ok(&out).contains("signed in as admin"));
    let saved = ctl.home.join("elevate/elevatectl.toml");
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let wrong = ctl
        .run(
            &["login", "--account", "admin", "--password-stdin"],
            Some("nope"),
        )
        .await;
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("wrong account name or password"),
        "{}",
        wrong.stderr
    );
    assert!(Ctl::ok(&ctl.run(&["whoami"], None).await)
        .contains("admin (roles: admin, approver, auditor"));

    // Policies: apply, refuse a broken one with its line, diff, show, test.
    let v1 = ctl.file("v1.toml", TEST_POLICY);
    assert!(Ctl::ok(
        &ctl.run(&["policy", "apply", &v1, "--comment", "first"], None)
            .await
    )
    .contains("as version 1"));
    let broken = ctl.file(
        "broken.toml",
        "version = 1\n\n[[rule]]\nname = \"x\"\naction = \"sometimes\"\n",
    );
    let out = ctl.run(&["policy", "apply", &broken], None).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("line 5"), "{}", out.stderr);
    let v2 = ctl.file(
        "v2.toml",
        &TEST_POLICY.replace("approvers = \"helpdesk\"", "approvers = \"on-call\""),
    );
    Ctl::ok(&ctl.run(&["policy", "apply", &v2], None).await);
    let diff = ctl.run(&["policy", "diff", "1", "2"], None).await;
    assert!(
        Ctl::ok(&diff).contains("-approvers = \"helpdesk\"\n+approvers = \"on-call\""),
        "{}",
        diff.stdout
    );
    assert_eq!(
        Ctl::ok(&ctl.run(&["policy", "show", "1"], None).await),
        TEST_POLICY
    );
    let list = ctl.run(&["policy", "list"], None).await;
    assert!(Ctl::ok(&list).contains("first"));
    let test = ctl
        .run(
            &[
                "policy",
                "test",
                "--user",
                "alice",
                "--groups",
                "developers",
                "--path",
                "/usr/bin/apt",
                "--",
                "install",
                "htop",
            ],
            None,
        )
        .await;
    assert!(Ctl::ok(&test).starts_with("AUTO"), "{}", test.stdout);
    let test = ctl
        .run(
            &[
                "policy",
                "test",
                "--user",
                "bob",
                "--path",
                "/usr/bin/systemctl",
                "--file",
                &v1,
                "--json",
            ],
            None,
        )
        .await;
    let decision: serde_json::Value = serde_json::from_str(Ctl::ok(&test)).unwrap();
    assert_eq!(decision["outcome"], "approve");
    assert_eq!(
        decision["approvers"], "helpdesk",
        "the draft file was evaluated, not v2"
    );
    // A link is tested as a device decides it: the file it leads to, invoked by its name.
    let test = ctl
        .run(
            &["policy", "test", "--user", "bob", "--path", "/bin/sh"],
            None,
        )
        .await;
    Ctl::ok(&test);
    assert!(
        test.stderr
            .contains("warning: /bin/sh is a link to /usr/bin/dash here"),
        "{}",
        test.stderr
    );

    // Devices and enrolment tokens.
    let out = ctl
        .run(
            &["enrol-token", "create", "--ttl", "1h", "--tags", "laptop"],
            None,
        )
        .await;
    let token = Ctl::ok(&out).trim().to_string();
    assert!(token.starts_with("eet_"), "{token}");
    let e = server
        .post(
            None,
            "/v1/enrol",
            &serde_json::json!({ "token": token, "name": "laptop-1" }),
        )
        .await
        .expect(201);
    let device = e.body["credential"].as_str().unwrap().to_string();
    assert!(Ctl::ok(&ctl.run(&["devices", "list"], None).await).contains("laptop-1"));

    // Requests: list the pending one, show it, approve it.
    let r = server
        .post(
            Some(&device),
            "/v1/requests",
            &command_request(
                "bob",
                &[],
                "/usr/bin/systemctl",
                &["restart", "\u{1b}[2Jcups"],
            ),
        )
        .await
        .expect(201);
    let id = r.body["id"].as_str().unwrap().to_string();
    let pending = ctl
        .run(&["requests", "list", "--state", "pending"], None)
        .await;
    assert!(Ctl::ok(&pending).contains(&id));
    assert!(
        !pending.stdout.contains('\u{1b}'),
        "no raw escape reaches the terminal"
    );
    let show = ctl.run(&["requests", "show", &id], None).await;
    assert!(Ctl::ok(&show).contains("on-call"), "{}", show.stdout);
    server
        .account("oncall", &[Role::Approver], &["on-call"])
        .await;
    let approver = Ctl::new(&server);
    Ctl::ok(
        &approver
            .run(
                &["login", "--account", "oncall", "--password-stdin"],
                Some(PASSWORD),
            )
            .await,
    );
    let out = approver
        .run(&["requests", "approve", &id, "--comment", "go ahead"], None)
        .await;
    assert!(Ctl::ok(&out).contains("is now approved"), "{}", out.stdout);
    let json = ctl.run(&["--json", "requests", "show", &id], None).await;
    let view: serde_json::Value = serde_json::from_str(Ctl::ok(&json)).unwrap();
    assert_eq!(view["approvals"][0]["comment"], "go ahead");
    // The approver has no admin rights.
    let out = approver.run(&["enrol-token", "create"], None).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("admin"), "{}", out.stderr);

    // Audit: verify, export, then tamper and see it named.
    assert!(Ctl::ok(&ctl.run(&["audit", "verify"], None).await).starts_with("ok:"));
    let export = ctl.home.join("audit.csv");
    Ctl::ok(
        &ctl.run(
            &[
                "audit",
                "export",
                "--format",
                "csv",
                "--output",
                export.to_str().unwrap(),
            ],
            None,
        )
        .await,
    );
    assert!(std::fs::read_to_string(&export)
        .unwrap()
        .starts_with("seq,id,at"));
    server
        .sql("UPDATE audit SET action = 'request.nothing' WHERE seq = 3")
        .await;
    let out = ctl.run(&["audit", "verify"], None).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("BROKEN") && out.stdout.contains("first bad record: 3 (edited)"),
        "{}",
        out.stdout
    );

    // Signed out: commands are refused with a hint.
    Ctl::ok(&ctl.run(&["logout"], None).await);
    let out = ctl.run(&["requests", "list"], None).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Bearer") || out.stderr.contains("login"),
        "{}",
        out.stderr
    );
    server.stop().await;
}

/// The helpdesk on the phone: `elevatectl offline show` says whose challenge it is, `offline
/// respond` gives the code, which the device (its secret, no network) accepts.
#[tokio::test(flavor = "multi_thread")]
async fn the_helpdesk_answers_an_offline_challenge() {
    use elevate_core::offline::{device_key, Challenge, Response, Scope};
    let server = spawn(Db::Sqlite).await;
    server
        .account("helpdesk-kim", &[Role::Approver], &["helpdesk"])
        .await;
    let admin = server.admin().await;
    server.apply_policy(&admin, TEST_POLICY).await.expect(201);
    let (device, enrolled) = server.enrol(&admin, "kiosk-3", &["field"]).await;
    // The kiosk named its users at check-in.
    server
        .put(
            Some(&device),
            "/v1/device-users",
            &serde_json::json!({ "users": [{ "uid": 1002, "login": "kiosk" }] }),
        )
        .await
        .expect(200);
    let secret = hex::decode(enrolled["device_secret"].as_str().unwrap()).unwrap();
    let challenge = Challenge {
        device: device_key(enrolled["device_id"].as_str().unwrap()),
        uid: 1002,
        nonce: 77,
        command: 0,
    };
    let ctl = Ctl::new(&server);
    Ctl::ok(
        &ctl.run(
            &["login", "--account", "helpdesk-kim", "--password-stdin"],
            Some(PASSWORD),
        )
        .await,
    );
    let shown = ctl
        .run(&["offline", "show", &challenge.encode()], None)
        .await;
    let text = Ctl::ok(&shown);
    assert!(
        text.contains("kiosk-3") && text.contains("uid 1002"),
        "{text}"
    );
    let out = ctl
        .run(
            &[
                "offline",
                "respond",
                &challenge.encode(),
                "--scope",
                "session",
                "--duration",
                "45m",
                "--reason",
                "no network at the depot",
            ],
            None,
        )
        .await;
    let code = Ctl::ok(&out).trim().to_string();
    let response = Response::parse(&code).unwrap();
    assert_eq!((response.scope, response.minutes), (Scope::Session, 45));
    assert!(challenge.verify(&secret, &response, None));
    assert!(
        out.stderr.contains("an admin session for 45 min"),
        "{}",
        out.stderr
    );
    // Without a reason there is no code.
    let refused = ctl
        .run(
            &["offline", "respond", &challenge.encode(), "--reason", ""],
            None,
        )
        .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("reason is required"),
        "{}",
        refused.stderr
    );
    server.stop().await;
}

/// Credentials from the command line: tokens listed and revoked, an account disabled, enabled
/// and removed, a device revoked.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_revokes_tokens_accounts_and_devices() {
    let server = spawn(Db::Sqlite).await;
    let admin = server.admin().await;
    server
        .account("ann", &[Role::Approver], &["helpdesk"])
        .await;
    let ann = server.token("ann").await;
    server.enrol(&admin, "lost-laptop", &["laptop"]).await;
    let ctl = Ctl::new(&server);
    let out = ctl
        .run(
            &["login", "--account", "admin", "--password-stdin"],
            Some(PASSWORD),
        )
        .await;
    Ctl::ok(&out);

    let listed = ctl
        .run(&["--json", "tokens", "list", "--account", "ann"], None)
        .await;
    let tokens: serde_json::Value = serde_json::from_str(Ctl::ok(&listed)).unwrap();
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    assert!(!listed.stdout.contains(&ann));
    let id = tokens[0]["id"].as_str().unwrap().to_owned();
    let bad = ctl.run(&["tokens", "revoke", "nope"], None).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("16 hex digits"), "{}", bad.stderr);
    assert!(Ctl::ok(&ctl.run(&["tokens", "revoke", &id], None).await).contains("revoked"));
    server.get(Some(&ann), "/v1/whoami").await.expect(401);
    let table = ctl.run(&["tokens", "list", "--all"], None).await;
    assert!(Ctl::ok(&table).contains("admin"), "{}", table.stdout);

    assert!(Ctl::ok(&ctl.run(&["accounts", "disable", "ann"], None).await).contains("disabled"));
    server
        .post(
            None,
            "/v1/tokens",
            &serde_json::json!({ "account": "ann", "password": PASSWORD }),
        )
        .await
        .expect(401);
    Ctl::ok(&ctl.run(&["accounts", "enable", "ann"], None).await);
    server.token("ann").await;
    Ctl::ok(&ctl.run(&["accounts", "remove", "ann"], None).await);
    let gone = ctl.run(&["accounts", "remove", "ann"], None).await;
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("no account"), "{}", gone.stderr);

    let out = ctl
        .run(
            &[
                "devices",
                "revoke",
                "lost-laptop",
                "--reason",
                "left on a train",
            ],
            None,
        )
        .await;
    assert!(Ctl::ok(&out).contains("lost-laptop is revoked"));
    let devices = ctl.run(&["devices", "list"], None).await;
    assert!(Ctl::ok(&devices).contains("revoked"), "{}", devices.stdout);
    server.stop().await;
}

/// A server whose certificate comes from the organisation's own CA: login without that CA is
/// refused, with `--ca-file` it works and the CA is remembered for later commands.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_reaches_a_server_with_its_own_ca() {
    let (cert, key, ca) = elevate_testkit::tls_certificate();
    let server = elevate_testkit::spawn_with(Db::Sqlite, elevate_testkit::monday_morning(), |s| {
        s.tls = Some(elevate_server::app::TlsFiles { cert, key })
    })
    .await;
    server
        .app
        .upsert_account("admin", PASSWORD, &[Role::Admin], &[])
        .await
        .unwrap();
    let ctl = Ctl::new(&server);
    let refused = ctl
        .run(
            &["login", "--account", "admin", "--password-stdin"],
            Some(PASSWORD),
        )
        .await;
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    let ca_file = ctl.file("org-ca.pem", std::str::from_utf8(&ca).unwrap());
    let out = ctl
        .run(
            &[
                "--ca-file",
                &ca_file,
                "login",
                "--account",
                "admin",
                "--password-stdin",
            ],
            Some(PASSWORD),
        )
        .await;
    assert!(Ctl::ok(&out).contains("signed in as admin"));
    // Remembered: later commands need no flag.
    assert!(Ctl::ok(&ctl.run(&["whoami"], None).await).contains("admin (roles: admin"));
    let broken = ctl.file("not-a-ca.pem", "hello");
    let bad = ctl.run(&["--ca-file", &broken, "whoami"], None).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not-a-ca.pem"), "{}", bad.stderr);
    server.stop().await;
}

#[tokio::test]
async fn an_admin_imports_people_from_a_csv_file_after_a_dry_run() {
    let server = spawn(Db::Sqlite).await;
    server.admin().await;
    server
        .account("asmith", &[Role::Approver], &["helpdesk"])
        .await;
    let ctl = Ctl::new(&server);
    Ctl::ok(
        &ctl.run(
            &["login", "--account", "admin", "--password-stdin"],
            Some(PASSWORD),
        )
        .await,
    );
    let file = ctl.home.join("people.csv");
    std::fs::write(
        &file,
        "user_name,display_name,department,accounts,logins,groups\n\
         alice,Alice Smith,Finance,asmith,alice; ops2@device:web-01,staff\n\
         bob,Bob Jones,IT,,bob@tag:servers,\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let dry = ctl
        .run(&["directory", "import", file, "--dry-run"], None)
        .await;
    let text = Ctl::ok(&dry);
    assert!(
        text.contains("would create 2") && text.contains("nothing changed"),
        "{text}"
    );
    let listed = ctl.run(&["people", "list"], None).await;
    assert!(!Ctl::ok(&listed).contains("alice"), "a dry run wrote");

    let done = ctl.run(&["directory", "import", file], None).await;
    assert!(Ctl::ok(&done).contains("did create 2"));
    let shown = ctl.run(&["people", "show", "alice"], None).await;
    let text = Ctl::ok(&shown);
    assert!(
        text.contains("asmith") && text.contains("ops2@device:web-01"),
        "{text}"
    );

    // A bad row sends nothing and names its line.
    std::fs::write(
        ctl.home.join("bad.csv"),
        "user_name,department\ncarol,Sales\ndave,\"R&D\u{1b}[2J\"\n",
    )
    .unwrap();
    let bad = ctl
        .run(
            &[
                "directory",
                "import",
                ctl.home.join("bad.csv").to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("line 3"), "{}", bad.stderr);
    let listed = ctl.run(&["people", "list"], None).await;
    assert!(!Ctl::ok(&listed).contains("carol"), "half a file was sent");
    server.stop().await;
}

#[tokio::test]
async fn an_admin_imports_existing_logs_and_reads_the_reports() {
    let (Some(loghub), Some(windows), Some(sysmon)) = (
        elevate_testkit::testdata("linux/loghub_Linux_2k.log"),
        elevate_testkit::testdata("windows/otrf_secds_process_creation.jsonl.gz"),
        elevate_testkit::testdata("windows/evtxcrate_sysmon.evtx"),
    ) else {
        return;
    };
    let server = spawn(Db::Sqlite).await;
    server.admin().await;
    let ctl = Ctl::new(&server);
    Ctl::ok(
        &ctl.run(
            &["login", "--account", "admin", "--password-stdin"],
            Some(PASSWORD),
        )
        .await,
    );
    let (loghub, windows, sysmon) = (
        loghub.to_str().unwrap(),
        windows.to_str().unwrap(),
        sysmon.to_str().unwrap(),
    );
    // A dry run reads and sends nothing.
    let dry = ctl
        .run(&["import", loghub, "--year", "2005", "--dry-run"], None)
        .await;
    let text = Ctl::ok(&dry);
    assert!(
        text.contains("found 86") && text.contains("dry run"),
        "{text}"
    );
    assert!(text.contains("skipped 86: su session end"), "{text}");

    // Each file's kind is recognised; the summary says what was read, imported and skipped.
    let done = ctl
        .run(
            &[
                "import",
                loghub,
                windows,
                sysmon,
                "--year",
                "2005",
                "--timezone",
                "UTC",
            ],
            None,
        )
        .await;
    let text = Ctl::ok(&done);
    assert!(
        text.contains("(syslog): read 2000, found 86, imported 86, duplicates 0"),
        "{text}"
    );
    assert!(
        text.contains("(windows-json)") && text.contains("same process already counted"),
        "{text}"
    );
    assert!(
        text.contains("(windows-evtx)")
            && text.contains("problem: ")
            && text.contains("chunk number 9"),
        "{text}"
    );

    // Again: nothing new.
    let again = ctl
        .run(&["import", loghub, "--year", "2005", "--json"], None)
        .await;
    let summary: serde_json::Value = serde_json::from_str(Ctl::ok(&again)).unwrap();
    assert_eq!(
        (
            summary[0]["imported"].as_u64(),
            summary[0]["duplicates"].as_u64()
        ),
        (Some(0), Some(86))
    );

    // The report as CSV: su was run by root's jobs (the system), on host combo.
    let csv = ctl
        .run(
            &[
                "report",
                "system",
                "--since",
                "2005-06-01",
                "--until",
                "2005-08-01",
                "--format",
                "csv",
            ],
            None,
        )
        .await;
    let text = Ctl::ok(&csv);
    assert!(
        text.starts_with("account,host,program,runs,per_day,days_seen,last"),
        "{text}"
    );
    assert!(text.contains("root,combo,su,86,"), "{text}");
    let apps = ctl
        .run(
            &[
                "report",
                "applications",
                "--since",
                "2005-06-01",
                "--until",
                "2005-08-01",
            ],
            None,
        )
        .await;
    let text = Ctl::ok(&apps);
    assert!(
        text.contains("Applications run elevated") && text.contains("su"),
        "{text}"
    );
    let unknown = ctl.run(&["report", "nonsense"], None).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("segments"), "{}", unknown.stderr);

    // sudo writes control characters as #ooo; imported, they are text again, and what prints
    // them to a terminal shows them, never sends them.
    let log = ctl.home.join("auth.log");
    std::fs::write(
        &log,
        "Nov 27 00:52:37 web1 sudo:    mallory : TTY=pts/0 ; PWD=/ ; USER=root ; \
         COMMAND=/usr/bin/printf #033]0;pwned#007#033[2J\n",
    )
    .unwrap();
    Ctl::ok(
        &ctl.run(&["import", log.to_str().unwrap(), "--year", "2026"], None)
            .await,
    );
    let evidence = ctl
        .run(
            &[
                "report",
                "evidence",
                "--who",
                "mallory",
                "--since",
                "2026-11-01",
                "--until",
                "2026-12-01",
            ],
            None,
        )
        .await;
    let text = Ctl::ok(&evidence);
    assert!(text.contains("/usr/bin/printf"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    server.stop().await;
}
