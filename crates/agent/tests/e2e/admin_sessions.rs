//! Admin sessions (`elevate session 30m`): sudo as usual until the session ends, and the end holds
//! without the agent: the NOTAFTER rule, the session's cgroup killed by its reaper, and the sweep
//! when the agent starts. Real sudo with the plugin installed by `elevated install-sudo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sudo::{elevated_sudo, status_eventually, sudo, sudo_as};
use crate::world::text;
use crate::{namespaced, World};

/// Installs the plugin the supported way. `None` (with the reason printed) when sudo is not
/// installed and the run does not require it.
pub(crate) fn sessions_through_sudo(world: &World) -> Option<()> {
    if !Path::new("/usr/bin/sudo").exists() {
        assert!(
            std::env::var("ELEVATE_REQUIRE_ROOT").as_deref() != Ok("1"),
            "ELEVATE_REQUIRE_ROOT=1 but sudo is not installed (.ci/run installs it)"
        );
        eprintln!("SKIPPED: sudo is not installed (apt-get install sudo)");
        return None;
    }
    let out = elevated_sudo(world, "install-sudo", "/usr/bin/sudo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    status_eventually(world, "records: sudo plugin: on");
    Some(())
}

/// The session rules in this namespace's sudoers folder.
fn session_rules() -> Vec<PathBuf> {
    let mut rules: Vec<PathBuf> = std::fs::read_dir("/etc/sudoers.d")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("elevate-session-")
        })
        .collect();
    rules.sort();
    rules
}

/// The pids in the world's session cgroups.
fn session_processes(world: &World) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(&world.cgroups) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Whether `pid` is a live process (a zombie has ended).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn eventually(what: &str, within: Duration, holds: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !holds() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sudo -n sleep 300` as `user` in the background; returns sudo and the pid of `sleep`, once it
/// runs in the session's cgroup.
#[allow(clippy::zombie_processes)] // sudo is handed to the caller, which waits for it
fn sleeping_under_sudo(world: &World, user: &str) -> (std::process::Child, i32) {
    let mut sudo = sudo_as(user, &["-n", "/usr/bin/sleep", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = session_processes(world)
            .into_iter()
            .find(|p| comm(*p) == "sleep")
        {
            return (sudo, pid);
        }
        if Instant::now() > deadline {
            let _ = sudo.kill();
            let _ = sudo.wait();
            panic!("sleep never ran in the session's cgroup");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The id of the request that opened `user`'s session, from the audit trail.
fn opened_session(world: &World) -> String {
    let mut id = String::new();
    world.eventually_in_audit("the session's opening", |records| {
        match records.iter().rfind(|r| r["action"] == "session.opened") {
            Some(r) => {
                id = r["subject"].as_str().unwrap()["request:".len()..].to_string();
                true
            }
            None => false,
        }
    });
    id
}

/// An audit record's data (kept as JSON text on the server).
fn data(record: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(record["data"].as_str().unwrap_or("null")).unwrap_or_default()
}

fn ended_by(world: &World, request: &str, action: &str, by: &str) {
    world.eventually_in_audit(&format!("{action} by {by}"), |records| {
        records.iter().any(|r| {
            r["subject"] == format!("request:{request}")
                && r["action"] == action
                && data(r)["ended_by"] == by
        })
    });
}

#[test]
fn an_admin_session_lets_sudo_run_until_it_ends_on_time() {
    namespaced(
        "admin_sessions::an_admin_session_lets_sudo_run_until_it_ends_on_time",
        || {
            let world = World::new();
            // Without the plugin, sudo would never re-check the session: none is opened.
            let out = world.elevate_as("alice", &["session", "5m"], &[]);
            assert!(!out.status.success());
            assert!(
                text(&out.stderr).contains("elevated install-sudo"),
                "{}",
                text(&out.stderr)
            );
            assert!(session_rules().is_empty());
            let Some(()) = sessions_through_sudo(&world) else {
                return;
            };
            // alice holds no standing right.
            let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            // The policy limits developers' sessions to an hour.
            let out = world.elevate_as("alice", &["session", "2h"], &[]);
            assert!(!out.status.success());
            assert!(text(&out.stderr).contains("1h"), "{}", text(&out.stderr));
            assert!(session_rules().is_empty());

            let out = world.elevate_as("alice", &["--reason", "patching", "session", "4s"], &[]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(
                text(&out.stdout).contains("admin session open"),
                "{}",
                text(&out.stdout)
            );
            let status = text(&world.elevate_as("alice", &["status"], &[]).stdout);
            assert!(status.contains("session: admin session open"), "{status}");
            // Bob sees no session of his own.
            let status = text(&world.elevate_as("bob", &["status"], &[]).stdout);
            assert!(!status.contains("session:"), "{status}");
            // The sudoers rule carries its end in UTC.
            let rules = session_rules();
            assert_eq!(rules.len(), 1);
            let rule = std::fs::read_to_string(&rules[0]).unwrap();
            let uid = text(
                &Command::new("id")
                    .args(["-u", "alice"])
                    .output()
                    .unwrap()
                    .stdout,
            );
            assert!(
                rule.contains(&format!("\n#{} ALL=(ALL:ALL) NOTAFTER=20", uid.trim())),
                "{rule}"
            );
            // NOSETENV: `ALL` alone would let sudo pass LD_PRELOAD and the like to root commands.
            assert!(rule.ends_with("Z NOPASSWD: NOSETENV: ALL\n"), "{rule}");
            let out = sudo(
                "alice",
                &["-n", "LD_PRELOAD=/tmp/x.so", "/usr/bin/id", "-u"],
            );
            assert!(!out.status.success(), "{}", text(&out.stdout));
            let id = opened_session(&world);

            // sudo works as it did before revocation…
            let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
            // …but the policy's denials still hold.
            let out = sudo("alice", &["-n", "/usr/bin/bash", "-c", "echo ran"]);
            assert!(!out.status.success());
            assert!(out.stdout.is_empty());

            // kill -9 of sudo leaves its command running, re-parented, in the session's cgroup.
            let (mut sudo_process, sleep) = sleeping_under_sudo(&world, "alice");
            sudo_process.kill().unwrap();
            sudo_process.wait().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                alive(sleep),
                "sleep ended with sudo; the test proves nothing"
            );

            // At the end: the command is killed, the rule is gone, sudo refuses again.
            eventually(
                "the session's command outlived the session",
                Duration::from_secs(15),
                || !alive(sleep),
            );
            eventually(
                "the rule outlived the session",
                Duration::from_secs(5),
                || session_rules().is_empty(),
            );
            let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            let status = text(&world.elevate_as("alice", &["status"], &[]).stdout);
            assert!(!status.contains("session:"), "{status}");
            world.eventually_in_audit("the session's expiry", |records| {
                records.iter().any(|r| {
                    r["subject"] == format!("request:{id}")
                        && r["action"] == "session.expired"
                        && data(r)["processes_killed"].as_u64() >= Some(1)
                })
            });
        },
    );
}

#[test]
fn killing_the_agent_does_not_keep_a_session_open() {
    namespaced(
        "admin_sessions::killing_the_agent_does_not_keep_a_session_open",
        || {
            let mut world = World::new();
            let Some(()) = sessions_through_sudo(&world) else {
                return;
            };
            let out = world.elevate_as("alice", &["session", "3s"], &[]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let id = opened_session(&world);
            let (mut sudo_process, sleep) = sleeping_under_sudo(&world, "alice");
            world.stop_agent(); // SIGKILL
                                // With the agent gone, sudo fails closed at once…
            let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            // …and the session still ends on time: its reaper kills the command, drops the rule.
            eventually(
                "the session's command outlived the session",
                Duration::from_secs(15),
                || !alive(sleep),
            );
            sudo_process.wait().unwrap();
            eventually(
                "the rule outlived the session",
                Duration::from_secs(5),
                || session_rules().is_empty(),
            );
            // The agent, back, reports the end its reaper made.
            world.start_agent();
            ended_by(&world, &id, "session.expired", "reaper");
        },
    );
}

/// A reboot: the agent and the session's reaper are gone, and the machine comes back after the
/// session's expiry. The agent's first act is the sweep.
#[test]
fn no_session_survives_a_restart_after_its_expiry() {
    namespaced(
        "admin_sessions::no_session_survives_a_restart_after_its_expiry",
        || {
            let mut world = World::new();
            let Some(()) = sessions_through_sudo(&world) else {
                return;
            };
            let out = world.elevate_as("alice", &["session", "2s"], &[]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let id = opened_session(&world);
            world.stop_agent();
            let state = world.dir.join("agent").display().to_string();
            let mut reapers = 0;
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if cmdline.contains("session-reaper") && cmdline.contains(&state) {
                    let pid: i32 = entry.file_name().to_string_lossy().parse().unwrap();
                    assert!(Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status()
                        .unwrap()
                        .success());
                    reapers += 1;
                }
            }
            assert_eq!(reapers, 1, "the session had no reaper of its own");
            std::thread::sleep(Duration::from_secs(3));
            // Nothing ended it while everything was down.
            assert_eq!(session_rules().len(), 1);
            world.start_agent();
            // start_agent returns once the agent serves: the sweep came before.
            assert!(session_rules().is_empty(), "{:?}", session_rules());
            ended_by(&world, &id, "session.expired", "start_sweep");
        },
    );
}

#[test]
fn a_session_may_need_an_approver_and_ends_early_on_request() {
    namespaced(
        "admin_sessions::a_session_may_need_an_approver_and_ends_early_on_request",
        || {
            let world = World::new();
            let Some(()) = sessions_through_sudo(&world) else {
                return;
            };
            // bob is no developer: the defaults send his session to the helpdesk.
            let waiting = world
                .command_as("bob", &["--reason", "db upgrade", "session", "10m"], &[])
                .spawn()
                .unwrap();
            let request = world.pending_request();
            assert!(session_rules().is_empty(), "opened before approval");
            world.approve(&request, serde_json::json!({ "comment": "go ahead" }));
            let out = waiting.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(text(&out.stderr).contains("approved: go ahead"));
            let out = sudo("bob", &["-n", "/usr/bin/id", "-u"]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
            let (mut sudo_process, sleep) = sleeping_under_sudo(&world, "bob");

            let out = world.elevate_as("bob", &["session", "end"], &[]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(text(&out.stdout).contains("ended"), "{}", text(&out.stdout));
            eventually(
                "the command outlived its session",
                Duration::from_secs(5),
                || !alive(sleep),
            );
            sudo_process.wait().unwrap();
            assert!(session_rules().is_empty());
            let out = sudo("bob", &["-n", "/usr/bin/id", "-u"]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            let out = world.elevate_as("bob", &["session", "end"], &[]);
            assert!(
                text(&out.stdout).contains("no open admin session"),
                "{}",
                text(&out.stdout)
            );
            ended_by(&world, &request, "session.ended", "user");
            world.eventually_in_audit("the processes the early end stopped", |records| {
                records.iter().any(|r| {
                    r["action"] == "session.ended"
                        && data(r)["processes_killed"].as_u64() >= Some(1)
                })
            });
            // The server's request is closed too.
            let deadline = Instant::now() + Duration::from_secs(10);
            while world.request(&request)["state"] != "finished" {
                assert!(Instant::now() < deadline, "{}", world.request(&request));
                std::thread::sleep(Duration::from_millis(100));
            }
        },
    );
}

#[test]
fn a_session_lasts_only_as_long_as_the_policy_allows_it() {
    namespaced(
        "admin_sessions::a_session_lasts_only_as_long_as_the_policy_allows_it",
        || {
            let world = World::new();
            let Some(()) = sessions_through_sudo(&world) else {
                return;
            };
            // Discovery mode lets standing admins' commands run, but a session is a grant: the
            // policy's limit holds for dave (in the discovery wave) too.
            assert!(Command::new("useradd")
                .args(["-M", "-G", "sudo", "dave"])
                .status()
                .unwrap()
                .success());
            let out = world.elevate_as("dave", &["session", "87600h"], &[]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            assert!(session_rules().is_empty());

            let out = world.elevate_as("alice", &["session", "10m"], &[]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let id = opened_session(&world);
            let (mut sudo_process, sleep) = sleeping_under_sudo(&world, "alice");
            // A new policy that refuses developers' sessions ends the open one.
            let refusing = crate::world::POLICY.replace(
                "[[rule]]\nname = \"developers may open short admin sessions\"\nwho = { groups = [\"developers\"] }\nwhat = { session = true }\nsession_max = \"1h\"\naction = \"auto\"",
                "[[rule]]\nname = \"no more sessions for developers\"\nwho = { groups = [\"developers\"] }\nwhat = { session = true }\naction = { deny = \"sessions are paused\" }",
            );
            assert_ne!(refusing, crate::world::POLICY);
            world
                .api(world.server().apply_policy(&world.admin, &refusing))
                .expect(201);
            eventually(
                "the session outlived the policy that allowed it",
                Duration::from_secs(20),
                || !alive(sleep),
            );
            sudo_process.wait().unwrap();
            assert!(session_rules().is_empty());
            ended_by(&world, &id, "session.revoked", "policy");
        },
    );
}

#[test]
fn a_root_shell_through_sudo_opens_an_admin_session_where_the_policy_allows_one() {
    namespaced(
        "admin_sessions::a_root_shell_through_sudo_opens_an_admin_session_where_the_policy_allows_one",
        || {
            let world = World::new();
            let Some(()) = sessions_through_sudo(&world) else {
                return;
            };
            // sudoers lets alice and bob run anything; the policy decides.
            std::fs::write(
                "/etc/sudoers.d/people",
                "alice ALL=(ALL) NOPASSWD: ALL\nbob ALL=(ALL) NOPASSWD: ALL\n",
            )
            .unwrap();
            // The policy refuses root shells as commands…
            let out = sudo("alice", &["-n", "/usr/bin/bash", "-c", "id -u"]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            assert!(session_rules().is_empty());
            // …but a bare `sudo -s` asks for what it means: admin for a while. Developers may
            // have an hour without asking anyone; the shell lives in the session, which ends
            // with it.
            let shell = |user: &str, script: &str| {
                let mut child = sudo_as(user, &["-n", "-s"])
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap();
                std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            };
            let out = shell("alice", "id -u\nls /etc/sudoers.d | grep -c elevate-session-\n");
            assert_eq!(text(&out.stdout), "0\n1\n", "{}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("admin session open for 60 min"),
                "{}",
                text(&out.stderr)
            );
            eventually("the session outlived its shell", Duration::from_secs(10), || {
                session_rules().is_empty()
                    && !text(&world.elevate_as("alice", &["status"], &[]).stdout)
                        .contains("session:")
            });
            // A shell with a command is a command (`$SHELL -c CMD`): decided as one, and the
            // policy refuses root shells.
            let out = sudo("alice", &["-n", "-s", "/usr/bin/id", "-u"]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            // The shell `sudo -s` runs is the user's to choose: only a program /etc/shells lists
            // opens a session (anything else is decided as the command it is).
            assert!(Command::new("usermod")
                .args(["-s", "/usr/bin/id", "alice"])
                .status()
                .unwrap()
                .success());
            let out = sudo("alice", &["-n", "-s"]);
            assert!(text(&out.stdout).starts_with("uid=0"), "{}", text(&out.stderr));
            assert!(session_rules().is_empty(), "a session opened for a non-shell");
            // bob's sessions need an approver: `sudo -n -s` fails at once and says why.
            let out = shell("bob", "id -u\n");
            assert!(!out.status.success(), "{}", text(&out.stdout));
            assert!(
                text(&out.stderr).contains("an admin session needs an approver"),
                "{}",
                text(&out.stderr)
            );
            assert!(session_rules().is_empty());
        },
    );
}
