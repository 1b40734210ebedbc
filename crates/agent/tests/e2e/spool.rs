//! The audit spool under faults: `kill -9` of the agent and of the server while events are
//! spooled and sent, and a disk that is full.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::offline::cut_off;
use crate::world::text;
use crate::{namespaced, World};

/// Auto runs of a counting program; each is four events (created, decided, running, finished).
const RUNS: usize = 2600;

/// A small random number generator (xorshift): the seed is printed, so a failure can be
/// replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every audit record the server holds, oldest first (paged).
fn all_records(world: &World, url: &str) -> Vec<serde_json::Value> {
    let http = reqwest::Client::new();
    let mut out: Vec<serde_json::Value> = Vec::new();
    loop {
        let after = out.last().map_or(0, |r| r["seq"].as_u64().unwrap());
        let page: Vec<serde_json::Value> = world.runtime.block_on(async {
            http.get(format!("{url}/v1/audit?after={after}&limit=1000"))
                .bearer_auth(&world.admin)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The server's verdict on its whole chain.
fn verify(world: &World, url: &str) -> serde_json::Value {
    world.runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/v1/audit/verify"))
            .bearer_auth(&world.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// Waits until the agent says that no events wait for the server.
fn wait_until_delivered(world: &World) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = text(&world.elevate_as("root", &["status"], &[]).stdout);
        if status.contains("spooled: 0 audit events") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the spool never drained: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Files of the spool folder that still hold events (or were set aside).
fn spool_files(world: &World) -> Vec<String> {
    std::fs::read_dir(world.dir.join("agent/spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "reserve")
        .filter(|e| e.file_name() != "current.jsonl" || e.metadata().unwrap().len() > 0)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn kill_9_of_agent_and_server_loses_and_repeats_no_event() {
    namespaced(
        "spool::kill_9_of_agent_and_server_loses_and_repeats_no_event",
        || {
            let mut world = World::new();
            let ran = world.dir.join("ran");
            let count = world.program(
                "auto",
                "count",
                &format!("#!/bin/sh\necho x >> {}\n", ran.display()),
                0o755,
            );
            let count = count.to_str().unwrap().to_owned();
            // dave is a standing admin (group sudo) in the discovery wave: his runs go ahead and
            // are recorded as discovery events too, which a full spool summarises.
            let status = Command::new("useradd")
                .args(["-M", "-G", "sudo", "dave"])
                .status()
                .unwrap();
            assert!(status.success());
            let ran_dave = world.dir.join("ran-dave");
            let count_dave = world.program(
                "auto",
                "count-dave",
                &format!("#!/bin/sh\necho x >> {}\n", ran_dave.display()),
                0o755,
            );
            let count_dave = count_dave.to_str().unwrap().to_owned();
            // The server becomes a process of its own, to be killed as the agent is; the spool
            // is small, so that it fills up while the server is down.
            world.stop_agent();
            world
                .agent_args
                .extend(["--spool-max".to_owned(), "64KiB".to_owned()]);
            let server = world.server.take().unwrap();
            let url = server.url.clone();
            let mut server = world.runtime.block_on(server.into_process());
            let mut agent = world.agent_command().spawn().unwrap();
            world.wait_for_agent();

            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1;
            println!("seed {seed}");
            let mut dice = Dice(seed);
            let succeeded = AtomicUsize::new(0);
            let dave_succeeded = AtomicUsize::new(0);
            let (mut agent_kills, mut server_kills) = (0u64, 0u64);
            std::thread::scope(|s| {
                s.spawn(|| {
                    while succeeded.load(Ordering::SeqCst) < RUNS {
                        let out = world.elevate_as("dave", &[&count_dave], &[]);
                        if out.status.success() {
                            dave_succeeded.fetch_add(1, Ordering::SeqCst);
                        } else {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                });
                for _ in 0..3 {
                    s.spawn(|| {
                        while succeeded.load(Ordering::SeqCst) < RUNS {
                            let out = world.elevate_as("alice", &[&count], &[]);
                            if out.status.success() {
                                succeeded.fetch_add(1, Ordering::SeqCst);
                            } else {
                                // The agent is down (or was killed under this run): again.
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    });
                }
                // Meanwhile: kill -9 the agent or the server at random points, and start them
                // again.
                while succeeded.load(Ordering::SeqCst) < RUNS {
                    std::thread::sleep(Duration::from_millis(100 + dice.below(900)));
                    if dice.below(3) == 0 {
                        server.kill();
                        server_kills += 1;
                        if server_kills == 1 {
                            // The first time, the server stays away until the spool reaches
                            // its bound, so that the bound is surely tested.
                            let deadline = Instant::now() + Duration::from_secs(30);
                            while Instant::now() < deadline {
                                let status =
                                    text(&world.elevate_as("root", &["status"], &[]).stdout);
                                if status.contains("were summarised") || status.contains("FULL") {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        } else {
                            std::thread::sleep(Duration::from_millis(dice.below(2000)));
                        }
                        world.runtime.block_on(server.start());
                    } else {
                        agent.kill().unwrap();
                        agent.wait().unwrap();
                        agent_kills += 1;
                        std::thread::sleep(Duration::from_millis(dice.below(300)));
                        agent = world.agent_command().spawn().unwrap();
                        world.wait_for_agent();
                    }
                }
            });
            println!("{agent_kills} agent kills, {server_kills} server kills");
            assert!(
                agent_kills >= 5 && server_kills >= 2,
                "too few faults to mean anything"
            );
            wait_until_delivered(&world);
            assert_eq!(spool_files(&world), Vec::<String>::new());

            let records = all_records(&world, &url);
            let report = verify(&world, &url);
            assert_eq!(report["ok"], true, "{report}");
            assert_eq!(report["count"].as_u64().unwrap(), records.len() as u64);
            let mut per_request: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut daves: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut ids = std::collections::HashSet::new();
            let (mut dave_found, mut summaries, mut full_alerts) = (0u64, 0u64, 0u64);
            for r in &records {
                assert!(ids.insert(r["id"].as_str().unwrap().to_owned()), "{r}");
                let action = r["action"].as_str().unwrap().to_owned();
                let subject = r["subject"].as_str().unwrap().to_owned();
                if r["actor"] == "user:alice@e2e-host" {
                    per_request.entry(subject).or_default().push(action);
                } else if r["actor"] == "user:dave@e2e-host" {
                    if action == "discovery.command" {
                        dave_found += 1;
                    }
                    daves.entry(subject).or_default().push(action);
                } else if action == "discovery.summarised" {
                    summaries += 1;
                    let data: serde_json::Value =
                        serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
                    for c in data["commands"].as_array().unwrap() {
                        if c["user"] == "dave" || c["user"] == "user:dave@e2e-host" {
                            dave_found += c["count"].as_u64().unwrap();
                        }
                    }
                } else if action == "spool.full" {
                    full_alerts += 1;
                }
            }
            let events: usize = per_request.values().map(Vec::len).sum();
            println!(
                "{events} events of {} requests on the server",
                per_request.len()
            );
            assert!(events >= 10_000, "{events} events");
            let mut running = 0;
            for (request, actions) in &per_request {
                // Spooled together before anything ran: all or nothing, each once.
                assert_eq!(
                    actions[..3],
                    ["request.created", "request.decided", "request.running"],
                    "{request}"
                );
                // The end comes after: it may be missing where the agent was killed.
                assert!(
                    actions[3..] == ["request.finished"] || actions.len() == 3,
                    "{request}: {actions:?}"
                );
                running += 1;
            }
            // dave's requests: each recorded once, and every discovery event of his either
            // delivered or counted in a summary, never both.
            for (request, actions) in &daves {
                assert_eq!(
                    actions[..3],
                    ["request.created", "request.decided", "request.running"],
                    "{request}"
                );
                let mut rest = actions[3..].to_vec();
                rest.sort();
                rest.dedup();
                assert_eq!(rest.len(), actions.len() - 3, "{request}: {actions:?}");
            }
            let dave_ran = std::fs::read_to_string(&ran_dave)
                .unwrap_or_default()
                .lines()
                .count() as u64;
            let dave_ok = dave_succeeded.load(Ordering::SeqCst) as u64;
            println!(
                "dave: {dave_ok} runs told success, {dave_ran} ran, {} recorded, {dave_found} discovery events delivered or summarised ({summaries} summaries, {full_alerts} spool.full alerts)",
                daves.len()
            );
            assert!(dave_found <= dave_ran, "a discovery event counted twice");
            assert!(dave_found + agent_kills >= dave_ok, "discovery events lost");
            assert!(
                full_alerts >= 1,
                "the spool never reached its bound: the test proves less"
            );
            let ran = std::fs::read_to_string(&ran).unwrap().lines().count();
            let succeeded = succeeded.load(Ordering::SeqCst);
            println!("{succeeded} runs told success, {ran} ran, {running} recorded running");
            assert!(succeeded <= ran, "a run said it succeeded without running");
            // Recorded before it runs: every run is on the server; a run the agent was killed
            // just before is recorded and did not run.
            assert!(ran <= running, "{ran} ran but only {running} are recorded");
            assert!(running as u64 <= ran as u64 + agent_kills);
            agent.kill().unwrap();
            agent.wait().unwrap();
        },
    );
}

#[test]
fn a_full_disk_refuses_elevation_and_loses_nothing_spooled() {
    namespaced(
        "spool::a_full_disk_refuses_elevation_and_loses_nothing_spooled",
        || {
            let mut world = World::new();
            let marked = world.dir.join("marked");
            let mark = world.program(
                "auto",
                "mark",
                &format!("#!/bin/sh\necho x >> {}\n", marked.display()),
                0o755,
            );
            let mark = mark.to_str().unwrap().to_owned();
            let url = world.server().url.clone();
            // The spool gets a small disk of its own (what it held comes along).
            world.stop_agent();
            let spool = world.dir.join("agent/spool");
            let held: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&spool)
                .unwrap()
                .flatten()
                .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
                .collect();
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs"])
                .arg(&spool)
                .status()
                .unwrap();
            assert!(mounted.success());
            for (path, bytes) in &held {
                std::fs::write(path, bytes).unwrap();
            }
            // Offline, so that what is spooled stays on that disk.
            cut_off(&mut world, "http://127.0.0.1:9");
            for _ in 0..3 {
                let out = world.elevate_as("alice", &[&mark], &[]);
                assert!(out.status.success(), "{}", text(&out.stderr));
            }
            // The disk fills up.
            let filler = spool.join("filler");
            let mut file = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 4096];
            while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
            drop(file);
            // What the files' last pages still hold may take a run or two more; then the disk
            // refuses, and so does the agent.
            let mut more = 0;
            let out = loop {
                let out = world.elevate_as("alice", &[&mark], &[]);
                if !out.status.success() {
                    break out;
                }
                more += 1;
                assert!(more < 20, "a full disk never refused");
            };
            assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
            let said = text(&out.stderr);
            assert!(
                said.contains("the disk that holds the audit spool")
                    && said.contains("is full")
                    && said.contains("nothing runs"),
                "{said}"
            );
            let runs = 3 + more;
            assert_eq!(
                std::fs::read_to_string(&marked).unwrap().lines().count(),
                runs,
                "nothing ran unrecorded"
            );
            // Each run's end too: the spool's reserve kept room for it.
            let status = text(&world.elevate_as("alice", &["status"], &[]).stdout);
            assert!(
                status.contains(&format!("spooled: {} audit events", 4 * runs)),
                "{status}"
            );
            // Space again, and the server back: everything spooled arrives, once.
            std::fs::remove_file(&filler).unwrap();
            cut_off(&mut world, &url);
            let out = world.elevate_as("alice", &[&mark], &[]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            wait_until_delivered(&world);
            let records = all_records(&world, &url);
            let ran: Vec<_> = records
                .iter()
                .filter(|r| {
                    r["action"] == "request.created"
                        && r["data"].as_str().unwrap().contains(mark.as_str())
                })
                .collect();
            assert_eq!(ran.len(), runs + 1, "{records:?}");
            for r in ran {
                let id = r["subject"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("request:");
                world.wait_for_actions(
                    id,
                    &[
                        "request.created",
                        "request.decided",
                        "request.running",
                        "request.finished",
                    ],
                );
            }
            assert_eq!(verify(&world, &url)["ok"], true);
            world.stop_agent();
            let _ = Command::new("umount").arg(&spool).status();
        },
    );
}
