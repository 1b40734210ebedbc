//! Attacks that must fail, each a test.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::world::{on_thread_as, text, uid_of};
use crate::{namespaced, World};

#[test]
fn the_callers_environment_does_not_reach_the_command() {
    namespaced(
        "attacks::the_callers_environment_does_not_reach_the_command",
        || {
            let world = World::new();
            let hostile = [
                ("LD_PRELOAD", "/tmp/evil.so"),
                ("LD_LIBRARY_PATH", "/tmp/evil"),
                ("PATH", "/tmp/evil:/usr/bin:/bin"),
                ("IFS", "/"),
                ("BASH_ENV", "/tmp/evil.sh"),
                ("ENV", "/tmp/evil.sh"),
            ];
            let out = world.elevate_as("alice", &["/usr/bin/env"], &hostile);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let env = text(&out.stdout);
            for (name, _) in hostile {
                let leaked = env
                    .lines()
                    .filter(|l| l.starts_with(&format!("{name}=")))
                    .any(|l| name != "PATH" || !l.ends_with(":/sbin:/bin") || l.contains("evil"));
                assert!(
                    !leaked,
                    "{name} from the caller reached the command:\n{env}"
                );
            }
            assert!(
                env.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
                "{env}"
            );
            assert!(env.contains("ELEVATE_REQUESTER=alice\n"), "{env}");
            assert!(env.contains("HOME=/root\n"));
        },
    );
}

#[test]
fn binaries_others_can_change_are_refused() {
    namespaced("attacks::binaries_others_can_change_are_refused", || {
        let world = World::new();
        let writable = world.program("auto", "group-writable", "#!/bin/sh\necho ran\n", 0o775);
        let out = world.elevate_as("alice", &[writable.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("writable by its group or by others"),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        let owned = world.program("auto", "alices", "#!/bin/sh\necho ran\n", 0o755);
        let alice = nix::unistd::User::from_name("alice").unwrap().unwrap();
        std::os::unix::fs::chown(&owned, Some(alice.uid.as_raw()), None).unwrap();
        let out = world.elevate_as("alice", &[owned.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("not root"),
            "{}",
            text(&out.stderr)
        );
        // A relative path is refused rather than resolved against the caller's directory.
        let out = world.elevate_as("alice", &["./id"], &[]);
        assert!(
            text(&out.stderr).contains("relative path"),
            "{}",
            text(&out.stderr)
        );
    });
}

#[test]
fn a_binary_swapped_after_the_decision_does_not_run() {
    namespaced(
        "attacks::a_binary_swapped_after_the_decision_does_not_run",
        || {
            let world = World::new();
            let path = world.program("approve", "tool", "#!/bin/sh\necho original\n", 0o755);
            let child = world
                .command_as("bob", &[path.to_str().unwrap()], &[])
                .spawn()
                .unwrap();
            let id = world.pending_request();
            // While the approver looks, the file at that path is replaced (rename over it) ...
            let swapped = path.with_extension("new");
            std::fs::write(&swapped, "#!/bin/sh\necho swapped\n").unwrap();
            std::fs::set_permissions(&swapped, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&swapped, &path).unwrap();
            world.approve(&id, serde_json::json!({}));
            let out = child.wait_with_output().unwrap();
            // ... and what runs is what was hashed and approved.
            assert_eq!(
                text(&out.stdout),
                "original\n",
                "stderr: {}",
                text(&out.stderr)
            );
            // A symlink swap is the same: the agent holds the file it opened.
            let target = world.program("approve", "real", "#!/bin/sh\necho real\n", 0o755);
            let link = std::path::Path::new("/opt/e2e/approve/link");
            std::os::unix::fs::symlink(&target, link).unwrap();
            let child = world
                .command_as("bob", &[link.to_str().unwrap()], &[])
                .spawn()
                .unwrap();
            let id = world.pending_request();
            let shown = world.request(&id);
            assert_eq!(
                shown["target"]["path"], "/opt/e2e/approve/real",
                "approvers see the real file"
            );
            std::fs::remove_file(link).unwrap();
            std::os::unix::fs::symlink("/usr/bin/dash", link).unwrap();
            world.approve(&id, serde_json::json!({}));
            let out = child.wait_with_output().unwrap();
            assert_eq!(text(&out.stdout), "real\n", "stderr: {}", text(&out.stderr));
        },
    );
}

fn raw_exchange(world: &World, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(&world.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    text(&answer)
}

#[test]
fn forged_malformed_truncated_and_oversized_frames_are_refused_and_the_agent_keeps_serving() {
    namespaced("attacks::forged_malformed_truncated_and_oversized_frames_are_refused_and_the_agent_keeps_serving", || {
        let world = World::new();
        let forged = br#"{"type":"run","version":1,"argv":["/usr/bin/id"],"cwd":"/","reason":null,"interactive":false,"uid":0}"#;
        let mut frame = (forged.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(forged);
        let answer = raw_exchange(&world, &frame);
        assert!(answer.contains("bad_frame") && answer.contains("uid"), "{answer}");
        let answer = raw_exchange(&world, b"\x00\x00\x00\x05garbage");
        assert!(answer.contains("bad_frame"), "{answer}");
        let answer = raw_exchange(&world, &frame[..20]);
        assert!(answer.contains("bad_frame") && answer.contains("middle of a frame"), "{answer}");
        let answer = raw_exchange(&world, &[0x7f, 0xff, 0xff, 0xff]);
        assert!(answer.contains("bad_frame") && answer.contains("larger than"), "{answer}");
        // A run frame without stdin/stdout/stderr attached.
        let ok = br#"{"type":"run","version":1,"argv":["/usr/bin/id"],"cwd":"/","reason":null,"interactive":false}"#;
        let mut frame = (ok.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(ok);
        let answer = raw_exchange(&world, &frame);
        assert!(answer.contains("stdin, stdout and stderr"), "{answer}");
        // Still serving.
        let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
        assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
    });
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The pid a test program wrote to `pidfile` once it started.
fn started_pid(pidfile: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(p) = std::fs::read_to_string(pidfile) {
            if let Ok(p) = p.trim().parse() {
                return p;
            }
        }
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `pid` has ended, failing with `why` after `limit`.
fn ends_within(pid: i32, limit: Duration, why: &str) {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        assert!(Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn killing_the_client_stops_the_root_command() {
    namespaced("attacks::killing_the_client_stops_the_root_command", || {
        let world = World::new();
        let pidfile = "/opt/e2e/sleeper.pid";
        let sleeper = world.program(
            "auto",
            "sleeper",
            &format!("#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n"),
            0o755,
        );
        let mut client = world
            .command_as("alice", &[sleeper.to_str().unwrap()], &[])
            .spawn()
            .unwrap();
        let pid = started_pid(pidfile);
        assert!(alive(pid));
        // The command is in its own session: not in the caller's terminal session.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
        assert_eq!(
            fields[3],
            pid.to_string(),
            "the command leads its own session"
        );
        client.kill().unwrap();
        let _ = client.wait();
        ends_within(
            pid,
            Duration::from_secs(15),
            "the root command outlived its caller",
        );
    });
}

#[test]
fn a_continue_rule_lets_the_command_outlive_its_client_until_session_max() {
    namespaced(
        "attacks::a_continue_rule_lets_the_command_outlive_its_client_until_session_max",
        || {
            let world = World::new();
            let pidfile = "/opt/e2e/detached.pid";
            let job = world.program(
                "detach",
                "job",
                &format!("#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n"),
                0o755,
            );
            let mut client = world
                .command_as("alice", &[job.to_str().unwrap()], &[])
                .spawn()
                .unwrap();
            let pid = started_pid(pidfile);
            client.kill().unwrap();
            let _ = client.wait();
            // The default would have sent TERM at once, and `sleep` dies of it.
            std::thread::sleep(Duration::from_millis(1500));
            assert!(alive(pid), "on_disconnect = \"continue\" was not honoured");
            // ... but not for ever: the rule's session_max (6 s) ends it.
            ends_within(
                pid,
                Duration::from_secs(20),
                "a detached command outlived its session_max",
            );
            world.eventually_in_audit("the detach was not audited", |records| {
                records.iter().any(|r| r["action"] == "request.detached")
            });
        },
    );
}

#[test]
fn a_detached_interactive_command_keeps_a_drained_terminal() {
    namespaced(
        "attacks::a_detached_interactive_command_keeps_a_drained_terminal",
        || {
            let world = World::new();
            let pidfile = "/opt/e2e/ticker.pid";
            let donefile = "/opt/e2e/ticker.done";
            // Two megabytes of output after its client is gone: more than a pty buffers, so the
            // command finishes only if the agent reads (and drops) what it writes, and its
            // terminal must not hang up on it when the client dies.
            let job = world.program(
                "detach",
                "ticker",
                &format!(
                    "#!/bin/sh\necho $$ > {pidfile}\nsleep 1\nhead -c 2000000 /dev/zero\n\
                     echo done > {donefile}\nexec sleep 60\n"
                ),
                0o755,
            );
            let shell = format!("exec {} {}", world.elevate.display(), job.display());
            let mut script = world
                .in_terminal_as("alice", &shell)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let pid = started_pid(pidfile);
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", script.id()))
                    .unwrap();
            let client: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(client).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
            script.kill().unwrap();
            let _ = script.wait();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !std::path::Path::new(donefile).exists() {
                assert!(
                    alive(pid),
                    "the detached command died with its client's terminal"
                );
                assert!(
                    Instant::now() < deadline,
                    "the detached command's output was not drained"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            ends_within(
                pid,
                Duration::from_secs(20),
                "a detached command outlived its session_max",
            );
        },
    );
}

#[test]
fn a_stopped_agent_means_nothing_runs() {
    namespaced("attacks::a_stopped_agent_means_nothing_runs", || {
        let mut world = World::new();
        world.stop_agent();
        let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("agent is not reachable"),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        // The socket file left behind changes nothing; a restarted agent serves again.
        world.start_agent();
        let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
        assert_eq!(text(&out.stdout), "0\n");
    });
}

#[test]
fn without_the_server_an_approval_fails_closed_but_auto_rules_still_work() {
    namespaced(
        "attacks::without_the_server_an_approval_fails_closed_but_auto_rules_still_work",
        || {
            let mut world = World::new();
            let server = world.server.take().unwrap();
            world.runtime.block_on(server.stop());
            let prog = world.program("approve", "needs-approval", "#!/bin/sh\necho ran\n", 0o755);
            let out = world.elevate_as("bob", &[prog.to_str().unwrap()], &[]);
            assert_eq!(out.status.code(), Some(1));
            assert!(
                text(&out.stderr).contains("cannot be reached")
                    && text(&out.stderr).contains("nothing ran"),
                "{}",
                text(&out.stderr)
            );
            assert!(out.stdout.is_empty());
            // The cached, signed policy still allows the pre-approved command.
            let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
        },
    );
}

#[test]
fn a_users_own_mount_namespace_cannot_rename_a_binary() {
    namespaced(
        "attacks::a_users_own_mount_namespace_cannot_rename_a_binary",
        || {
            let world = World::new();
            // alice mounts /usr/bin/env over /usr/bin/id in a namespace of her own ...
            let mut holder = std::process::Command::new("setpriv")
                .args([
                    "--reuid",
                    "alice",
                    "--regid",
                    "alice",
                    "--init-groups",
                    "--",
                ])
                .args([
                    "unshare",
                    "-Urm",
                    "sh",
                    "-c",
                    "mount --bind /usr/bin/env /usr/bin/id && echo ready && exec sleep 60",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            {
                use std::io::BufRead;
                let stdout = holder.stdout.as_mut().unwrap();
                let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            }
            if line.trim() != "ready" {
                let _ = holder.kill();
                let _ = holder.wait();
                eprintln!("SKIPPED: unprivileged user namespaces are off here, so this attack cannot even start");
                return;
            }
            // ... and asks for "/usr/bin/id" through her namespace's root: refused, nothing runs.
            let through = format!("/proc/{}/root/usr/bin/id", holder.id());
            let out = world.elevate_as("alice", &[&through], &[]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
            assert!(
                out.stdout.is_empty(),
                "env must not have run: {}",
                text(&out.stdout)
            );
            let _ = holder.kill();
            let _ = holder.wait();
        },
    );
}

/// Sends a run frame with its three descriptors, as a (possibly forged) client would, and
/// returns the agent's whole answer.
fn run_frame_with(
    world: &World,
    frame: serde_json::Value,
    fds: [std::os::fd::BorrowedFd<'_>; 3],
) -> String {
    crate::world::send_run_frame(&world.socket, &frame, fds)
}

#[test]
fn a_claimed_working_directory_that_is_not_the_callers_is_refused() {
    namespaced(
        "attacks::a_claimed_working_directory_that_is_not_the_callers_is_refused",
        || {
            use std::os::fd::AsFd;
            let world = World::new();
            let here = world.program("here", "where", "#!/bin/sh\npwd\n", 0o755);
            // The client says it is in /root; the kernel says otherwise.
            let frame = serde_json::json!({ "type": "run", "version": 1,
                "argv": [here.to_str().unwrap()], "cwd": "/root", "reason": null, "interactive": false });
            let out_path = world.dir.join("claimed-cwd.out");
            let out_w = std::fs::File::create(&out_path).unwrap();
            let stdin = std::fs::File::open("/dev/null").unwrap();
            let answer =
                run_frame_with(&world, frame, [stdin.as_fd(), out_w.as_fd(), out_w.as_fd()]);
            assert!(
                answer.contains("working directory could not be confirmed"),
                "{answer}"
            );
            let ran = std::fs::read_to_string(&out_path).unwrap();
            assert!(ran.is_empty(), "the command ran: {ran}");
        },
    );
}

#[test]
fn a_terminal_is_never_handed_to_a_root_command() {
    namespaced(
        "attacks::a_terminal_is_never_handed_to_a_root_command",
        || {
            use std::os::fd::AsFd;
            let world = World::new();
            // A forged client passes a terminal as stdin but says the request is not
            // interactive: the root command would read the user's own terminal.
            let master = rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR).unwrap();
            rustix::pty::grantpt(&master).unwrap();
            rustix::pty::unlockpt(&master).unwrap();
            let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
            let slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(name.to_str().unwrap())
                .unwrap();
            let out_path = world.dir.join("terminal.out");
            let out_w = std::fs::File::create(&out_path).unwrap();
            let frame = serde_json::json!({ "type": "run", "version": 1,
                "argv": ["/usr/bin/id", "-u"], "cwd": "/", "reason": null, "interactive": false });
            let answer =
                run_frame_with(&world, frame, [slave.as_fd(), out_w.as_fd(), out_w.as_fd()]);
            assert!(answer.contains("a terminal came with"), "{answer}");
            let ran = std::fs::read_to_string(&out_path).unwrap();
            assert!(ran.is_empty(), "the command ran: {ran}");
            // The same with the terminal as stdout (programs such as less read keys from it).
            let stdin = std::fs::File::open("/dev/null").unwrap();
            let frame = serde_json::json!({ "type": "run", "version": 1,
                "argv": ["/usr/bin/id", "-u"], "cwd": "/", "reason": null, "interactive": false });
            let answer =
                run_frame_with(&world, frame, [stdin.as_fd(), slave.as_fd(), out_w.as_fd()]);
            assert!(answer.contains("a terminal came with"), "{answer}");
            // And as an O_PATH handle, which is no terminal to isatty but reopens as one
            // through /proc/self/fd.
            let handle = rustix::fs::open(
                name.as_c_str(),
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            let frame = serde_json::json!({ "type": "run", "version": 1,
                "argv": ["/usr/bin/id", "-u"], "cwd": "/", "reason": null, "interactive": false });
            let answer = run_frame_with(
                &world,
                frame,
                [handle.as_fd(), out_w.as_fd(), out_w.as_fd()],
            );
            assert!(answer.contains("a terminal came with"), "{answer}");
            let ran = std::fs::read_to_string(&out_path).unwrap();
            assert!(ran.is_empty(), "the command ran: {ran}");
        },
    );
}

#[test]
fn one_user_cannot_take_every_session() {
    namespaced("attacks::one_user_cannot_take_every_session", || {
        let world = World::new();
        let alice = nix::unistd::User::from_name("alice")
            .unwrap()
            .unwrap()
            .uid
            .as_raw();
        let socket = world.socket.clone();
        // One thread becomes alice (credentials are per thread in the kernel) and opens idle
        // connections until the agent refuses her.
        let (held, answer) = std::thread::spawn(move || {
            let uid = rustix::process::Uid::from_raw(alice);
            rustix::thread::set_thread_res_uid(uid, uid, uid).unwrap();
            let held: Vec<UnixStream> = (0..32)
                .map(|_| UnixStream::connect(&socket).unwrap())
                .collect();
            let mut extra = UnixStream::connect(&socket).unwrap();
            extra
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut answer = Vec::new();
            let _ = extra.read_to_end(&mut answer);
            (held, text(&answer))
        })
        .join()
        .unwrap();
        assert!(
            answer.contains("busy") && answer.contains("32 elevate sessions open"),
            "{answer}"
        );
        // What alice sees when she tries once more.
        let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
        assert_ne!(out.status.code(), Some(0));
        assert!(
            text(&out.stderr).contains("32 elevate sessions open"),
            "{}",
            text(&out.stderr)
        );
        // Everyone else is still served while alice holds hers.
        let out = world.elevate_as("bob", &["status"], &[]);
        assert!(
            text(&out.stdout).contains("policy:  version"),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
            if text(&out.stdout) == "0\n" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "alice was not served again after closing her sessions: {}",
                text(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

#[test]
fn a_connection_that_trickles_or_says_nothing_is_closed_within_seconds() {
    namespaced(
        "attacks::a_connection_that_trickles_or_says_nothing_is_closed_within_seconds",
        || {
            let world = World::new();
            let socket = world.socket.clone();
            // One connection says nothing; another sends its frame a byte a second.
            let (silent, trickled) = on_thread_as(uid_of("alice"), move || {
                let silent = UnixStream::connect(&socket).unwrap();
                let mut trickle = UnixStream::connect(&socket).unwrap();
                let started = Instant::now();
                let frame = br#"{"type":"status"}"#;
                let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
                bytes.extend_from_slice(frame);
                for b in &bytes {
                    if trickle.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                let closed_after = started.elapsed();
                let mut s = silent;
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut said = Vec::new();
                let _ = s.read_to_end(&mut said);
                (text(&said), closed_after)
            });
            assert!(silent.contains("no request arrived in time"), "{silent}");
            // The frame takes 21 s to trickle in; the agent gives a whole frame 5 s from its
            // first byte (it gave 10 s before), and the next write fails once it has closed.
            assert!(
                trickled < Duration::from_secs(9),
                "the agent waited for the whole trickle ({trickled:?})"
            );
        },
    );
}

#[test]
fn programs_on_user_mountable_filesystems_are_refused() {
    namespaced(
        "attacks::programs_on_user_mountable_filesystems_are_refused",
        || {
            let world = World::new();
            // What udisks or fusermount give a user: a nosuid mount whose files claim any owner.
            let media = std::path::Path::new("/opt/e2e/media");
            std::fs::create_dir_all(media).unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "nosuid", "tmpfs"])
                .arg(media)
                .status()
                .unwrap();
            assert!(status.success());
            let prog = media.join("tool");
            std::fs::write(&prog, "#!/bin/sh\necho ran\n").unwrap();
            std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = world.elevate_as("alice", &[prog.to_str().unwrap()], &[]);
            assert!(out.stdout.is_empty(), "ran: {}", text(&out.stdout));
            assert!(
                text(&out.stderr).contains("filesystem its user may control"),
                "{}",
                text(&out.stderr)
            );
        },
    );
}

#[test]
fn a_root_command_gets_stdio_and_no_other_descriptor() {
    namespaced(
        "attacks::a_root_command_gets_stdio_and_no_other_descriptor",
        || {
            let mut world = World::new();
            // Whoever starts the agent may leave it a descriptor open across exec (here 7, on
            // a file only root may read).
            world.stop_agent();
            let secret = world.dir.join("inherited-secret");
            std::fs::write(&secret, "root only\n").unwrap();
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
            let agent = world.agent_command();
            let mut leaky = std::process::Command::new("sh");
            leaky
                .args(["-c", "exec 7<\"$ELEVATE_E2E_SECRET\"; exec \"$0\" \"$@\""])
                .arg(agent.get_program())
                .args(agent.get_args())
                .env("ELEVATE_E2E_SECRET", &secret)
                .env("ELEVATE_LOG", "warn")
                .stdout(std::process::Stdio::null());
            world.agent = Some(leaky.spawn().unwrap());
            world.wait_for_agent();
            // A real program (not a script, whose interpreter keeps a descriptor to read it)
            // lists its own descriptors.
            let ls = std::path::Path::new("/opt/e2e/auto/ls");
            std::fs::create_dir_all("/opt/e2e/auto").unwrap();
            std::fs::copy("/usr/bin/ls", ls).unwrap();
            let out = world.elevate_as(
                "alice",
                &[ls.to_str().unwrap(), "-l", "/proc/self/fd/"],
                &[],
            );
            let listed = text(&out.stdout);
            assert!(out.status.success(), "{listed}{}", text(&out.stderr));
            assert!(
                !listed.contains("inherited-secret"),
                "the command inherited the agent's descriptor:\n{listed}"
            );
            // stdio, and the folder ls itself opened to list.
            let mut seen = vec![];
            for line in listed.lines().filter(|l| l.contains(" -> ")) {
                let (left, target) = line.split_once(" -> ").unwrap();
                let fd: u32 = left.rsplit(' ').next().unwrap().parse().unwrap();
                assert!(
                    fd <= 2 || target.starts_with("/proc/"),
                    "an unexpected descriptor: {line}\n{listed}"
                );
                seen.push(fd);
            }
            assert!(seen.starts_with(&[0, 1, 2]), "{listed}");
        },
    );
}

#[test]
fn a_program_is_decided_and_run_by_the_name_it_is_invoked_by() {
    namespaced(
        "attacks::a_program_is_decided_and_run_by_the_name_it_is_invoked_by",
        || {
            let world = World::new();
            // Links to /usr/bin/id under other names, as /usr/sbin/reboot is to systemctl.
            for folder in ["/opt/e2e/auto", "/opt/e2e/links"] {
                std::fs::create_dir_all(folder).unwrap();
            }
            std::os::unix::fs::symlink("/usr/bin/id", "/opt/e2e/auto/my-id").unwrap();
            std::os::unix::fs::symlink("/usr/bin/id", "/opt/e2e/links/other-name").unwrap();
            // A rule names the link (/opt/e2e/auto/*): the program runs, and sees that name as
            // argv[0] (coreutils print it in their errors).
            let out = world.elevate_as("alice", &["/opt/e2e/auto/my-id", "--bogus"], &[]);
            assert!(
                text(&out.stderr).contains("/opt/e2e/auto/my-id: unrecognized option"),
                "{}",
                text(&out.stderr)
            );
            world.eventually_in_audit("the request was not recorded", |records| {
                records.iter().any(|r| {
                    r["action"] == "request.created"
                        && r["data"].as_str().is_some_and(|d| d.contains("my-id"))
                })
            });
            let records = world.audit();
            let created = records
                .iter()
                .filter(|r| r["action"] == "request.created")
                .map(|r| r["data"].as_str().unwrap_or("").to_owned())
                .find(|d| d.contains("my-id"))
                .expect("the request was recorded");
            let created: serde_json::Value = serde_json::from_str(&created).unwrap();
            assert_eq!(created["target"]["path"], "/usr/bin/id");
            assert_eq!(created["target"]["invoked"], "/opt/e2e/auto/my-id");
            // The rule for /usr/bin/id does not hold for the file invoked by another name: that
            // goes to approvers, who see the name.
            let child = world
                .command_as("alice", &["/opt/e2e/links/other-name", "-u"], &[])
                .spawn()
                .unwrap();
            let id = world.pending_request();
            let request = world.request(&id);
            assert_eq!(request["target"]["path"], "/usr/bin/id");
            assert_eq!(request["target"]["invoked"], "/opt/e2e/links/other-name");
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            // Invoked by its own name (a link of the same name elsewhere), the rule holds.
            std::os::unix::fs::symlink("/usr/bin/id", "/opt/e2e/links/id").unwrap();
            let out = world.elevate_as("alice", &["/opt/e2e/links/id", "-u"], &[]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
        },
    );
}

/// A plain-http server beyond this machine would carry the device's credential and its
/// offline-code secret in clear: enrolment refuses it before the token is read or anything is
/// sent, `--insecure-http` lets an administrator choose it anyway, and an enrolment file pointed
/// at one by hand is refused when the agent starts.
#[test]
fn plain_http_beyond_this_machine_is_refused_unless_an_admin_allows_it() {
    namespaced(
        "attacks::plain_http_beyond_this_machine_is_refused_unless_an_admin_allows_it",
        || {
            let world = World::new();
            let elevated = elevate_testkit::cargo_bin("elevated");
            let state = world.dir.join("second-agent");
            let enrol = |extra: &[&str]| {
                std::process::Command::new(&elevated)
                    .arg("--state-dir")
                    .arg(&state)
                    .args(["enrol", "--server", "http://0.0.0.0:1", "--token", "-"])
                    .args(["--name", "second"])
                    .args(extra)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .unwrap()
            };
            let refused = enrol(&[]);
            assert!(!refused.status.success());
            assert!(
                text(&refused.stderr).contains("is plain http")
                    && text(&refused.stderr).contains("--insecure-http"),
                "{}",
                text(&refused.stderr)
            );
            let tried = enrol(&["--insecure-http"]);
            assert!(!tried.status.success());
            assert!(
                text(&tried.stderr).contains("cannot reach the Elevate server at http://0.0.0.0:1"),
                "{}",
                text(&tried.stderr)
            );
            assert!(!state.join("enrolment.json").exists());

            // The enrolment the world made (loopback http), pointed elsewhere by hand.
            let mut enrolment: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(world.dir.join("agent/enrolment.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(enrolment["insecure_http"], false);
            enrolment["server"] = "http://192.0.2.1:8080".into();
            std::fs::create_dir_all(&state).unwrap();
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
            let file = state.join("enrolment.json");
            std::fs::write(&file, enrolment.to_string()).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            let started = std::process::Command::new(&elevated)
                .arg("--state-dir")
                .arg(&state)
                .args(["run", "--linux-audit", "off", "--socket"])
                .arg(state.join("agent.sock"))
                .output()
                .unwrap();
            assert!(!started.status.success());
            assert!(
                text(&started.stderr).contains("http://192.0.2.1:8080 is plain http"),
                "{}",
                text(&started.stderr)
            );
        },
    );
}

/// A device an admin revoked asks for approvals in vain, and is told why; its offline codes
/// cannot stand in (the server answers, refusing), and what it recorded stays in its spool.
#[test]
fn a_revoked_device_gets_no_approval_and_says_why() {
    namespaced(
        "attacks::a_revoked_device_gets_no_approval_and_says_why",
        || {
            let world = World::new();
            let revoked = world
                .api(world.server().post(
                    Some(&world.admin),
                    "/v1/devices/e2e-host/revoke",
                    &serde_json::json!({ "reason": "laptop stolen" }),
                ))
                .expect(200);
            assert!(revoked.body["revoked_at"].is_string(), "{}", revoked.text);
            let prog = world.program("approve", "needs-approval", "#!/bin/sh\necho ran\n", 0o755);
            let out = world.elevate_as("bob", &[prog.to_str().unwrap()], &[]);
            assert_eq!(out.status.code(), Some(1));
            assert!(
                text(&out.stderr).contains("revoked") && !text(&out.stderr).contains("Challenge"),
                "{}",
                text(&out.stderr)
            );
            assert!(out.stdout.is_empty());
        },
    );
}

/// Whoever sits between the agent and the server (a TLS-terminating proxy, or someone with the
/// device's credential) can turn a pending request into an "approved" one, or give an approval
/// for one command to another; only the server's signature over exactly this request approves,
/// so nothing runs.
#[test]
fn an_approval_the_server_did_not_sign_runs_nothing() {
    namespaced(
        "attacks::an_approval_the_server_did_not_sign_runs_nothing",
        || {
            let mut world = World::new();
            let prog = world.program("approve", "needs-approval", "#!/bin/sh\necho ran\n", 0o755);
            let upstream = world.server().url.clone();
            // Every pending answer becomes an approval.
            let forge: elevate_testkit::Rewrite = std::sync::Arc::new(|method, path, json| {
                if method == "POST" && path == "/v1/requests" && json["state"] == "pending" {
                    json["state"] = "approved".into();
                }
            });
            let proxy = world
                .runtime
                .block_on(elevate_testkit::Interceptor::start(&upstream, forge));
            world.stop_agent();
            let file = world.dir.join("agent/enrolment.json");
            let mut enrolment: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            enrolment["server"] = proxy.url.clone().into();
            std::fs::write(&file, enrolment.to_string()).unwrap();
            world.start_agent();
            let out = world.elevate_as("bob", &[prog.to_str().unwrap()], &[]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("carries no grant signed by the server")
                    && text(&out.stderr).contains("nothing ran"),
                "{}",
                text(&out.stderr)
            );
            assert!(out.stdout.is_empty());

            // A real, signed approval of another request, handed over for this one.
            world.stop_agent();
            enrolment["server"] = upstream.clone().into();
            std::fs::write(&file, enrolment.to_string()).unwrap();
            world.start_agent();
            let other = world.program("approve", "other", "#!/bin/sh\necho other\n", 0o755);
            let child = world
                .command_as("bob", &[other.to_str().unwrap()], &[])
                .spawn()
                .unwrap();
            let id = world.pending_request();
            let signed = world.approve(&id, serde_json::json!({}));
            assert!(signed["grant"].is_object(), "{signed}");
            let out = child.wait_with_output().unwrap();
            assert_eq!(text(&out.stdout), "other\n", "{}", text(&out.stderr));
            let grant = std::sync::Arc::new(signed["grant"].clone());
            let replay: elevate_testkit::Rewrite =
                std::sync::Arc::new(move |method, path, json| {
                    if method == "POST" && path == "/v1/requests" && json["state"] == "pending" {
                        json["state"] = "approved".into();
                        json["grant"] = (*grant).clone();
                    }
                });
            let proxy2 = world
                .runtime
                .block_on(elevate_testkit::Interceptor::start(&upstream, replay));
            world.stop_agent();
            enrolment["server"] = proxy2.url.clone().into();
            std::fs::write(&file, enrolment.to_string()).unwrap();
            world.start_agent();
            let out = world.elevate_as("bob", &[prog.to_str().unwrap()], &[]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("grant is for something else (another request)"),
                "{}",
                text(&out.stderr)
            );
            assert!(out.stdout.is_empty());
            drop((proxy, proxy2));
        },
    );
}

/// A server with a certificate from the organisation's own CA: enrolment without that CA is
/// refused (and says to give it), with `--ca-file` it enrols, and the agent fetches its policy
/// over https with it.
#[test]
fn a_server_with_its_own_ca_is_reached_over_https_given_the_ca() {
    namespaced(
        "attacks::a_server_with_its_own_ca_is_reached_over_https_given_the_ca",
        || {
            let world = World::new();
            let (cert, key, ca) = elevate_testkit::tls_certificate();
            let server = world.runtime.block_on(elevate_testkit::spawn_with(
                elevate_testkit::Db::Sqlite,
                jiff::Timestamp::now(),
                |s| s.tls = Some(elevate_server::app::TlsFiles { cert, key }),
            ));
            assert!(server.url.starts_with("https://"), "{}", server.url);
            // The admin's side, through a client that trusts the CA.
            let token = world.runtime.block_on(async {
                server
                    .app
                    .upsert_account(
                        "admin",
                        elevate_testkit::PASSWORD,
                        &[elevate_server::app::Role::Admin],
                        &[],
                    )
                    .await
                    .unwrap();
                let http = reqwest::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                    .build()
                    .unwrap();
                let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
                    let mut r = http.post(format!("{}{path}", server.url)).json(&body);
                    if let Some(t) = token {
                        r = r.bearer_auth(t);
                    }
                    let path = path.to_owned();
                    async move {
                        let answer = r.send().await.unwrap();
                        assert!(answer.status().is_success(), "{path}: {}", answer.status());
                        answer.json::<serde_json::Value>().await.unwrap()
                    }
                };
                let login = post(
                    "/v1/tokens",
                    None,
                    serde_json::json!({ "account": "admin", "password": elevate_testkit::PASSWORD }),
                )
                .await;
                let admin = login["token"].as_str().unwrap().to_owned();
                post(
                    "/v1/policies",
                    Some(&admin),
                    serde_json::json!({ "text": elevate_testkit::TEST_POLICY }),
                )
                .await;
                let created = post("/v1/enrol-tokens", Some(&admin), serde_json::json!({})).await;
                created["token"].as_str().unwrap().to_owned()
            });
            let ca_file = world.dir.join("org-ca.pem");
            std::fs::write(&ca_file, &ca).unwrap();
            let state = world.dir.join("tls-agent");
            let elevated = elevate_testkit::cargo_bin("elevated");
            let enrol = |extra: &[&std::ffi::OsStr]| {
                std::process::Command::new(&elevated)
                    .arg("--state-dir")
                    .arg(&state)
                    .args([
                        "enrol",
                        "--server",
                        &server.url,
                        "--token",
                        &token,
                        "--name",
                        "tls-host",
                    ])
                    .args(extra)
                    .output()
                    .unwrap()
            };
            let untrusted = enrol(&[]);
            assert!(!untrusted.status.success());
            assert!(
                text(&untrusted.stderr).contains("--ca-file"),
                "{}",
                text(&untrusted.stderr)
            );
            let enrolled = enrol(&["--ca-file".as_ref(), ca_file.as_os_str()]);
            assert!(enrolled.status.success(), "{}", text(&enrolled.stderr));

            // The agent reaches it over https with the CA it keeps.
            let socket = state.join("agent.sock");
            let mut agent = std::process::Command::new(&elevated)
                .arg("--state-dir")
                .arg(&state)
                .args([
                    "run",
                    "--linux-audit",
                    "off",
                    "--refresh-secs",
                    "1",
                    "--socket",
                ])
                .arg(&socket)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let status = loop {
                let out = std::process::Command::new(&elevated)
                    .args(["status", "--socket"])
                    .arg(&socket)
                    .output()
                    .unwrap();
                let shown = text(&out.stdout);
                if shown.contains("policy:  version") || Instant::now() > deadline {
                    break shown;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            let _ = agent.kill();
            let _ = agent.wait();
            assert!(status.contains("policy:  version 1"), "{status}");
            assert!(status.contains(&server.url), "{status}");
            world.runtime.block_on(server.stop());
        },
    );
}
