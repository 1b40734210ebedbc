//! Revocation of standing rights: a wave moved from discover to enforce loses its `sudo`
//! membership and its sudoers `ALL` lines; sudo then goes through the policy; moved back, the
//! rights return as they were. Break-glass accounts are never touched.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::sudo::{elevated_sudo, status_eventually, sudo, sudo_as};
use crate::world::{text, POLICY};
use crate::{namespaced, World};

const TEAM_RULES: &str = "%sudo ALL=(ALL:ALL) NOPASSWD: ALL\nerin ALL=(ALL) NOPASSWD: ALL\n";

/// The end-to-end policy with the admins' wave in `mode`, and a break-glass account.
fn policy(mode: &str) -> String {
    format!(
        "{POLICY}\n[break_glass]\nusers = [\"oncall\"]\n\n[[wave]]\nname = \"admins\"\nmode = \"{mode}\"\nwho = {{ groups = [\"sudo\"], users = [\"erin\"] }}\n"
    )
}

fn apply(world: &World, text: &str, version: u64) {
    world
        .api(world.server().apply_policy(&world.admin, text))
        .expect(201);
    status_eventually(world, &format!("policy:  version {version}"));
}

fn members(group: &str) -> Vec<String> {
    let groups = std::fs::read_to_string("/etc/group").unwrap();
    let line = groups
        .lines()
        .find(|l| l.starts_with(&format!("{group}:")))
        .unwrap();
    let mut m: Vec<String> = line
        .rsplit(':')
        .next()
        .unwrap()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    m.sort();
    m
}

fn eventually(what: &str, holds: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holds() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn uid(user: &str) -> String {
    text(
        &Command::new("id")
            .args(["-u", user])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_owned()
}

fn actions(world: &World, action: &str) -> Vec<serde_json::Value> {
    world
        .audit()
        .into_iter()
        .filter(|r| r["action"] == action)
        .map(|r| serde_json::from_str(r["data"].as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn enforce_takes_standing_rights_away_and_discover_gives_them_back() {
    namespaced(
        "rights::enforce_takes_standing_rights_away_and_discover_gives_them_back",
        || {
            let world = World::new();
            if !std::path::Path::new("/usr/bin/sudo").exists() {
                assert!(
                    std::env::var("ELEVATE_REQUIRE_ROOT").as_deref() != Ok("1"),
                    "ELEVATE_REQUIRE_ROOT=1 but sudo is not installed (.ci/run installs it)"
                );
                eprintln!("SKIPPED: sudo is not installed (apt-get install sudo)");
                return;
            }
            // carol and oncall are standing admins by group, erin by a sudoers line.
            for args in [
                &["-M", "-G", "sudo,developers", "carol"][..],
                &["-M", "-G", "sudo", "oncall"][..],
                &["-M", "erin"][..],
            ] {
                assert!(Command::new("useradd")
                    .args(args)
                    .status()
                    .unwrap()
                    .success());
            }
            std::fs::write("/etc/sudoers.d/team", TEAM_RULES).unwrap();
            std::fs::set_permissions(
                "/etc/sudoers.d/team",
                std::os::unix::fs::PermissionsExt::from_mode(0o440),
            )
            .unwrap();
            let out = elevated_sudo(&world, "install-sudo", "/usr/bin/sudo");
            assert!(out.status.success(), "{}", text(&out.stderr));
            status_eventually(&world, "records: sudo plugin: on");
            let sudo_before = members("sudo");
            assert_eq!(sudo_before, ["carol", "oncall"]);

            // Discover: nothing is taken; sudo works as it always did.
            apply(&world, &policy("discover"), 2);
            let out = sudo("carol", &["-n", "/usr/bin/whoami"]);
            assert_eq!(text(&out.stdout), "root\n", "{}", text(&out.stderr));
            std::thread::sleep(Duration::from_secs(2));
            assert_eq!(members("sudo"), sudo_before);
            assert_eq!(
                std::fs::read_to_string("/etc/sudoers.d/team").unwrap(),
                TEAM_RULES
            );

            // Enforce: carol leaves `sudo`, erin's line is commented out, oncall keeps all.
            apply(&world, &policy("enforce"), 3);
            eventually("standing rights were not taken", || {
                members("sudo") == ["oncall"]
                    && !std::fs::read_to_string("/etc/sudoers.d/team")
                        .unwrap()
                        .contains("\nerin ALL")
                    && std::path::Path::new("/etc/sudoers.d/elevate-managed").exists()
            });
            let team = std::fs::read_to_string("/etc/sudoers.d/team").unwrap();
            assert!(
                team.contains("# elevate revoked this standing right"),
                "{team}"
            );
            let managed = std::fs::read_to_string("/etc/sudoers.d/elevate-managed").unwrap();
            for user in ["carol", "erin"] {
                assert!(
                    managed.contains(&format!("\n#{} ALL=(ALL:ALL) NOTAFTER=20", uid(user))),
                    "{managed}"
                );
            }
            assert!(managed.contains("Z NOPASSWD: NOSETENV: ALL\n"), "{managed}");
            assert!(
                !managed.contains(&format!("#{} ", uid("oncall"))),
                "{managed}"
            );
            let status = text(&world.elevate_as("carol", &["status"], &[]).stdout);
            assert!(
                status.contains("rights:  your standing admin rights are revoked")
                    && status.contains("membership of group sudo")
                    && status.contains("asks Elevate about every command"),
                "{status}"
            );
            // No flapping: carol's wave is defined by the group she was taken out of.
            std::thread::sleep(Duration::from_secs(3));
            assert_eq!(members("sudo"), ["oncall"]);

            // sudo now asks the policy: pre-approved at once…
            let out = sudo("carol", &["-n", "/usr/bin/id", "-u"]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
            // …denied with the reason…
            let out = sudo("carol", &["-n", "/usr/bin/bash", "-c", "echo ran"]);
            assert!(out.stdout.is_empty());
            assert!(
                text(&out.stderr).contains("use a specific command instead of a root shell"),
                "{}",
                text(&out.stderr)
            );
            // …sudo -n of an approval rule fails fast, saying why…
            let started = Instant::now();
            let out = sudo("carol", &["-n", "/usr/bin/whoami"]);
            assert!(!out.status.success());
            assert!(
                text(&out.stderr).contains("cannot wait"),
                "{}",
                text(&out.stderr)
            );
            assert!(started.elapsed() < Duration::from_secs(10));
            // …and without -n it waits for the approver, then runs.
            let waiting = sudo_as("carol", &["/usr/bin/whoami"]).spawn().unwrap();
            let request = world.pending_request();
            world.approve(&request, serde_json::json!({}));
            let out = waiting.wait_with_output().unwrap();
            assert_eq!(text(&out.stdout), "root\n", "{}", text(&out.stderr));
            // oncall (break glass) still has sudo as before, through sudoers alone.
            assert!(members("sudo").contains(&"oncall".to_owned()));

            let revoked = actions(&world, "rights.revoked");
            assert!(
                revoked.iter().any(|d| d["user"] == "carol"
                    && d["right"] == serde_json::json!({ "kind": "group", "group": "sudo" })),
                "{revoked:?}"
            );
            assert!(
                revoked.iter().any(|d| d["user"] == "erin"
                    && d["right"]["kind"] == "sudoers"
                    && d["right"]["line"] == "erin ALL=(ALL) NOPASSWD: ALL"),
                "{revoked:?}"
            );
            assert!(
                !revoked.iter().any(|d| d["user"] == "oncall"),
                "{revoked:?}"
            );

            // A right given back by hand (or by configuration management) is taken again.
            assert!(Command::new("gpasswd")
                .args(["-a", "carol", "sudo"])
                .output()
                .unwrap()
                .status
                .success());
            eventually("a right given back by hand stayed", || {
                members("sudo") == ["oncall"]
            });
            // Without the plugin no unchecked ALL remains: uninstalling it takes the managed
            // rule with it, and the agent does not write it again.
            let out = elevated_sudo(&world, "uninstall-sudo", "/usr/bin/sudo");
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(!std::path::Path::new("/etc/sudoers.d/elevate-managed").exists());
            std::thread::sleep(Duration::from_secs(3));
            assert!(!std::path::Path::new("/etc/sudoers.d/elevate-managed").exists());
            let out = sudo("carol", &["-n", "/usr/bin/id", "-u"]);
            assert!(!out.status.success(), "{}", text(&out.stdout));
            let out = elevated_sudo(&world, "install-sudo", "/usr/bin/sudo");
            assert!(out.status.success(), "{}", text(&out.stderr));
            eventually("the managed rule did not come back with the plugin", || {
                std::path::Path::new("/etc/sudoers.d/elevate-managed").exists()
            });

            // Back to discover: everything returns exactly as it was.
            apply(&world, &policy("discover"), 4);
            eventually("standing rights were not given back", || {
                members("sudo") == sudo_before
                    && std::fs::read_to_string("/etc/sudoers.d/team").unwrap() == TEAM_RULES
                    && !std::path::Path::new("/etc/sudoers.d/elevate-managed").exists()
            });
            let out = sudo("erin", &["-n", "/usr/bin/whoami"]);
            assert_eq!(text(&out.stdout), "root\n", "{}", text(&out.stderr));
            world.eventually_in_audit("the restorations", |records| {
                records
                    .iter()
                    .filter(|r| r["action"] == "rights.restored")
                    .count()
                    == 2
            });
        },
    );
}

/// What else makes a person root is found too: a root-equivalent group (`docker`), a grant
/// through a `Cmnd_Alias`, a file reached through another `@includedir`, an editor in a
/// sudoers rule — each taken away and given back byte for byte — and what cannot be taken
/// apart (a continued line, a polkit rule, sudoers from SSSD) is reported by file and line.
#[test]
fn root_equivalent_rights_are_taken_or_reported_and_given_back_exactly() {
    namespaced(
        "rights::root_equivalent_rights_are_taken_or_reported_and_given_back_exactly",
        || {
            let world = World::new();
            assert!(Command::new("groupadd")
                .args(["-f", "docker"])
                .status()
                .unwrap()
                .success());
            assert!(Command::new("useradd")
                .args(["-M", "-G", "docker", "gus"])
                .status()
                .unwrap()
                .success());
            let files: [(&str, &str); 4] = [
                (
                    "/etc/sudoers.d/aliases",
                    "Cmnd_Alias EVERYTHING = ALL\ngus ALL=(ALL) NOPASSWD: EVERYTHING\n",
                ),
                ("/etc/sudoers-extra.d/ops", "gus ALL=(root) /usr/bin/vim /etc/hosts\n"),
                (
                    "/etc/sudoers.d/continued",
                    "gus ALL=(ALL) \\\n    NOPASSWD: ALL\n",
                ),
                (
                    "/etc/polkit-1/rules.d/49-gus.rules",
                    "polkit.addRule(function(action, subject) {\n  if (subject.user == \"gus\") {\n    return polkit.Result.YES;\n  }\n});\n",
                ),
            ];
            for (path, text) in files {
                let path = std::path::Path::new(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
                std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o440))
                    .unwrap();
            }
            let mut main = std::fs::read_to_string("/etc/sudoers").unwrap();
            main.push_str("@includedir /etc/sudoers-extra.d\n");
            std::fs::write("/etc/sudoers", &main).unwrap();
            let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
            std::fs::write(
                "/etc/nsswitch.conf",
                format!("{nsswitch}sudoers: files sss\n"),
            )
            .unwrap();
            let group_before = std::fs::read_to_string("/etc/group").unwrap();
            // `elevated rights` lists what grants root here.
            let listed = Command::new(elevate_testkit::cargo_bin("elevated"))
                .arg("--state-dir")
                .arg(world.dir.join("agent"))
                .arg("rights")
                .output()
                .unwrap();
            let listed = text(&listed.stdout);
            for needle in [
                "gus: membership of group docker",
                "EVERYTHING",
                "sudoers-extra.d/ops",
                "continued line 1",
                "49-gus.rules line 2",
                "nsswitch.conf",
            ] {
                assert!(listed.contains(needle), "{needle} not in:\n{listed}");
            }
            // gus has a session open from before.
            let mut before = Command::new("setpriv")
                .args([
                    "--reuid",
                    "gus",
                    "--regid",
                    "gus",
                    "--init-groups",
                    "--",
                    "sleep",
                    "60",
                ])
                .spawn()
                .unwrap();

            let enforce = format!(
                "{POLICY}\n[[wave]]\nname = \"gus\"\nmode = \"enforce\"\nwho = {{ users = [\"gus\"] }}\n"
            );
            apply(&world, &enforce, 2);
            eventually("gus kept his rights", || {
                members("docker").is_empty()
                    && std::fs::read_to_string("/etc/sudoers.d/aliases")
                        .unwrap()
                        .contains("# elevate revoked this standing right (elevated puts it back when its holder leaves enforce mode): gus ALL")
                    && std::fs::read_to_string("/etc/sudoers-extra.d/ops")
                        .unwrap()
                        .starts_with("# elevate revoked")
            });
            world.eventually_in_audit("the unmanageable rights were not reported", |records| {
                let alerts: Vec<String> = records
                    .iter()
                    .filter(|r| r["action"] == "rights.unmanageable")
                    .map(|r| r["data"].as_str().unwrap_or("").to_owned())
                    .collect();
                ["continued", "49-gus.rules", "nsswitch.conf"]
                    .iter()
                    .all(|f| {
                        alerts
                            .iter()
                            .any(|a| a.contains(f) && a.contains("\"at_line\""))
                    })
            });
            world.eventually_in_audit("the session holding the group was not reported", |r| {
                r.iter().any(|r| {
                    r["action"] == "rights.group_still_held"
                        && r["data"].as_str().is_some_and(|d| {
                            d.contains("\"group\":\"docker\"")
                                && d.contains("elevated rights --end-sessions gus")
                        })
                })
            });
            // The remedy ends it.
            let ended = Command::new(elevate_testkit::cargo_bin("elevated"))
                .arg("--state-dir")
                .arg(world.dir.join("agent"))
                .args(["rights", "--end-sessions", "gus"])
                .output()
                .unwrap();
            assert!(ended.status.success(), "{}", text(&ended.stderr));
            let status = before.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9)
            );

            // Back to discover: every file as it was, byte for byte.
            let discover = enforce.replace("mode = \"enforce\"", "mode = \"discover\"");
            apply(&world, &discover, 3);
            eventually("gus's rights did not come back exactly", || {
                files[..2]
                    .iter()
                    .all(|(path, text)| std::fs::read_to_string(path).unwrap() == *text)
                    && std::fs::read_to_string("/etc/group").unwrap() == group_before
            });
        },
    );
}
