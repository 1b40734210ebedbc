//! Offline codes on the endpoint: the agent cut off from the server (which stays up for the
//! helpdesk), an approve-rule command shows a challenge, and the response the helpdesk gets
//! from the server lets it run once; a wrong code, the same code again and a code for another
//! challenge are refused; five wrong codes void the challenge, ten on the device turn offline
//! codes off until the server is reached again.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::world::text;
use crate::{namespaced, World};

/// `elevate …` as `user` at a terminal, its screen collected as it comes.
struct Screen {
    child: std::process::Child,
    shown: Arc<Mutex<String>>,
}

impl Screen {
    fn start(world: &World, user: &str, command: &str) -> Screen {
        let mut child = world
            .in_terminal_as(user, &format!("{} {command}", world.elevate.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (shown, _) = collect(out);
        Screen { child, shown }
    }

    /// Waits until the screen shows `needle` after `from` bytes; returns what follows it.
    fn wait_for(&self, needle: &str, from: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shown = self.shown.lock().unwrap().clone();
            if let Some(at) = shown[from.min(shown.len())..].find(needle) {
                return shown[from + at + needle.len()..].to_string();
            }
            assert!(
                Instant::now() < deadline,
                "never showed {needle:?}:\n{shown}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn len(&self) -> usize {
        self.shown.lock().unwrap().len()
    }

    fn challenge(&self) -> String {
        let rest = self.wait_for("read them this challenge: ", 0);
        self.wait_for("Response code: ", 0);
        rest.split_whitespace().next().unwrap().to_string()
    }

    /// The command the screen tells the caller to read out with the challenge.
    fn command(&self) -> String {
        let rest = self.wait_for("and this command, exactly: ", 0);
        rest.lines().next().unwrap().trim().to_string()
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let shown = self.shown.lock().unwrap().replace('\r', "");
        (status.code(), shown)
    }
}

/// Collects what `from` prints, as it comes, in the background.
fn collect(
    mut from: impl Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let shown = Arc::new(Mutex::new(String::new()));
    let collected = shown.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (shown, reader)
}

/// Waits until the server names `user` behind their uid on this world's device, as the
/// agent's check-in tells it (20 s at most).
pub(crate) fn server_names(world: &World, user: &str) {
    let enrolment: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(world.dir.join("agent/enrolment.json")).unwrap(),
    )
    .unwrap();
    let challenge = elevate_core::offline::Challenge {
        device: elevate_core::offline::device_key(enrolment["device_id"].as_str().unwrap()),
        uid: crate::world::uid_of(user),
        nonce: 1,
        command: 0,
    }
    .encode();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = world
            .api(world.server().post(
                Some(&world.admin),
                "/v1/offline/challenges",
                &serde_json::json!({ "challenge": challenge }),
            ))
            .expect(200);
        if seen.body["user"] == user {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never learnt {user}'s login: {}",
            seen.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Restarts the agent talking to `server` (a dead address cuts it off; the server itself stays
/// up for the helpdesk). It keeps its cached, signed policy.
pub(crate) fn cut_off(world: &mut World, server: &str) {
    // Once the server knows the device's users (the agent names them at check-in): the helpdesk
    // answers only for a uid it can name.
    server_names(world, "bob");
    world.stop_agent();
    let file = world.dir.join("agent/enrolment.json");
    let mut enrolment: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    enrolment["server"] = server.into();
    std::fs::write(&file, enrolment.to_string()).unwrap();
    world.start_agent();
}

/// The helpdesk answers `challenge` for `command` (as the caller read it out) through the
/// server's API. The device never reached the server with this program, so the caller also
/// reads out its SHA-256 (`sha256sum`).
fn helpdesk(world: &World, challenge: &str, command: &str) -> String {
    let program = command.split_whitespace().next().unwrap();
    let sum = std::process::Command::new("sha256sum")
        .arg(program)
        .output()
        .unwrap();
    let sha256 = text(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let answer = world
        .api(world.server().post(
            Some(&world.admin),
            "/v1/offline/responses",
            &serde_json::json!({ "challenge": challenge, "scope": "request", "minutes": 30,
                "reason": "the office network is down", "command": command, "sha256": sha256 }),
        ))
        .expect(201);
    assert_eq!(answer.body["command"], command, "{}", answer.text);
    answer.body["response"].as_str().unwrap().to_string()
}

#[test]
fn without_the_server_the_helpdesk_answers_by_phone_once() {
    namespaced(
        "offline::without_the_server_the_helpdesk_answers_by_phone_once",
        || {
            let mut world = World::new();
            // Cut the agent off from the server (which stays up for the helpdesk): it keeps its
            // cached, signed policy.
            cut_off(&mut world, "http://127.0.0.1:9");

            // An auto rule still works offline.
            let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));

            // bob's whoami needs an approver: a challenge, a wrong code, then the right one.
            let mut screen = Screen::start(&world, "bob", "/usr/bin/whoami");
            let challenge = screen.challenge();
            let command = screen.command();
            assert_eq!(command, "/usr/bin/whoami");
            // A code for another command is never issued for this challenge.
            let refused = world
                .api(world.server().post(
                    Some(&world.admin),
                    "/v1/offline/responses",
                    &serde_json::json!({ "challenge": challenge, "scope": "request", "minutes": 30,
                        "reason": "r", "command": "/usr/bin/id" }),
                ))
                .expect(409);
            assert!(
                refused.text.contains("not for /usr/bin/id"),
                "{}",
                refused.text
            );
            let code = helpdesk(&world, &challenge, &command);
            // A real code for another challenge (another nonce) does not fit this one.
            let other = {
                let mut c = elevate_core::offline::Challenge::parse(&challenge).unwrap();
                c.nonce ^= 1;
                helpdesk(&world, &c.encode(), &command)
            };
            let mark = screen.len();
            screen.type_line(&other);
            screen.wait_for("does not answer this challenge for this command (another command, another challenge", mark);
            screen.wait_for("4 tries left", mark);
            let mark = screen.len();
            screen.type_line(&code);
            screen.wait_for("by the helpdesk's offline code", mark);
            let (status, shown) = screen.finish();
            assert_eq!(status, Some(0), "{shown}");
            assert!(shown.contains("\nroot\n"), "{shown}");

            // The same code again: a new request has a new challenge, and the old code fails.
            let mut again = Screen::start(&world, "bob", "/usr/bin/whoami");
            let second = again.challenge();
            assert_ne!(second, challenge);
            for tries_left in (0..5).rev() {
                let mark = again.len();
                again.type_line(&code);
                if tries_left > 0 {
                    again.wait_for(&format!("{tries_left} tries left"), mark);
                }
            }
            let (status, shown) = again.finish();
            assert_ne!(status, Some(0), "{shown}");
            assert!(
                shown.contains("5 wrong codes: this challenge is void"),
                "{shown}"
            );
            assert!(
                !shown.contains("\nroot\n"),
                "ran with a spent code: {shown}"
            );

            // Guessing cannot start over: ten wrong codes on this device, across challenges, turn
            // offline codes off until the server is reached again (six so far).
            let mut third = Screen::start(&world, "bob", "/usr/bin/whoami");
            third.challenge();
            for tries_left in [4, 3, 2] {
                let mark = third.len();
                third.type_line(&code);
                third.wait_for(&format!("{tries_left} tries left"), mark);
            }
            third.type_line(&code);
            let (status, shown) = third.finish();
            assert_ne!(status, Some(0), "{shown}");
            assert!(
                shown.contains("10 wrong codes on this device: offline codes are off"),
                "{shown}"
            );
            let status = text(&world.elevate_as("bob", &["status"], &[]).stdout);
            assert!(
                status.contains("helpdesk codes are OFF after 10 wrong ones"),
                "{status}"
            );
            let out = world.elevate_as("bob", &["/usr/bin/whoami"], &[]);
            assert!(
                text(&out.stderr)
                    .contains("offline codes are off until the server is reached again"),
                "{}",
                text(&out.stderr)
            );

            // Back online, the server learns what happened, in order.
            let url = world.server().url.clone();
            cut_off(&mut world, &url);
            // Reached again: the budget is whole.
            let budget = world.dir.join("agent/offline-failures");
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::fs::read_to_string(&budget).unwrap_or_default().trim() != "0" {
                assert!(Instant::now() < deadline, "the budget was not reset online");
                std::thread::sleep(Duration::from_millis(100));
            }
            world.eventually_in_audit("the offline story reaches the server", |records| {
                let count = |a: &str| records.iter().filter(|r| r["action"] == a).count();
                count("offline.challenge_issued") == 3
                    && count("offline.code_used") == 1
                    && count("offline.code_refused") == 10
                    && count("offline.code_issued") == 2
            });
        },
    );
}

/// The sudo plugin's entry point: the challenge through sudo's conversation, the code read as
/// sudo reads a password: from standard input (`sudo -S`) and from an askpass program
/// (`sudo -A`).
#[test]
fn sudo_takes_the_helpdesk_code_through_its_conversation() {
    namespaced(
        "offline::sudo_takes_the_helpdesk_code_through_its_conversation",
        || {
            let mut world = World::new();
            let Some(()) = crate::sudo::sudo_through_elevate(&world) else {
                return;
            };
            cut_off(&mut world, "http://127.0.0.1:9");

            // `sudo -S`: the code on standard input.
            let out = sudo_with_a_code(&world, &["-S", "/usr/bin/whoami"], &[], |sudo, code| {
                let stdin = sudo.stdin.as_mut().unwrap();
                stdin.write_all(format!("{code}\n").as_bytes()).unwrap();
            });
            assert_eq!(out, "root\n");
            // `sudo -A`: the code from an askpass program (here one that waits for a file).
            let handed = world.dir.join("askpass-code");
            let askpass = world.program(
                "askpass",
                "code.sh",
                &format!(
                    "#!/bin/sh\nwhile [ ! -s {0} ]; do sleep 0.1; done\ncat {0}\n",
                    handed.display()
                ),
                0o755,
            );
            let out = sudo_with_a_code(
                &world,
                &["-A", "/usr/bin/whoami"],
                &[("SUDO_ASKPASS", askpass.to_str().unwrap())],
                |_, code| {
                    std::fs::write(&handed, format!("{code}\n")).unwrap();
                    std::fs::set_permissions(
                        &handed,
                        std::os::unix::fs::PermissionsExt::from_mode(0o644),
                    )
                    .unwrap();
                },
            );
            assert_eq!(out, "root\n");
        },
    );
}

/// bob's `sudo ARGS` while the agent is cut off: waits for the challenge on sudo's standard
/// error, gets the helpdesk's code for it, hands it over with `deliver`, and returns what the
/// command printed.
fn sudo_with_a_code(
    world: &World,
    args: &[&str],
    env: &[(&str, &str)],
    deliver: impl FnOnce(&mut std::process::Child, &str),
) -> String {
    let mut command = crate::sudo::sudo_as("bob", args);
    command.stdin(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut sudo = command.spawn().unwrap();
    let err = sudo.stderr.take().unwrap();
    let (shown, reader) = collect(err);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (challenge, command) = loop {
        let text = shown.lock().unwrap().clone();
        if let Some(at) = text.find("read them this challenge: ") {
            let rest = &text[at + "read them this challenge: ".len()..];
            let command = rest
                .split_once("and this command, exactly: ")
                .and_then(|(_, c)| c.split_once(" ("))
                .map(|(c, _)| c.to_string());
            if let (Some(word), Some(command)) = (rest.split_whitespace().next(), command) {
                break (word.to_string(), command);
            }
        }
        assert!(Instant::now() < deadline, "no challenge from sudo:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let code = helpdesk(world, &challenge, &command);
    deliver(&mut sudo, &code);
    drop(sudo.stdin.take());
    let mut out = String::new();
    sudo.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = sudo.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "{}", shown.lock().unwrap());
    out
}

/// `[defaults] offline_max_age`: a device cut off for longer than that pre-approves nothing on
/// its cached policy; only the helpdesk's code (or the server again) allows elevation.
#[test]
fn a_policy_older_than_its_offline_limit_pre_approves_nothing() {
    namespaced(
        "offline::a_policy_older_than_its_offline_limit_pre_approves_nothing",
        || {
            let mut world = World::new();
            let limited = crate::world::POLICY.replacen(
                "[defaults]\n",
                "[defaults]\noffline_max_age = \"3s\"\n",
                1,
            );
            world
                .api(world.server().apply_policy(&world.admin, &limited))
                .expect(201);
            crate::sudo::status_eventually(&world, "policy:  version 2");
            let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));

            cut_off(&mut world, "http://127.0.0.1:9");
            std::thread::sleep(Duration::from_secs(4));
            // The same pre-approved command now needs the helpdesk.
            let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
            assert!(out.stdout.is_empty(), "ran on a stale policy");
            assert!(
                text(&out.stderr).contains("read them this challenge"),
                "{}",
                text(&out.stderr)
            );

            // The server again: a fresh policy, and it runs at once.
            let url = world.server().url.clone();
            cut_off(&mut world, &url);
            // (Once its first refresh has fetched a freshly signed policy.)
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
                if text(&out.stdout) == "0\n" {
                    break;
                }
                assert!(Instant::now() < deadline, "{}", text(&out.stderr));
                std::thread::sleep(Duration::from_millis(200));
            }
        },
    );
}

/// A rule with `offline = false`: its approvers cannot be stood in for by a helpdesk code (the
/// helpdesk would approve a command it cannot see); without the server it fails closed.
#[test]
fn a_rule_may_refuse_the_helpdesks_codes() {
    namespaced("offline::a_rule_may_refuse_the_helpdesks_codes", || {
        let mut world = World::new();
        let policy = format!(
                "{}\n[[rule]]\nname = \"payroll needs its own approvers\"\nwhat = {{ paths = [\"/opt/e2e/payroll/*\"] }}\noffline = false\naction = {{ approve = {{ approvers = \"finance\" }} }}\n\n[[rule]]\nname = \"vaults need two\"\nwhat = {{ paths = [\"/opt/e2e/vault/*\"] }}\naction = {{ approve = {{ approvers = \"finance\", count = 2 }} }}\n",
                crate::world::POLICY
            );
        world
            .api(world.server().apply_policy(&world.admin, &policy))
            .expect(201);
        crate::sudo::status_eventually(&world, "policy:  version 2");
        let payroll = world.program("payroll", "run", "#!/bin/sh\necho paid\n", 0o755);
        cut_off(&mut world, "http://127.0.0.1:9");
        let out = world.elevate_as("bob", &[payroll.to_str().unwrap()], &[]);
        assert!(out.stdout.is_empty());
        let said = text(&out.stderr);
        assert!(
            said.contains("cannot be reached") && said.contains("nothing ran"),
            "{said}"
        );
        assert!(!said.contains("challenge"), "a code was offered: {said}");
        // count = 2 is two people: one helpdesk code cannot stand in for them.
        let vault = world.program("vault", "open", "#!/bin/sh\necho open\n", 0o755);
        let out = world.elevate_as("bob", &[vault.to_str().unwrap()], &[]);
        assert!(out.stdout.is_empty());
        let said = text(&out.stderr);
        assert!(
            said.contains("needs 2 different approvers") && !said.contains("challenge"),
            "{said}"
        );
        // Other approvals still take a code (shown, then refused here for want of a terminal).
        let out = world.elevate_as("bob", &["/usr/bin/whoami"], &[]);
        assert!(
            text(&out.stderr).contains("read them this challenge"),
            "{}",
            text(&out.stderr)
        );
    });
}

/// A helpdesk member's break-glass share for `challenge`, through the server's API.
fn share(world: &World, token: &str, challenge: &str, minutes: u16) -> String {
    let answer = world
        .api(world.server().post(
            Some(token),
            "/v1/offline/responses",
            &serde_json::json!({ "challenge": challenge, "scope": "break-glass",
                "minutes": minutes, "reason": "the database host is down and the office is cut off" }),
        ))
        .expect(201);
    answer.body["response"].as_str().unwrap().to_string()
}

/// Break glass: an emergency admin session offline needs codes from two different helpdesk
/// members (the policy's `break_glass_codes = 2`); one member's code, even typed twice, opens
/// nothing; back online the server holds it and the portal lists it for review.
#[test]
fn break_glass_needs_two_helpdesk_members_and_is_reviewed_afterwards() {
    namespaced(
        "offline::break_glass_needs_two_helpdesk_members_and_is_reviewed_afterwards",
        || {
            let mut world = World::new();
            // Admin sessions work through sudo with Elevate's plugin.
            let Some(()) = crate::admin_sessions::sessions_through_sudo(&world) else {
                return;
            };
            let policy = crate::world::POLICY.replacen(
                "[defaults]\n",
                "[defaults]\nbreak_glass_codes = 2\n",
                1,
            );
            let second = world.api(async {
                let server = world.server();
                server.apply_policy(&world.admin, &policy).await.expect(201);
                server
                    .account("hd2", &[elevate_server::app::Role::Approver], &["helpdesk"])
                    .await;
                server
                    .account("auditor1", &[elevate_server::app::Role::Auditor], &[])
                    .await;
                server.token("hd2").await
            });
            // Online, break glass is not the way (approvers are).
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let out = world.elevate_as("alice", &["--reason", "x", "break-glass"], &[]);
                let said = text(&out.stderr);
                if said.contains("the server can be reached") {
                    break;
                }
                assert!(Instant::now() < deadline, "{said}");
                std::thread::sleep(Duration::from_millis(200));
            }
            let url = world.server().url.clone();
            cut_off(&mut world, "http://127.0.0.1:9");
            let deadline = Instant::now() + Duration::from_secs(20);
            while !text(&world.elevate_as("alice", &["status"], &[]).stdout)
                .contains("offline since")
            {
                assert!(
                    Instant::now() < deadline,
                    "the agent never noticed it is offline"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            let out = world.elevate_as("alice", &["break-glass"], &[]);
            assert!(
                text(&out.stderr).contains("break glass needs a reason"),
                "{}",
                text(&out.stderr)
            );

            // A share answers no ordinary request (bob's whoami needs an approver).
            let mut screen = Screen::start(&world, "bob", "/usr/bin/whoami");
            let challenge = screen.challenge();
            let mark = screen.len();
            screen.type_line(&share(&world, &world.admin, &challenge, 30));
            screen.wait_for("only `elevate break-glass` takes", mark);
            let (status, shown) = screen.finish();
            assert_ne!(status, Some(0), "{shown}");
            assert!(!shown.contains("\nroot\n"), "{shown}");

            // One member's code, typed twice, is not two members' codes.
            let mut screen = Screen::start(
                &world,
                "alice",
                "--reason 'the database host is down' break-glass",
            );
            let challenge = screen.challenge();
            screen.wait_for("codes from 2 different members of the helpdesk", 0);
            let first = share(&world, &world.admin, &challenge, 30);
            assert_eq!(
                share(&world, &world.admin, &challenge, 30),
                first,
                "the same member gets the same share again, never a second one"
            );
            let mark = screen.len();
            screen.type_line(&first);
            screen.wait_for("code 1 of 2 accepted", mark);
            let mark = screen.len();
            screen.type_line(&first);
            screen.wait_for("whose code was already typed", mark);
            screen.wait_for("5 tries left", mark);
            let (status, shown) = screen.finish();
            assert_ne!(status, Some(0), "{shown}");
            assert!(!shown.contains("admin session open"), "{shown}");
            let status = text(&world.elevate_as("alice", &["status"], &[]).stdout);
            assert!(!status.contains("session: admin session open"), "{status}");

            // The server now asks for three members; this device, cut off, still has a policy
            // that says two. The shares carry the server's number, so two no longer open it.
            let three = policy.replacen("break_glass_codes = 2", "break_glass_codes = 3", 1);
            world
                .api(world.server().apply_policy(&world.admin, &three))
                .expect(201);
            let mut screen = Screen::start(
                &world,
                "alice",
                "--reason 'the database host is down' break-glass",
            );
            let challenge = screen.challenge();
            let mark = screen.len();
            screen.type_line(&share(&world, &world.admin, &challenge, 30));
            screen.wait_for("code 1 of 3 accepted", mark);
            let mark = screen.len();
            screen.type_line(&share(&world, &second, &challenge, 30));
            screen.wait_for("code 2 of 3 accepted", mark);
            let (status, shown) = screen.finish();
            assert_ne!(status, Some(0), "{shown}");
            assert!(!shown.contains("admin session open"), "{shown}");
            world
                .api(world.server().apply_policy(&world.admin, &policy))
                .expect(201);

            // Two members: the session opens, as long as the shorter code.
            let mut screen = Screen::start(
                &world,
                "alice",
                "--reason 'the database host is down' break-glass",
            );
            let challenge = screen.challenge();
            let mine = share(&world, &world.admin, &challenge, 60);
            let theirs = share(&world, &second, &challenge, 30);
            assert_ne!(mine, theirs);
            let mark = screen.len();
            screen.type_line(&mine);
            screen.wait_for("code 1 of 2 accepted", mark);
            let mark = screen.len();
            screen.type_line(&theirs);
            screen.wait_for("admin session open for ", mark);
            let (status, shown) = screen.finish();
            assert_eq!(status, Some(0), "{shown}");
            assert!(
                shown.contains("open for 30m") || shown.contains("open for 29m"),
                "as long as the shorter code: {shown}"
            );
            let status = text(&world.elevate_as("alice", &["status"], &[]).stdout);
            assert!(status.contains("session: admin session open"), "{status}");

            // Back online: the server holds it, as an alert, matched to its two issuances.
            cut_off(&mut world, &url);
            world.eventually_in_audit("the break-glass session reaches the server", |records| {
                let used: Vec<_> = records
                    .iter()
                    .filter(|r| r["action"] == "breakglass.used")
                    .collect();
                used.len() == 1
                    && used[0]["data"].as_str().unwrap().contains("\"alert\":true")
                    && used[0]["data"]
                        .as_str()
                        .unwrap()
                        .contains("\"shares\":[1,2]")
            });
            assert!(
                !world
                    .audit()
                    .iter()
                    .any(|r| r["action"] == "offline.code_unissued"),
                "every share used was issued"
            );

            // The portal lists it for review; a review is recorded once.
            let http = elevate_testkit::portal_client();
            let page = |cookie: &str| {
                world.api(elevate_testkit::portal_page(
                    &http,
                    &url,
                    cookie,
                    "/portal/break-glass",
                ))
            };
            let sign_in =
                |account: &str| world.api(elevate_testkit::portal_cookie(&http, &url, account));
            let cookie = sign_in("admin");
            let html = page(&cookie);
            assert!(
                html.contains("alice")
                    && html.contains("e2e-host")
                    && html.contains("NOT REVIEWED")
                    && html.contains("the database host is down")
                    && html.contains("30 min"),
                "{html}"
            );
            let review = |cookie: &str| {
                let html = page(cookie);
                let at =
                    html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
                let csrf = html[at..].split('"').next().unwrap().to_string();
                let action_at =
                    html.find("action=\"/portal/break-glass/").unwrap() + "action=\"".len();
                let action = html[action_at..].split('"').next().unwrap().to_string();
                world.api(async {
                    http.post(format!("{url}{action}"))
                        .header("cookie", cookie)
                        .form(&[
                            ("csrf", csrf.as_str()),
                            ("note", "restarted postgres; checked by the DBA"),
                        ])
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            };
            // admin gave a share: someone who took no part reviews it.
            assert_eq!(review(&cookie), 403);
            let auditor = sign_in("auditor1");
            assert_eq!(review(&auditor), 303);
            // The other is the attempt that needed a third member: two members gave shares, so
            // the server lists it for review too (it cannot know that the device stayed shut).
            let html = page(&auditor);
            assert!(
                html.matches("Reviewed by auditor1").count() == 1
                    && html.matches("NOT REVIEWED").count() == 1,
                "{html}"
            );
            assert!(world
                .audit()
                .iter()
                .any(|r| r["action"] == "breakglass.reviewed"));
            let _ = world.elevate_as("alice", &["session", "end"], &[]);
        },
    );
}
