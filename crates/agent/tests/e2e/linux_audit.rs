//! Discovery through Linux audit: a root command run in a person's login session without sudo
//! or elevate (as after `su`) is recorded from the kernel's own audit records; what sudo ran is
//! left to the sudo plugin; a forged `sudo:` syslog line is never an event.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::sudo::{status_eventually, sudo_through_elevate};
use crate::world::text;
use crate::{namespaced, World};

fn auditctl() -> Option<&'static str> {
    ["/usr/sbin/auditctl", "/sbin/auditctl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Puts the kernel's auditing back as it was, and removes the agent's rule.
struct AuditingAsBefore {
    tool: &'static str,
    enabled: String,
}

impl Drop for AuditingAsBefore {
    fn drop(&mut self) {
        let _ = Command::new(self.tool)
            .args(["-D", "-k", "elevate"])
            .status();
        let _ = Command::new(self.tool).args(["-e", &self.enabled]).status();
    }
}

fn discovered(world: &World) -> Vec<serde_json::Value> {
    world
        .audit()
        .iter()
        .filter(|r| r["action"] == "discovery.command")
        .filter_map(|r| serde_json::from_str(r["data"].as_str()?).ok())
        .collect()
}

#[test]
fn root_commands_outside_sudo_are_discovered_through_linux_audit() {
    namespaced(
        "linux_audit::root_commands_outside_sudo_are_discovered_through_linux_audit",
        || {
            let Some(tool) = auditctl() else {
                assert!(
                    std::env::var("ELEVATE_REQUIRE_ROOT").as_deref() != Ok("1"),
                    "ELEVATE_REQUIRE_ROOT=1 but auditctl is not installed (.ci/run installs auditd)"
                );
                eprintln!("SKIPPED: auditctl is not installed (apt-get install auditd)");
                return;
            };
            let mut world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            // Without auditing on, the collector says so and why.
            let status = text(&Command::new(tool).arg("-s").output().unwrap().stdout);
            let enabled = status
                .lines()
                .find_map(|l| l.strip_prefix("enabled "))
                .unwrap_or("0")
                .to_owned();
            let _restore = AuditingAsBefore { tool, enabled };
            assert!(Command::new(tool)
                .args(["-e", "0"])
                .status()
                .unwrap()
                .success());
            world.agent_args.clear();
            world.stop_agent();
            world.start_agent();
            status_eventually(&world, "auditing is disabled on this host");
            // Auditing on (as auditd does when it starts): the collector starts by itself.
            assert!(Command::new(tool)
                .args(["-e", "1"])
                .status()
                .unwrap()
                .success());
            status_eventually(
                &world,
                "Linux audit (root commands outside sudo and elevate): on",
            );

            // The administrator's view says the same.
            let out = Command::new(elevate_testkit::cargo_bin("elevated"))
                .args(["status", "--socket"])
                .arg(&world.socket)
                .output()
                .unwrap();
            let shown = text(&out.stdout);
            assert!(
                shown.contains("records: Linux audit (root commands outside sudo and elevate): on")
                    && shown.contains("records: elevate: on")
                    && shown.contains("records: sudo plugin:"),
                "{shown}{}",
                text(&out.stderr)
            );

            // dave is a standing admin (group sudo) in the discovery wave.
            assert!(Command::new("useradd")
                .args(["-M", "-G", "sudo", "dave"])
                .status()
                .unwrap()
                .success());
            let mut rules = std::fs::OpenOptions::new()
                .append(true)
                .open("/etc/sudoers.d/elevate-e2e")
                .unwrap();
            std::io::Write::write_all(&mut rules, b"dave ALL=(ALL) NOPASSWD: ALL\n").unwrap();
            drop(rules);
            let uid = text(
                &Command::new("id")
                    .args(["-u", "dave"])
                    .output()
                    .unwrap()
                    .stdout,
            );
            let in_daves_session = |script: &str| {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "echo {} > /proc/self/loginuid && {script}",
                        uid.trim()
                    ))
                    .current_dir("/tmp")
                    .output()
                    .unwrap()
            };
            // A root command in dave's login session, without sudo (as after `su`).
            let out = in_daves_session("exec /usr/bin/id -un");
            assert_eq!(text(&out.stdout), "root\n", "{}", text(&out.stderr));
            // dave's sudo in the same session: recorded by the plugin, not twice.
            let out = in_daves_session(
                "exec setpriv --reuid dave --regid dave --init-groups -- sudo -n /usr/bin/whoami",
            );
            assert_eq!(text(&out.stdout), "root\n", "{}", text(&out.stderr));
            // Anyone can write a line that looks like sudo's; no collector reads such lines.
            let _ = in_daves_session(
                "exec setpriv --reuid dave --regid dave --init-groups -- logger -t sudo 'dave : PWD=/ ; USER=root ; COMMAND=/usr/bin/passwd'",
            );

            world.eventually_in_audit("the root command seen by Linux audit", |_| {
                discovered(&world).iter().any(|d| {
                    d["source"] == "linux-audit"
                        && d["user"] == "dave"
                        && d["runas"] == "root"
                        && d["target"]["path"] == "/usr/bin/id"
                        && d["argv"] == serde_json::json!(["/usr/bin/id", "-un"])
                        && d["cwd"] == "/tmp"
                        && d["target"]["package"] == "coreutils"
                        && d["target"]["sha256"]
                            .as_str()
                            .is_some_and(|h| h.len() == 64)
                        && d["device"] == "e2e-host"
                        && d["mode"] == "discover"
                })
            });
            world.eventually_in_audit("the sudo command seen by the plugin", |_| {
                discovered(&world)
                    .iter()
                    .any(|d| d["channel"] == "sudo" && d["target"]["path"] == "/usr/bin/whoami")
            });
            // Time for anything else to arrive, then: nothing of sudo's through audit, and
            // nothing from the forged line.
            std::thread::sleep(Duration::from_secs(2));
            let all = discovered(&world);
            let through_audit: Vec<&serde_json::Value> = all
                .iter()
                .filter(|d| d["source"] == "linux-audit")
                .collect();
            // (Only this test's own commands count: they ran in /tmp. Other tests on the same
            // kernel run theirs elsewhere, and the kernel's records are the machine's.)
            assert!(
                !through_audit.iter().any(|d| {
                    let path = d["target"]["path"].as_str().unwrap_or("");
                    (path == "/usr/bin/sudo" || path == "/usr/bin/whoami") && d["cwd"] == "/tmp"
                }),
                "{:?}",
                through_audit
                    .iter()
                    .map(|d| (d["target"]["path"].clone(), d["via"].clone()))
                    .collect::<Vec<_>>()
            );
            // (setpriv, run as root to become dave, is itself a root command in his session and
            // is recorded with its arguments; what the forged line claims never is.)
            assert!(
                !all.iter().any(|d| d["target"]["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("passwd"))),
                "{all:?}"
            );
        },
    );
}
