//! The sudo front door: real sudo (Debian's 1.9.13, installed by `.ci/run`) with the Elevate
//! approval plugin in a private `/etc/sudo.conf`, asking the real agent about every command
//! sudoers already allows.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::world::text;
use crate::{namespaced, World};

/// Routes sudo through the plugin (in this namespace's copy of /etc) and lets alice and bob use
/// sudo as broadly as standing admins do today. `None` (with the reason printed) when sudo is
/// not installed and the run does not require it.
pub(crate) fn sudo_through_elevate(world: &World) -> Option<()> {
    if !std::path::Path::new("/usr/bin/sudo").exists() {
        assert!(
            std::env::var("ELEVATE_REQUIRE_ROOT").as_deref() != Ok("1"),
            "ELEVATE_REQUIRE_ROOT=1 but sudo is not installed (.ci/run installs it)"
        );
        eprintln!("SKIPPED: sudo is not installed (apt-get install sudo)");
        return None;
    }
    let plugin = elevate_testkit::cargo_cdylib("elevate-sudo-plugin", "elevate_sudo");
    std::fs::write(
        "/etc/sudo.conf",
        format!(
            "Plugin elevate_audit {0} socket={1}\nPlugin elevate_approval {0} socket={1}\n",
            plugin.display(),
            world.socket.display()
        ),
    )
    .unwrap();
    let rules = "/etc/sudoers.d/elevate-e2e";
    std::fs::write(
        rules,
        "alice ALL=(ALL) NOPASSWD: ALL\nbob ALL=(ALL) NOPASSWD: ALL, !/usr/bin/passwd\n",
    )
    .unwrap();
    std::fs::set_permissions(rules, std::os::unix::fs::PermissionsExt::from_mode(0o440)).unwrap();
    Some(())
}

/// Waits until `elevate status` shows `needle` (the agent re-checks every refresh, 1 s here).
pub(crate) fn status_eventually(world: &World, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let shown = text(&world.elevate_as("alice", &["status"], &[]).stdout);
        if shown.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never said {needle:?}:\n{shown}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn sudo_as(user: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        user,
        "--regid",
        user,
        "--init-groups",
        "--",
        "sudo",
    ])
    .args(args)
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

pub(crate) fn sudo(user: &str, args: &[&str]) -> Output {
    sudo_as(user, args).output().unwrap()
}

#[test]
fn sudo_asks_the_agent_and_follows_the_policy() {
    namespaced("sudo::sudo_asks_the_agent_and_follows_the_policy", || {
        let world = World::new();
        let Some(()) = sudo_through_elevate(&world) else {
            return;
        };
        // Pre-approved for developers: runs at once.
        let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
        assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
        // Denied by policy even though sudoers allows it: sudo refuses with the reason.
        let out = sudo("alice", &["-n", "/usr/bin/bash", "-c", "echo ran"]);
        assert_ne!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("use a specific command instead of a root shell"),
            "{}",
            text(&out.stderr)
        );
        // Needs an approver, and `sudo -n` cannot wait: it fails at once with a message.
        let tool = world.program("approve", "tool", "#!/bin/sh\necho ran\n", 0o755);
        let started = std::time::Instant::now();
        let out = sudo("bob", &["-n", tool.to_str().unwrap()]);
        assert_ne!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty());
        assert!(
            text(&out.stderr).contains("sudo -n cannot wait"),
            "{}",
            text(&out.stderr)
        );
        assert!(started.elapsed() < Duration::from_secs(10), "sudo -n hung");
        // The decisions are in the audit trail, marked as coming through sudo.
        world.eventually_in_audit("sudo decisions were not audited", |records| {
            records.iter().any(|r| {
                r["action"] == "request.created"
                    && r["data"].as_str().is_some_and(|d| {
                        d.contains("\"channel\":\"sudo\"") && d.contains("/usr/bin/id")
                    })
            })
        });
    });
}

#[test]
fn sudo_waits_for_an_approver_then_runs() {
    namespaced("sudo::sudo_waits_for_an_approver_then_runs", || {
        let world = World::new();
        let Some(()) = sudo_through_elevate(&world) else {
            return;
        };
        let tool = world.program(
            "approve",
            "tool",
            "#!/bin/sh\necho \"ran as $(id -u)\"\nexit 4\n",
            0o755,
        );
        let child = sudo_as("bob", &[tool.to_str().unwrap()]).spawn().unwrap();
        let id = world.pending_request();
        world.approve(&id, serde_json::json!({ "comment": "ok" }));
        let out = child.wait_with_output().unwrap();
        assert_eq!(text(&out.stdout), "ran as 0\n", "{}", text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(4),
            "sudo returns the command's status"
        );
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
        // The audit plugin reported the command's status under the approved request.
        let r = world.request(&id);
        assert_eq!(r["exit_code"], 4);
    });
}

#[test]
fn without_the_agent_sudo_refuses() {
    namespaced("sudo::without_the_agent_sudo_refuses", || {
        let mut world = World::new();
        let Some(()) = sudo_through_elevate(&world) else {
            return;
        };
        world.stop_agent();
        let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
        assert_ne!(out.status.code(), Some(0));
        assert!(
            out.stdout.is_empty(),
            "ran without the agent: {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stderr).contains("not reachable"),
            "{}",
            text(&out.stderr)
        );
        // A broken socket (a plain file in its place) refuses the same way.
        let _ = std::fs::remove_file(&world.socket);
        std::fs::write(&world.socket, b"not a socket").unwrap();
        let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
        assert_ne!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty());
    });
}

#[test]
fn exit_statuses_and_sudos_own_refusals_reach_the_audit_trail() {
    namespaced(
        "sudo::exit_statuses_and_sudos_own_refusals_reach_the_audit_trail",
        || {
            let world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            let exit5 = world.program("auto", "exit5", "#!/bin/sh\nexit 5\n", 0o755);
            let out = sudo("alice", &["-n", exit5.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
            world.eventually_in_audit("the exit status was not recorded", |records| {
                let run = records.iter().find(|r| {
                    r["action"] == "request.created"
                        && r["data"].as_str().is_some_and(|d| d.contains("exit5"))
                });
                run.is_some_and(|run| {
                    records.iter().any(|r| {
                        r["action"] == "request.finished"
                            && r["subject"] == run["subject"]
                            && r["data"]
                                .as_str()
                                .is_some_and(|d| d.contains("\"exit_code\":5"))
                    })
                })
            });
            // sudoers itself refuses this one; the agent was never asked, the audit plugin tells it.
            let out = sudo("bob", &["-n", "/usr/bin/passwd", "root"]);
            assert_ne!(out.status.code(), Some(0));
            world.eventually_in_audit("sudo's own refusal was not recorded", |records| {
                records.iter().any(|r| {
                    r["action"] == "sudo.rejected"
                        && r["data"]
                            .as_str()
                            .is_some_and(|d| d.contains("\"user\":\"bob\"") && d.contains("passwd"))
                })
            });
        },
    );
}

/// `elevated install-sudo` / `uninstall-sudo` against this world's agent and plugin.
pub(crate) fn elevated_sudo(world: &World, command: &str, sudo: &str) -> Output {
    let plugin = elevate_testkit::cargo_cdylib("elevate-sudo-plugin", "elevate_sudo");
    Command::new(elevate_testkit::cargo_bin("elevated"))
        .arg("--state-dir")
        .arg(world.dir.join("agent"))
        .arg(command)
        .arg("--plugin")
        .arg(&plugin)
        .arg("--socket")
        .arg(&world.socket)
        .args(["--sudo", sudo])
        .env("ELEVATE_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn install_sudo_is_safe_idempotent_reversible_and_watched() {
    namespaced(
        "sudo::install_sudo_is_safe_idempotent_reversible_and_watched",
        || {
            let world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            // Start from the distribution's sudo.conf (the helper above wrote its own).
            let original = "#\n# Default /etc/sudo.conf file\n#\nSet disable_coredump false\n";
            std::fs::write("/etc/sudo.conf", original).unwrap();
            // Before: alice's sudo runs a shell, as sudoers allows.
            let out = sudo("alice", &["-n", "/usr/bin/bash", "-c", "echo ran"]);
            assert_eq!(text(&out.stdout), "ran\n");

            let out = elevated_sudo(&world, "install-sudo", "/usr/bin/sudo");
            assert!(out.status.success(), "{}", text(&out.stderr));
            let installed = std::fs::read_to_string("/etc/sudo.conf").unwrap();
            assert!(installed.starts_with(original), "{installed}");
            assert_eq!(
                std::fs::read_to_string("/etc/sudo.conf.elevate-backup").unwrap(),
                original
            );
            status_eventually(&world, "records: sudo plugin: on");
            // Now the policy decides.
            let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
            let out = sudo("alice", &["-n", "/usr/bin/bash", "-c", "echo ran"]);
            assert!(out.stdout.is_empty(), "the shell rule was not applied");
            // Twice is the same as once.
            let out = elevated_sudo(&world, "install-sudo", "/usr/bin/sudo");
            assert!(
                text(&out.stdout).contains("already"),
                "{}",
                text(&out.stdout)
            );
            assert_eq!(
                std::fs::read_to_string("/etc/sudo.conf").unwrap(),
                installed
            );

            // Someone edits the plugins out: the agent raises it.
            std::fs::write("/etc/sudo.conf", original).unwrap();
            world.eventually_in_audit("removing the plugin lines went unnoticed", |records| {
                records.iter().any(|r| r["action"] == "sudo.plugin_removed")
            });
            status_eventually(
                &world,
                "sudo plugin: NOT WORKING (the Elevate plugin lines are gone",
            );
            let out = elevated_sudo(&world, "install-sudo", "/usr/bin/sudo");
            assert!(out.status.success(), "{}", text(&out.stderr));
            world.eventually_in_audit("the plugins' return went unnoticed", |records| {
                records
                    .iter()
                    .any(|r| r["action"] == "sudo.plugin_restored")
            });
            // sudo itself swapped for sudo-rs (which ignores plugins) under the installed block.
            let fake = world.program(
                "sudo-rs",
                "sudo",
                "#!/bin/sh\necho 'sudo-rs 0.2.6'\n",
                0o755,
            );
            let mount = |args: &[&str]| {
                assert!(Command::new("mount").args(args).status().unwrap().success());
            };
            mount(&["--bind", fake.to_str().unwrap(), "/usr/bin/sudo"]);
            status_eventually(&world, "is now sudo-rs 0.2.6, which ignores the plugins");
            assert!(Command::new("umount")
                .arg("/usr/bin/sudo")
                .status()
                .unwrap()
                .success());
            status_eventually(&world, "records: sudo plugin: on");

            // Uninstalling gives back exactly the file that was there.
            let out = elevated_sudo(&world, "uninstall-sudo", "/usr/bin/sudo");
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_eq!(std::fs::read_to_string("/etc/sudo.conf").unwrap(), original);
            status_eventually(&world, "sudo plugin: off");
            let out = sudo("alice", &["-n", "/usr/bin/bash", "-c", "echo ran"]);
            assert_eq!(text(&out.stdout), "ran\n");
        },
    );
}

#[test]
fn install_sudo_refuses_sudo_rs() {
    namespaced("sudo::install_sudo_refuses_sudo_rs", || {
        let world = World::new();
        // A stand-in for sudo-rs: it answers `-V` as sudo-rs does.
        let fake = world.program(
            "sudo-rs",
            "sudo",
            "#!/bin/sh\necho 'sudo-rs 0.2.6'\n",
            0o755,
        );
        let before = std::fs::read("/etc/sudo.conf").ok();
        let out = elevated_sudo(&world, "install-sudo", fake.to_str().unwrap());
        assert!(!out.status.success());
        let said = text(&out.stderr);
        assert!(
            said.contains("sudo-rs")
                && said.contains("ignores sudo.conf plugins")
                && said.contains("elevate COMMAND"),
            "{said}"
        );
        assert_eq!(
            std::fs::read("/etc/sudo.conf").ok(),
            before,
            "nothing was changed"
        );
        // With sudo-rs as the host's sudo (in this namespace only), the status says so.
        if !std::path::Path::new("/usr/bin/sudo").exists() {
            eprintln!("SKIPPED the status part: sudo is not installed to stand in for");
            return;
        }
        let status = Command::new("mount")
            .arg("--bind")
            .arg(&fake)
            .arg("/usr/bin/sudo")
            .status()
            .unwrap();
        assert!(status.success());
        status_eventually(
            &world,
            "sudo plugin: impossible here (this host's sudo is sudo-rs",
        );
    });
}

#[test]
fn sudo_of_a_path_others_can_redirect_is_refused() {
    namespaced(
        "sudo::sudo_of_a_path_others_can_redirect_is_refused",
        || {
            let world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            // alice's own folder: she could re-point a link in it between the decision and sudo's
            // exec by path, so neither a link there nor a root-owned file there is decided on.
            let mine = std::path::Path::new("/opt/e2e/alice-owned");
            std::fs::create_dir_all(mine).unwrap();
            let alice = nix::unistd::User::from_name("alice").unwrap().unwrap();
            std::os::unix::fs::chown(mine, Some(alice.uid.as_raw()), None).unwrap();
            let link = mine.join("id");
            std::os::unix::fs::symlink("/usr/bin/id", &link).unwrap();
            let out = sudo("alice", &["-n", link.to_str().unwrap(), "-u"]);
            assert!(out.stdout.is_empty(), "ran: {}", text(&out.stdout));
            assert!(
                text(&out.stderr).contains("can be changed by someone other than root"),
                "{}",
                text(&out.stderr)
            );
            let copy = mine.join("id-copy");
            std::fs::copy("/usr/bin/id", &copy).unwrap();
            let out = sudo("alice", &["-n", copy.to_str().unwrap(), "-u"]);
            assert!(out.stdout.is_empty(), "ran: {}", text(&out.stdout));
            // Through root's own links (merged /usr's /bin) it works.
            let out = sudo("alice", &["-n", "/bin/id", "-u"]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
        },
    );
}

#[test]
fn only_root_may_speak_for_sudo() {
    namespaced("sudo::only_root_may_speak_for_sudo", || {
        use std::io::{Read, Write};
        let world = World::new();
        let alice = nix::unistd::User::from_name("alice")
            .unwrap()
            .unwrap()
            .uid
            .as_raw();
        let frames = [
            serde_json::json!({ "type": "sudo_check", "version": 1, "command": "/usr/bin/id",
                "argv": ["id"], "runas": "root", "cwd": "/", "tty": null, "reason": null, "can_wait": false }),
            serde_json::json!({ "type": "sudo_finished", "version": 1, "request_id": "x",
                "exit_code": 0, "signal": null, "error": null }),
            serde_json::json!({ "type": "sudo_rejected", "version": 1, "command": null,
                "argv": [], "message": "forged", "error": false }),
        ];
        let socket = world.socket.clone();
        let answers = std::thread::spawn(move || {
            let uid = rustix::process::Uid::from_raw(alice);
            rustix::thread::set_thread_res_uid(uid, uid, uid).unwrap();
            frames
                .iter()
                .map(|f| {
                    let body = serde_json::to_vec(f).unwrap();
                    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
                    s.write_all(&body).unwrap();
                    let mut answer = Vec::new();
                    let _ = s.read_to_end(&mut answer);
                    text(&answer)
                })
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        for a in &answers {
            assert!(a.contains("not_sudo"), "{a}");
        }
        std::thread::sleep(Duration::from_millis(500));
        let audit = world.audit();
        assert!(
            !audit
                .iter()
                .any(|r| r["data"].as_str().is_some_and(|d| d.contains("forged"))),
            "a forged report reached the audit trail"
        );
    });
}

#[test]
fn ctrl_c_while_sudo_waits_withdraws_the_request() {
    namespaced(
        "sudo::ctrl_c_while_sudo_waits_withdraws_the_request",
        || {
            let world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            let tool = world.program("approve", "tool", "#!/bin/sh\necho ran\n", 0o755);
            let child = sudo_as("bob", &[tool.to_str().unwrap()]).spawn().unwrap();
            let id = world.pending_request();
            // setpriv exec'd sudo: the child is sudo itself.
            rustix::process::kill_process(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::INT,
            )
            .unwrap();
            let out = child.wait_with_output().unwrap();
            assert_ne!(out.status.code(), Some(0));
            assert!(out.stdout.is_empty(), "ran: {}", text(&out.stdout));
            assert!(
                text(&out.stderr).contains("withdrawn"),
                "{}",
                text(&out.stderr)
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while world.request(&id)["state"] != "cancelled" {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the request was not withdrawn: {}",
                    world.request(&id)["state"]
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        },
    );
}

#[test]
fn sudo_requests_count_against_the_user_who_ran_sudo() {
    namespaced(
        "sudo::sudo_requests_count_against_the_user_who_ran_sudo",
        || {
            let world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            let alice = nix::unistd::User::from_name("alice")
                .unwrap()
                .unwrap()
                .uid
                .as_raw();
            let socket = world.socket.clone();
            // alice holds every session she may have (as idle connections of her own)...
            let held = std::thread::spawn(move || {
                let uid = rustix::process::Uid::from_raw(alice);
                rustix::thread::set_thread_res_uid(uid, uid, uid).unwrap();
                (0..32)
                    .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            // ... so her sudo (which connects as root) is refused too, as soon as it connects
            // (counted against the user sudo acts for), and says why,
            let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
            assert!(out.stdout.is_empty(), "ran: {}", text(&out.stdout));
            assert!(
                text(&out.stderr).contains("too many requests at once"),
                "{}",
                text(&out.stderr)
            );
            // while bob's sudo is served.
            let out = sudo("bob", &["-n", "/usr/bin/bash", "-c", "true"]);
            assert!(
                text(&out.stderr).contains("use a specific command"),
                "{}",
                text(&out.stderr)
            );
            drop(held);
        },
    );
}

#[test]
fn discovery_records_every_sudo_command_and_blocks_nothing() {
    namespaced(
        "sudo::discovery_records_every_sudo_command_and_blocks_nothing",
        || {
            let world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            // dave is a standing admin (group sudo) in the discovery wave.
            let status = Command::new("useradd")
                .args(["-M", "-G", "sudo", "dave"])
                .status()
                .unwrap();
            assert!(status.success());
            let mut rules = std::fs::OpenOptions::new()
                .append(true)
                .open("/etc/sudoers.d/elevate-e2e")
                .unwrap();
            std::io::Write::write_all(&mut rules, b"dave ALL=(ALL) NOPASSWD: ALL\n").unwrap();
            drop(rules);
            let out = sudo("dave", &["-n", "/usr/bin/id", "-u"]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
            let out = sudo("dave", &["-n", "/usr/bin/apt-get", "--version"]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            let out = sudo("dave", &["-n", "/usr/bin/false"]);
            assert_eq!(out.status.code(), Some(1));
            // Enforcement would refuse a root shell; discovery only records it.
            let out = sudo("dave", &["-n", "/usr/bin/bash", "-c", "exit 3"]);
            assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
            // Through elevate too (dave holds admin rights today, so discovery lets it run).
            let out = world.elevate_as("dave", &["/usr/bin/false"], &[]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
            // A script dave owns: the agent cannot vouch for it, and discovery still blocks
            // nothing; it runs as sudoers allows and is recorded as unverified.
            let own = world.program("daves", "tidy.sh", "#!/bin/sh\nexit 4\n", 0o755);
            let chown = Command::new("chown")
                .arg("dave")
                .arg(&own)
                .status()
                .unwrap();
            assert!(chown.success());
            let out = sudo("dave", &["-n", own.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
            // Outside discovery mode the same is refused.
            let out = sudo("alice", &["-n", own.to_str().unwrap()]);
            assert!(!out.status.success());
            assert_ne!(out.status.code(), Some(4), "{}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("dave"),
                "says whose file it is: {}",
                text(&out.stderr)
            );
            world.eventually_in_audit("six discovery events with their facts", |records| {
                let found: Vec<serde_json::Value> = records
                    .iter()
                    .filter(|r| r["action"] == "discovery.command")
                    .filter_map(|r| serde_json::from_str(r["data"].as_str()?).ok())
                    .collect();
                let one_via = |channel: &str, path: &str, exit: i64| {
                    found
                        .iter()
                        .filter(|d| {
                            d["target"]["path"] == path
                                && d["exit_code"] == exit
                                && d["user"] == "dave"
                                && (channel == "native" || d["runas"] == "root")
                                && d["channel"] == channel
                                && d["device"] == "e2e-host"
                                && d["cwd"].is_string()
                                && d["target"]["sha256"]
                                    .as_str()
                                    .is_some_and(|h| h.len() == 64)
                                && d["duration_ms"].is_u64()
                        })
                        .count()
                        == 1
                };
                let one = |path: &str, exit: i64| one_via("sudo", path, exit);
                found.len() == 6
                    && found.iter().any(|d| {
                        d["verified"] == false
                            && d["exit_code"] == 4
                            && d["target"]["path"] == own.to_str().unwrap()
                            && d["target"]["sha256"]
                                .as_str()
                                .is_some_and(|h| h.len() == 64)
                            && d["unverified_because"].is_string()
                    })
                    && one_via("native", "/usr/bin/false", 1)
                    && one("/usr/bin/id", 0)
                    && one("/usr/bin/apt-get", 0)
                    && one("/usr/bin/false", 1)
                    && one("/usr/bin/bash", 3)
                    && found.iter().any(|d| {
                        d["target"]["path"] == "/usr/bin/apt-get" && d["target"]["package"] == "apt"
                    })
                    && found.iter().any(|d| {
                        d["target"]["path"] == "/usr/bin/bash" && d["policy_outcome"] == "deny"
                    })
            });
        },
    );
}

#[test]
fn an_environment_that_runs_other_code_is_refused_in_enforce_mode() {
    namespaced(
        "sudo::an_environment_that_runs_other_code_is_refused_in_enforce_mode",
        || {
            let world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            // alice's sudoers rule is `ALL`, which lets her set the environment (SETENV): the
            // pre-approved `id` would load her library as root.
            let out = sudo("alice", &["-n", "/usr/bin/id", "-u"]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
            for var in ["LD_PRELOAD=/tmp/evil.so", "PYTHONPATH=/tmp"] {
                let out = sudo("alice", &["-n", var, "/usr/bin/id", "-u"]);
                assert!(out.stdout.is_empty(), "{var}: ran");
                let name = var.split('=').next().unwrap();
                assert!(
                    text(&out.stderr).contains(name) && text(&out.stderr).contains("never checked"),
                    "{var}: {}",
                    text(&out.stderr)
                );
            }
        },
    );
}

#[test]
fn sudo_runs_commands_where_the_policy_says() {
    namespaced("sudo::sudo_runs_commands_where_the_policy_says", || {
        let world = World::new();
        let Some(()) = sudo_through_elevate(&world) else {
            return;
        };
        let anywhere = world.program("auto", "where", "#!/bin/sh\npwd\n", 0o755);
        let here = world.program("here", "where", "#!/bin/sh\npwd\n", 0o755);
        // As with elevate: in `/`, unless the rule keeps the caller's directory.
        let out = sudo_as("alice", &["-n", anywhere.to_str().unwrap()])
            .current_dir("/tmp")
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), "/\n", "{}", text(&out.stderr));
        let out = sudo_as("alice", &["-n", here.to_str().unwrap()])
            .current_dir("/tmp")
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), "/tmp\n", "{}", text(&out.stderr));
    });
}
