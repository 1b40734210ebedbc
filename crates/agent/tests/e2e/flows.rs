//! What users do: run a pre-approved command at once, wait for an approver, be denied.

use crate::world::text;
use crate::{namespaced, World};

#[test]
fn a_developer_runs_a_pre_approved_command_as_root() {
    namespaced(
        "flows::a_developer_runs_a_pre_approved_command_as_root",
        || {
            let world = World::new();
            let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
            assert_eq!(text(&out.stdout), "0\n", "stderr: {}", text(&out.stderr));
            assert!(out.status.success());
            // A bare name is found in the agent's own PATH.
            let out = world.elevate_as("alice", &["id", "-un"], &[]);
            assert_eq!(text(&out.stdout), "root\n", "stderr: {}", text(&out.stderr));
            // The events reach the server: request, decision, start and exit.
            world.eventually_in_audit("the agent's events did not arrive", |records| {
                let actions: Vec<&str> = records
                    .iter()
                    .filter(|r| r["actor"] == "user:alice@e2e-host")
                    .map(|r| r["action"].as_str().unwrap())
                    .collect();
                [
                    "request.created",
                    "request.decided",
                    "request.running",
                    "request.finished",
                ]
                .iter()
                .all(|w| actions.iter().filter(|a| *a == w).count() == 2)
            });
            let verify = world
                .api(world.server().get(Some(&world.admin), "/v1/audit/verify"))
                .expect(200);
            assert_eq!(verify.body["ok"], true);
        },
    );
}

#[test]
fn a_request_waits_for_an_approver_then_runs_and_returns_its_exit_status() {
    namespaced(
        "flows::a_request_waits_for_an_approver_then_runs_and_returns_its_exit_status",
        || {
            let world = World::new();
            let exit3 = world.program(
                "approve",
                "exit3",
                "#!/bin/sh\necho \"ran as $(id -u) for $ELEVATE_REQUESTER\"\nexit 3\n",
                0o755,
            );
            let child = world
                .command_as("bob", &[exit3.to_str().unwrap()], &[])
                .spawn()
                .unwrap();
            let id = world.pending_request();
            let approved = world.approve(&id, serde_json::json!({ "comment": "ok" }));
            assert_eq!(approved["state"], "approved");
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
            assert_eq!(text(&out.stdout), "ran as 0 for bob\n");
            assert!(
                text(&out.stderr).contains("waiting for approval by helpdesk"),
                "{}",
                text(&out.stderr)
            );
            world.wait_for_actions(
                &id,
                &[
                    "request.created",
                    "request.decided",
                    "request.approval_given",
                    "request.approved",
                    "request.running",
                    "request.finished",
                ],
            );
            let r = world.request(&id);
            assert_eq!(r["exit_code"], 3);
            // Approvers saw where bob was when he asked.
            let here = std::env::current_dir().unwrap();
            assert_eq!(r["cwd"], here.display().to_string());
        },
    );
}

#[test]
fn denials_say_why_and_exit_non_zero() {
    namespaced("flows::denials_say_why_and_exit_non_zero", || {
        let world = World::new();
        // By policy.
        let out = world.elevate_as("alice", &["/usr/bin/dash", "-c", "id"], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("use a specific command instead of a root shell"),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        // By an approver, with a comment.
        let prog = world.program("approve", "hello", "#!/bin/sh\necho hello\n", 0o755);
        let child = world
            .command_as("bob", &[prog.to_str().unwrap()], &[])
            .spawn()
            .unwrap();
        let id = world.pending_request();
        world
            .api(world.server().post(
                Some(&world.admin),
                &format!("/v1/requests/{id}/deny"),
                &serde_json::json!({ "comment": "not on a Friday" }),
            ))
            .expect(200);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("not on a Friday"),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing ran");
    });
}

#[test]
fn ctrl_c_while_waiting_withdraws_the_request() {
    namespaced("flows::ctrl_c_while_waiting_withdraws_the_request", || {
        let world = World::new();
        let prog = world.program("approve", "slowpoke", "#!/bin/sh\necho ran\n", 0o755);
        let child = world
            .command_as("bob", &[prog.to_str().unwrap()], &[])
            .spawn()
            .unwrap();
        let id = world.pending_request();
        // setpriv has exec'd elevate: the child's pid is elevate's.
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::INT,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "stderr: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing ran");
        let r = world.request(&id);
        assert_eq!(r["state"], "cancelled");
    });
}

#[test]
fn a_reason_is_asked_for_when_the_policy_requires_one() {
    namespaced(
        "flows::a_reason_is_asked_for_when_the_policy_requires_one",
        || {
            let world = World::new();
            let tool = world.program("reason", "tool", "#!/bin/sh\necho maintained\n", 0o755);
            let out = world.elevate_as("alice", &[tool.to_str().unwrap()], &[]);
            assert_eq!(out.status.code(), Some(1));
            assert!(
                text(&out.stderr).contains("reason is required")
                    && text(&out.stderr).contains("--reason"),
                "{}",
                text(&out.stderr)
            );
            assert!(out.stdout.is_empty());
            let out = world.elevate_as(
                "alice",
                &["--reason", "rotate the logs", tool.to_str().unwrap()],
                &[],
            );
            assert_eq!(text(&out.stdout), "maintained\n", "{}", text(&out.stderr));
            // The reason travels with the request into the audit trail.
            world.eventually_in_audit("the reason never reached the server", |records| {
                records
                    .iter()
                    .any(|r| r["data"].as_str().unwrap().contains("rotate the logs"))
            });
        },
    );
}

#[test]
fn users_see_their_open_requests() {
    namespaced("flows::users_see_their_open_requests", || {
        let world = World::new();
        let prog = world.program("approve", "later", "#!/bin/sh\necho ran\n", 0o755);
        let child = world
            .command_as("bob", &[prog.to_str().unwrap(), "--now"], &[])
            .spawn()
            .unwrap();
        let id = world.pending_request();
        let out = world.elevate_as("bob", &["requests"], &[]);
        let listed = text(&out.stdout);
        assert!(
            listed.contains(&id)
                && listed.contains("pending")
                && listed.contains("/opt/e2e/approve/later --now")
                && listed.contains("[helpdesk]"),
            "{listed}"
        );
        let out = world.elevate_as("bob", &["status"], &[]);
        assert!(
            text(&out.stdout).contains("open:    1 of your requests"),
            "{}",
            text(&out.stdout)
        );
        // alice has none.
        let out = world.elevate_as("alice", &["requests"], &[]);
        assert!(!text(&out.stdout).contains(&id), "{}", text(&out.stdout));
        world
            .api(world.server().post(
                Some(&world.admin),
                &format!("/v1/requests/{id}/deny"),
                &serde_json::json!({}),
            ))
            .expect(200);
        let _ = child.wait_with_output();
    });
}

#[test]
fn interactive_commands_get_a_terminal_of_their_own() {
    namespaced(
        "flows::interactive_commands_get_a_terminal_of_their_own",
        || {
            let world = World::new();
            // `script` gives elevate a terminal, as a person at a keyboard has; what we type reaches
            // the command through the relayed pty.
            let shell = format!(
                "tty; {elevate} /usr/bin/tty; {elevate} /usr/bin/head -n1",
                elevate = world.elevate.display()
            );
            let mut cmd = world.in_terminal_as("alice", &shell);
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1500));
                stdin.write_all(b"typed by the user\n").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1500));
            }
            let out = child.wait_with_output().unwrap();
            let shown = text(&out.stdout).replace('\r', "");
            let lines: Vec<&str> = shown
                .lines()
                .filter(|l| l.starts_with("/dev/pts/"))
                .collect();
            assert_eq!(
                lines.len(),
                2,
                "two terminals named:\n{shown}\n{}",
                text(&out.stderr)
            );
            assert_ne!(
                lines[0], lines[1],
                "the root command must not share the user's terminal"
            );
            assert!(
                shown.matches("typed by the user").count() >= 1,
                "input reached the command:\n{shown}"
            );
        },
    );
}

#[test]
fn commands_run_in_slash_unless_the_policy_keeps_the_callers_directory() {
    namespaced(
        "flows::commands_run_in_slash_unless_the_policy_keeps_the_callers_directory",
        || {
            let world = World::new();
            let here = world.program("here", "where", "#!/bin/sh\npwd\n", 0o755);
            let auto = world.program("auto", "where", "#!/bin/sh\npwd\n", 0o755);
            let dir = world.dir.join("alices-project");
            std::fs::create_dir_all(&dir).unwrap();
            let run_in = |program: &std::path::Path| {
                world
                    .command_as("alice", &[program.to_str().unwrap()], &[])
                    .current_dir(&dir)
                    .output()
                    .unwrap()
            };
            let out = run_in(&here);
            assert_eq!(
                text(&out.stdout).trim(),
                dir.to_str().unwrap(),
                "{}",
                text(&out.stderr)
            );
            let out = run_in(&auto);
            assert_eq!(text(&out.stdout).trim(), "/", "{}", text(&out.stderr));
            // The audit trail says where each command ran.
            let wanted = format!("\"workdir\":\"{}\"", dir.display());
            world.eventually_in_audit("workdirs not audited", |records| {
                let data: Vec<&str> = records
                    .iter()
                    .filter(|r| r["action"] == "request.running")
                    .map(|r| r["data"].as_str().unwrap())
                    .collect();
                data.iter().any(|d| d.contains(&wanted))
                    && data.iter().any(|d| d.contains("\"workdir\":\"/\""))
            });
        },
    );
}

#[test]
fn output_to_the_users_terminal_is_relayed_not_handed_over() {
    namespaced(
        "flows::output_to_the_users_terminal_is_relayed_not_handed_over",
        || {
            let world = World::new();
            let prog = world.program(
                "auto",
                "outputs",
                "#!/bin/sh\nhead -n1\nreadlink /proc/self/fd/1\nreadlink /proc/self/fd/2 >&2\n",
                0o755,
            );
            // Input from a pipe, output to a terminal (as `echo … | elevate …` typed at a prompt).
            let shell = format!(
                "echo typed | {} {}",
                world.elevate.display(),
                prog.display()
            );
            let out = world
                .in_terminal_as("alice", &shell)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let shown = text(&out.stdout).replace('\r', "");
            assert!(shown.contains("typed"), "{shown}\n{}", text(&out.stderr));
            let links: Vec<&str> = shown
                .lines()
                .filter(|l| l.starts_with("pipe:") || l.starts_with("/dev/"))
                .collect();
            assert_eq!(links.len(), 2, "{shown}");
            assert!(
                links.iter().all(|l| l.starts_with("pipe:")),
                "the root command held the user's terminal: {shown}"
            );
        },
    );
}

/// The check-in: the agent tells the server its human logins, so the helpdesk sees bob's name
/// behind his uid in a challenge although bob never asked for anything.
#[test]
fn the_agent_reports_its_human_logins_at_check_in() {
    namespaced(
        "flows::the_agent_reports_its_human_logins_at_check_in",
        || {
            let world = World::new();
            crate::offline::server_names(&world, "bob");
        },
    );
}

/// A rule for the high-frequency segment is decided on the device, from the segments the server
/// measured and signed into the policy bundle: the person who elevates often runs the command at
/// once; the one who rarely does is refused by the same cached policy.
#[test]
fn a_rule_for_a_segment_is_decided_on_the_device_from_the_servers_measure() {
    namespaced(
        "flows::a_rule_for_a_segment_is_decided_on_the_device_from_the_servers_measure",
        || {
            let world = World::new();
            let (server, admin) = (world.server(), world.admin.clone());
            world
                .api(server.post(
                    Some(&admin),
                    "/v1/directory/import",
                    &serde_json::json!({ "people": [
                        { "user_name": "alice.smith", "logins": [{ "login": "alice" }] },
                        { "user_name": "bob.jones", "logins": [{ "login": "bob" }] } ] }),
                ))
                .expect(200);
            let now = server.clock.now();
            let events: Vec<serde_json::Value> = (0..25)
                .map(|k| ("alice", k))
                .chain([("bob", 0)])
                .map(|(login, k)| {
                    serde_json::json!({ "id": format!("syslog:{login}-{k}"),
                        "at": (now - jiff::SignedDuration::from_hours(k + 1)).to_string(),
                        "host": "e2e-host", "user": login, "runas": "root", "program": "/usr/bin/apt",
                        "outcome": "ran", "via": "sudo", "tty": "pts/0" })
                })
                .collect();
            world
                .api(server.post(
                    Some(&admin),
                    "/v1/imports",
                    &serde_json::json!({ "source": "syslog", "events": events }),
                ))
                .expect(200);
            world
                .api(server.apply_policy(
                    &admin,
                    "version = 1\n[defaults]\nunmatched = \"deny\"\ndeny_message = \"not for you\"\n\
                     [[rule]]\nname = \"frequent admins\"\nwho = { segment = \"high\" }\n\
                     what = { paths = [\"/usr/bin/whoami\"] }\naction = \"auto\"\n",
                ))
                .expect(201);
            // The agent refreshes its bundle every second.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !text(&world.elevate_as("root", &["status"], &[]).stdout).contains("version 2") {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the agent did not take version 2"
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let alice = world.elevate_as("alice", &["/usr/bin/whoami"], &[]);
            assert_eq!(
                text(&alice.stdout),
                "root\n",
                "stderr: {}",
                text(&alice.stderr)
            );
            let bob = world.elevate_as("bob", &["/usr/bin/whoami"], &[]);
            assert!(!bob.status.success());
            assert!(
                text(&bob.stderr).contains("not for you"),
                "{}",
                text(&bob.stderr)
            );
        },
    );
}
