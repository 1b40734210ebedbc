//! What a user puts into the audit trail cannot stop it: every string and list that enters an
//! event is bounded before it is spooled (`elevate_proto::limits`), and one event the server
//! refuses is set aside alone while every other event is delivered.

use std::os::fd::AsFd;
use std::process::Command;
use std::time::Instant;

use crate::sudo::{sudo, sudo_through_elevate};
use crate::world::{on_thread_as, send_run_frame, text, uid_of};
use crate::{namespaced, World};

/// As `uid`, sends `frame` with /dev/null as its three descriptors, like a forged client;
/// returns the agent's answer.
fn run_frame_as(world: &World, uid: u32, frame: serde_json::Value) -> String {
    let socket = world.socket.clone();
    on_thread_as(uid, move || {
        let null = std::fs::File::open("/dev/null").unwrap();
        send_run_frame(&socket, &frame, [null.as_fd(), null.as_fd(), null.as_fd()])
    })
}

/// Bytes of the spool's files (its reserve aside).
fn spool_bytes(world: &World) -> u64 {
    std::fs::read_dir(world.dir.join("agent/spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "reserve")
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

fn data(record: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(record["data"].as_str().unwrap_or("null")).unwrap_or_default()
}

#[test]
fn oversized_input_from_a_user_without_rights_holds_back_nobody_else() {
    namespaced(
        "bounds::oversized_input_from_a_user_without_rights_holds_back_nobody_else",
        || {
            let mut world = World::new();
            let Some(()) = sudo_through_elevate(&world) else {
                return;
            };
            // A small bound: a few unbounded events would pass it at once.
            world.stop_agent();
            world
                .agent_args
                .extend(["--spool-max".to_owned(), "1MiB".to_owned()]);
            world.start_agent();
            // carol has no rights at all: sudoers does not know her.
            assert!(Command::new("useradd")
                .args(["-M", "carol"])
                .status()
                .unwrap()
                .success());
            let carol = uid_of("carol");
            // Through sudo: arguments of 900 KB, which sudo refuses and its audit plugin reports.
            let big: Vec<String> = (0..9)
                .map(|i| format!("{i}{}", "A".repeat(100_000)))
                .collect();
            let mut args = vec!["-n", "/usr/bin/true"];
            args.extend(big.iter().map(String::as_str));
            for _ in 0..3 {
                let out = sudo("carol", &args);
                assert_ne!(out.status.code(), Some(0));
            }
            // Through the socket: a forged client claims a working directory of 800 KB, a
            // reason just within bounds and arguments in the thousands, for a shell (denied,
            // and recorded here).
            for _ in 0..3 {
                let frame = serde_json::json!({ "type": "run", "version": 1,
                    "argv": std::iter::once("/usr/bin/bash".to_owned())
                        .chain((0..20_000).map(|i| format!("-{i}")))
                        .collect::<Vec<_>>(),
                    "cwd": format!("/{}", "d".repeat(800_000)),
                    "reason": "r".repeat(4096), "interactive": false });
                let answer = run_frame_as(&world, carol, frame);
                assert!(answer.contains("root shell"), "{answer}");
            }
            // Meanwhile alice elevates, and the server hears of it within seconds.
            let started = Instant::now();
            let out = world.elevate_as("alice", &["/usr/bin/id", "-u"], &[]);
            assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
            world.eventually_in_audit("alice's elevation never reached the server", |records| {
                records.iter().any(|r| {
                    r["action"] == "request.finished"
                        && r["actor"].as_str().unwrap_or("").starts_with("user:alice@")
                })
            });
            eprintln!(
                "alice's elevation reached the server {:?} after it started",
                started.elapsed()
            );
            // carol's records arrived too, bounded: a prefix, the length and the digest.
            let records = world.audit();
            let refused: Vec<_> = records
                .iter()
                // sudo counts a user it does not know as an error of its own.
                .filter(|r| r["action"] == "sudo.rejected" || r["action"] == "sudo.error")
                .map(data)
                .filter(|d| d["user"] == "carol")
                .collect();
            let actions: Vec<_> = records
                .iter()
                .map(|r| format!("{} {}", r["actor"], r["action"]))
                .collect();
            assert_eq!(refused.len(), 3, "{actions:?}");
            // sudo's arguments, then the nine.
            assert!(refused[0]["argv"]["count"].as_u64().unwrap() >= 10);
            assert_eq!(refused[0]["argv"]["sha256"].as_str().unwrap().len(), 64);
            let asked: Vec<_> = records
                .iter()
                .filter(|r| r["action"] == "request.created")
                .map(data)
                .filter(|d| d["user"] == "carol")
                .collect();
            assert_eq!(asked.len(), 3);
            assert_eq!(asked[0]["cwd"]["bytes"], 800_001);
            assert_eq!(asked[0]["target"]["args_truncated"]["count"], 20_000);
            assert_eq!(asked[0]["reason"].as_str().unwrap().len(), 4096);
            assert!(
                !records.iter().any(|r| r["action"] == "spool.rejected"),
                "the server refused events"
            );
            // The spool stayed within its bound and set nothing aside.
            let bytes = spool_bytes(&world);
            assert!(bytes <= 1024 * 1024, "the spool holds {bytes} bytes");
        },
    );
}

#[test]
fn an_event_the_server_refuses_is_set_aside_alone() {
    namespaced(
        "bounds::an_event_the_server_refuses_is_set_aside_alone",
        || {
            let mut world = World::new();
            world.stop_agent();
            // A batch left in the spool (by an older agent, or a disk that flipped a bit): 300
            // good events with, in the middle, one the server refuses (it names another device).
            let spool = world.dir.join("agent/spool");
            let event = |n: u32, actor: &str| {
                serde_json::json!({ "id": uuid::Uuid::now_v7().to_string(),
                    "at": jiff::Timestamp::now().to_string(), "actor": actor,
                    "action": "test.event", "subject": format!("test:{n}"),
                    "data": { "n": n } })
            };
            let mut lines = String::new();
            let mut bad = String::new();
            for n in 0..300 {
                let e = if n == 150 {
                    let e = event(n, "user:alice@another-host");
                    bad = e["id"].as_str().unwrap().to_owned();
                    e
                } else {
                    event(n, "user:alice@e2e-host")
                };
                lines.push_str(&format!("{e}\n"));
            }
            let batch = format!("batch-{}.jsonl", uuid::Uuid::now_v7());
            std::fs::write(spool.join(&batch), lines).unwrap();
            world.start_agent();
            world.eventually_in_audit("the refusal was not reported", |records| {
                records.iter().any(|r| r["action"] == "spool.rejected")
            });
            let records = world.audit();
            let delivered = records
                .iter()
                .filter(|r| r["action"] == "test.event")
                .count();
            assert_eq!(delivered, 299, "every other event was delivered");
            assert!(!records.iter().any(|r| r["id"] == bad.as_str()));
            let alert = records
                .iter()
                .find(|r| r["action"] == "spool.rejected")
                .map(data)
                .unwrap();
            assert_eq!(alert["events"], 1);
            assert_eq!(alert["refused"][0]["id"], bad.as_str());
            assert_eq!(alert["refused"][0]["status"], 403);
            // Kept on the device, in a file of its own.
            let kept = spool.join(alert["kept_as"].as_str().unwrap());
            let held = std::fs::read_to_string(&kept).unwrap();
            assert_eq!(held.lines().count(), 1);
            assert!(held.contains(&bad));
            assert!(!spool.join(&batch).exists());
        },
    );
}
