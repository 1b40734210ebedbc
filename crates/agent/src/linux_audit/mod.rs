//! Discovery through Linux audit: root commands people run without sudo or elevate (`su`,
//! `pkexec`, a root shell's children) become `discovery.command` events, source `linux-audit`.
//!
//! The kernel does the watching: a rule (`auditctl -a always,exit -F arch=b64 -S
//! execve,execveat -F uid=0 -F euid=0 -F auid>=1000 -F auid!=unset -k elevate`, and its b32 twin)
//! marks executions as root by a logged-in person (not a setuid program a user runs: its real uid
//! stays the user's), and the agent reads the records from the kernel's
//! read-only audit multicast group (netlink, `AUDIT_NLGRP_READLOG`), beside whatever audit
//! daemon runs, without touching its log. Records are the kernel's, not text a user can write:
//! a `logger -t sudo` line is never read at all.
//!
//! What sudo and elevate ran is left out (their own collectors record it with more facts): an
//! execution whose parent is the agent or a sudo process (or, once sudo is gone, one sudo was
//! just allowed to run) is skipped; what that command starts in turn (a root shell's children) is
//! recorded. Records are selected by what they say (root, by a person, an execution), not by the
//! rule's key: an earlier rule of the host's own ruleset may be the one that matched. The
//! collector runs
//! only where auditing is on (an audit daemon, or `auditctl -e 1`); the agent never switches the
//! kernel's auditing on by itself, and `elevate status` says why it is off.
//!
//! Must never: block the agent (a thread of its own reads the socket), or flood the spool (at
//! most `MAX_PER_WINDOW` events per window, the rest counted in one `discovery.dropped`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::os::netlink::Received;
use crate::state::Agent;

use elevate_proto::linux_audit::UNSET;
pub use elevate_proto::linux_audit::{fields, parse_record, text, Assembler, Exec, Record};

/// The rule's key; executions the kernel marks with it are ours to read.
pub const KEY: &str = "elevate";
const FIRST_PERSON_UID: u32 = 1000;
/// At most this many events per window; a root shell running a build executes thousands.
const MAX_PER_WINDOW: u32 = 500;
/// Arguments beyond this many bytes are cut (with a count and a digest of all of them).
const MAX_ARGV_BYTES: usize = 16 * 1024;
const WINDOW: Duration = Duration::from_secs(10);

/// Whether `exec` is one of ours to record: a successful execution as root (real and effective
/// uid: a setuid program a user runs is not an elevation), by a person (login uid ≥ 1000),
/// whichever rule made the kernel record it.
pub fn wanted(exec: &Exec) -> bool {
    exec.is_exec
        && exec.success
        && exec.uid == 0
        && exec.euid == 0
        && exec.auid >= FIRST_PERSON_UID
        && exec.auid != UNSET
}

/// Which front door ran this process directly, if one did: its parent is the agent or a sudo
/// process (sudo's own, or its monitor when it runs the command on a pty).
fn launched_by(ppid: i32, agent: u32, sudo: &Path) -> Option<&'static str> {
    if ppid as u32 == agent {
        return Some("elevate");
    }
    let parent = std::fs::read_link(format!("/proc/{ppid}/exe")).ok()?;
    if parent == sudo {
        return Some("sudo");
    }
    // An agent binary (this one restarted, or another instance) records its own commands.
    std::env::current_exe()
        .is_ok_and(|me| me == parent)
        .then_some("elevate")
}

fn auditctl() -> Option<PathBuf> {
    ["/usr/sbin/auditctl", "/sbin/auditctl"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn run(tool: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(tool)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !text.contains("exists") {
        bail!("{} {}: {}", tool.display(), args.join(" "), text.trim());
    }
    Ok(text)
}

/// The rules, as `auditctl` takes them: 64-bit and 32-bit executions.
fn rules() -> [Vec<&'static str>; 2] {
    ["arch=b64", "arch=b32"].map(|arch| {
        vec![
            "-a",
            "always,exit",
            "-F",
            arch,
            "-S",
            "execve,execveat",
            "-F",
            "uid=0",
            "-F",
            "euid=0",
            "-F",
            "auid>=1000",
            "-F",
            "auid!=unset",
            "-k",
            KEY,
        ]
    })
}

/// Adds the rules the kernel does not hold (an audit daemon's restart or `augenrules --load`
/// deletes them). The 64-bit one must be there; the 32-bit one where the kernel has that ABI.
pub fn ensure_rules() -> Result<(), String> {
    let tool = auditctl().ok_or_else(|| {
        "off: auditctl is not installed (apt-get install auditd, then start auditd)".to_owned()
    })?;
    let listed = run(&tool, &["-l"]).map_err(|e| format!("off: {e:#}"))?;
    for (i, rule) in rules().iter().enumerate() {
        let arch = rule[3];
        let present = listed.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.contains(&arch)
                && words.contains(&"uid=0")
                && words.contains(&format!("key={KEY}").as_str())
        });
        if !present {
            if let Err(e) = run(&tool, rule) {
                if i == 0 {
                    return Err(format!("off: cannot add the audit rule: {e:#}"));
                }
            }
        }
    }
    Ok(())
}

/// The status line of a working collector.
pub const ON: &str =
    "on (kernel rule -k elevate: root commands by people outside sudo and elevate)";

/// The collector's reader, while it runs (kept in the agent's shared state).
pub use crate::state::LinuxAuditRunning as Running;

/// Turns the collector on: the rule in the kernel, a socket on the read-only group, a thread
/// that records. Returns the status line, or why it cannot run here.
pub fn start(agent: Arc<Agent>) -> Result<(String, Running), String> {
    let tool = auditctl().ok_or_else(|| {
        "off: auditctl is not installed (apt-get install auditd, then start auditd)".to_owned()
    })?;
    let status = run(&tool, &["-s"]).map_err(|e| format!("off: {e:#}"))?;
    if !status
        .lines()
        .any(|l| l.trim() == "enabled 1" || l.trim() == "enabled 2")
    {
        return Err(
            "off: auditing is disabled on this host (start auditd, or auditctl -e 1)".into(),
        );
    }
    ensure_rules()?;
    // Close-on-exec, as every descriptor of the agent: commands must never inherit it.
    let socket = crate::os::netlink::audit_readlog().map_err(|e| format!("off: {e}"))?;
    let running = Running::default();
    running.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let flag = running.clone();
    std::thread::Builder::new()
        .name("linux-audit".into())
        .spawn(move || {
            // Whatever ends the reader (an error, a panic), the agent sees it and restarts it.
            struct Stopped(Running);
            impl Drop for Stopped {
                fn drop(&mut self) {
                    self.0 .0.store(false, std::sync::atomic::Ordering::SeqCst);
                }
            }
            let _stopped = Stopped(flag);
            read_forever(&agent, socket)
        })
        .map_err(|e| format!("off: cannot start the reader: {e}"))?;
    Ok((ON.to_owned(), running))
}

fn read_forever(agent: &Agent, socket: std::os::fd::OwnedFd) {
    let mut buf = vec![0u8; 1 << 16];
    let mut assembler = Assembler::default();
    let mut recorder = Recorder::default();
    let me = std::process::id();
    let sudo = PathBuf::from("/usr/bin/sudo");
    loop {
        let n = match crate::os::netlink::recv(&socket, &mut buf) {
            Ok(Received::Bytes(n)) => n,
            Ok(Received::Lost) => {
                // The kernel dropped records while we were slow; go on with the next ones.
                recorder.lost += 1;
                continue;
            }
            Ok(Received::Interrupted) => continue,
            Err(e) => {
                tracing::error!(error = %e, "the Linux audit reader stopped");
                return;
            }
        };
        let mut at = 0;
        // One datagram may hold several netlink messages.
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            if len < 16 || at + len > n {
                break;
            }
            if let Some(record) = parse_record(kind, &buf[at + 16..at + len]) {
                if let Some(exec) = assembler.push(&record) {
                    if wanted(&exec) && exec.exe != sudo.to_string_lossy() {
                        let parent_gone = !Path::new(&format!("/proc/{}", exec.ppid)).exists();
                        // What sudo ran: its plugin recorded it. If its parent is gone already
                        // (a short command), the agent's memory of what sudo was allowed counts.
                        if parent_gone && agent.take_front_door_exec(exec.auid, &exec.exe) {
                            tracing::trace!(exe = %exec.exe, "recorded by the sudo plugin");
                        } else if let Some(by) = launched_by(exec.ppid, me, &sudo) {
                            tracing::trace!(by, exe = %exec.exe, "recorded by its own front door");
                        } else {
                            recorder.record(agent, &exec);
                        }
                    }
                }
            }
            at += (len + 3) & !3;
        }
    }
}

/// Turns executions into spooled events, within the rate limit.
#[derive(Debug)]
struct Recorder {
    window: Instant,
    in_window: u32,
    dropped: u32,
    lost: u32,
    hashes: HashMap<String, (crate::resolve::FileIdentity, String)>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            window: Instant::now(),
            in_window: 0,
            dropped: 0,
            lost: 0,
            hashes: HashMap::new(),
        }
    }
}

impl Recorder {
    fn record(&mut self, agent: &Agent, exec: &Exec) {
        if self.window.elapsed() >= WINDOW {
            if self.dropped > 0 || self.lost > 0 {
                let data = serde_json::json!({ "source": "linux-audit", "dropped": self.dropped,
                    "lost_batches": self.lost, "window_secs": WINDOW.as_secs() });
                spool(agent, "discovery.dropped", "device", data);
            }
            self.window = Instant::now();
            self.in_window = 0;
            self.dropped = 0;
            self.lost = 0;
        }
        if self.in_window >= MAX_PER_WINDOW {
            self.dropped += 1;
            return;
        }
        self.in_window += 1;
        // A login uid with no account any more is still recorded, by number.
        let who = agent.caller(exec.auid).unwrap_or(crate::users::Caller {
            name: format!("uid {}", exec.auid),
            uid: exec.auid,
            gid: UNSET,
            groups: Vec::new(),
        });
        let sha256 = self.sha256(&exec.exe);
        let (argv, argv_cut) = capped(&exec.argv);
        let package = agent
            .packages
            .lock()
            .expect("packages lock")
            .owner(&exec.exe);
        let policy = agent.policy.read().expect("policy lock").clone();
        let subject = agent.subject(&who);
        let (mode, policy_outcome, policy_rule) = match &policy {
            Some(p) => {
                let request = elevate_core::AccessRequest {
                    subject: subject.clone(),
                    target: elevate_core::Target::Command(elevate_core::CommandSpec {
                        path: exec.exe.clone(),
                        // What the kernel saw as argv[0] is not a path one could match.
                        invoked: None,
                        sha256: sha256.clone(),
                        package: package.clone(),
                        args: argv.iter().skip(1).cloned().collect(),
                    }),
                    reason: None,
                    channel: elevate_core::Channel::Native,
                };
                let d = elevate_core::decide(&p.policy, &request, jiff::Timestamp::now());
                let view = elevate_proto::v1::DecisionView::from_decision(&d, p.version);
                (Some(view.mode), Some(view.policy_outcome), view.rule)
            }
            None => (None, None, None),
        };
        let via = std::fs::read_to_string(format!("/proc/{}/comm", exec.ppid))
            .ok()
            .map(|c| c.trim().to_owned());
        let runas = crate::users::name_of(exec.euid).unwrap_or_else(|| exec.euid.to_string());
        // The same shape as the front doors' discovery events (`target` as in requests).
        let target = serde_json::json!({ "kind": "command", "path": exec.exe, "sha256": sha256,
            "package": package, "args": argv.iter().skip(1).collect::<Vec<_>>() });
        let data = serde_json::json!({
            "source": "linux-audit", "channel": "linux-audit", "user": who.name, "uid": who.uid,
            "groups": who.groups, "runas": runas, "target": target, "argv": argv,
            "argv_cut": argv_cut,
            "cwd": exec.cwd, "tty": exec.tty, "device": agent.enrolment.name,
            "pid": exec.pid, "ppid": exec.ppid, "via": via, "session": exec.session,
            "at_ms": exec.at_ms, "audit_serial": exec.serial, "exit_code": null,
            "mode": mode, "policy_outcome": policy_outcome, "policy_rule": policy_rule,
        });
        spool(agent, "discovery.command", "exec", data);
    }

    /// The binary's SHA-256, remembered per path for the very file (device, inode, change time,
    /// size) that was hashed; a FIFO or a huge file is not hashed.
    fn sha256(&mut self, path: &str) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let now = (meta.dev(), meta.ino(), meta.ctime(), meta.size() as i64);
        if let Some((identity, hash)) = self.hashes.get(path) {
            if *identity == now {
                return Some(hash.clone());
            }
        }
        let (hash, identity) = crate::resolve::observed_sha256(path)?;
        if self.hashes.len() >= 1024 {
            if let Some(any) = self.hashes.keys().next().cloned() {
                self.hashes.remove(&any);
            }
        }
        self.hashes
            .insert(path.to_owned(), (identity, hash.clone()));
        Some(hash)
    }
}

/// The arguments, cut to `MAX_ARGV_BYTES`; with what was cut: how many arguments and the
/// SHA-256 of the whole list, when anything was.
fn capped(argv: &[String]) -> (Vec<String>, Option<serde_json::Value>) {
    use sha2::Digest as _;
    let total: usize = argv.iter().map(|a| a.len() + 1).sum();
    if total <= MAX_ARGV_BYTES {
        return (argv.to_vec(), None);
    }
    let mut kept = Vec::new();
    let mut size = 0;
    for a in argv {
        if size + a.len() + 1 > MAX_ARGV_BYTES {
            break;
        }
        size += a.len() + 1;
        kept.push(a.clone());
    }
    let mut digest = sha2::Sha256::new();
    for a in argv {
        digest.update(a.as_bytes());
        digest.update([0u8]);
    }
    let cut = serde_json::json!({ "count": argv.len(), "bytes": total,
        "sha256": hex::encode(digest.finalize()) });
    (kept, Some(cut))
}

fn spool(agent: &Agent, action: &str, kind: &str, data: serde_json::Value) {
    let id = uuid::Uuid::now_v7().to_string();
    let event = elevate_proto::v1::AuditEventIn {
        id: id.clone(),
        at: jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond())
            .expect("valid time"),
        actor: format!("agent@{}", agent.enrolment.name),
        action: action.into(),
        subject: format!("{kind}:{id}"),
        data,
    };
    let appended = agent
        .spool
        .lock()
        .expect("spool lock")
        .append_after_the_fact(&[event]);
    match appended {
        Ok(()) => agent.spool_ready.notify_one(),
        Err(e) => tracing::error!(error = %e, "cannot spool a Linux audit event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elevate_proto::linux_audit::{is_exec_syscall, EOE, EXECVE, SYSCALL};

    /// Records as this machine's kernel sent them for `sh -c 'echo 1001 > /proc/self/loginuid;
    /// exec /usr/bin/id -u'` run as root, with the rule above (key `elevate-probe` then).
    const CAPTURED: &[(u16, &str)] = &[
        (1006, "audit(1795761518.292:3): pid=11849 uid=0 old-auid=4294967295 auid=1001 tty=(none) old-ses=4294967295 ses=41 res=1"),
        (1300, "audit(1795761518.292:3): arch=c000003e syscall=1 success=yes exit=5 a0=1 a1=55ddcb64bd30 a2=5 a3=0 items=0 ppid=11803 pid=11849 auid=1001 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=41 comm=\"sh\" exe=\"/usr/bin/dash\" key=(null)"),
        (1320, "audit(1795761518.292:3): "),
        (1300, "audit(1795761518.292:4): arch=c000003e syscall=59 success=yes exit=0 a0=55ddc2cfb9c0 a1=55ddcb64bb10 a2=55ddcb64bb28 a3=4864494871fb157b items=2 ppid=11803 pid=11849 auid=1001 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=41 comm=\"id\" exe=\"/usr/bin/id\" key=\"elevate-probe\""),
        (1321, "audit(1795761518.292:4): fver=0 fp=0 fi=0 fe=0 old_pp=000001fffeffffff old_pi=0 old_pe=000001fffeffffff old_pa=0 pp=000001fffeffffff pi=0 pe=000001fffeffffff pa=0 frootid=0"),
        (1309, "audit(1795761518.292:4): argc=3 a0=\"/usr/bin/id\" a1=\"-u\" a2=612062"),
        (1307, "audit(1795761518.292:4): cwd=\"/work/main\""),
        (1302, "audit(1795761518.292:4): item=0 name=\"/usr/bin/id\" inode=247295 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"),
        (1327, "audit(1795761518.292:4): proctitle=7368002D63006563686F2031303031203E202F70726F632F73656C662F6C6F67696E7569643B2065786563202F7573722F62696E2F6964202D75"),
        (1320, "audit(1795761518.292:4): \0"),
    ];

    #[test]
    fn an_execution_is_put_back_together_from_the_kernels_records() {
        let mut asm = Assembler::default();
        let mut got = Vec::new();
        for (kind, text) in CAPTURED {
            let record = parse_record(*kind, text.as_bytes()).expect(text);
            got.extend(asm.push(&record));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        let exec = &got[0];
        assert_eq!(
            (exec.serial, exec.at_ms, exec.pid, exec.ppid),
            (4, 1_795_761_518_292, 11849, 11803)
        );
        assert_eq!((exec.auid, exec.uid, exec.euid), (1001, 0, 0));
        assert_eq!(
            (exec.comm.as_str(), exec.exe.as_str()),
            ("id", "/usr/bin/id")
        );
        // a2 was hex-encoded by the kernel ("a b" has a space).
        assert_eq!(exec.argv, ["/usr/bin/id", "-u", "a b"]);
        assert_eq!(exec.cwd.as_deref(), Some("/work/main"));
        assert_eq!((exec.tty.as_deref(), exec.session), (None, Some(41)));
        assert!(exec.success);
        // Selected by what it says, whichever rule (key) made the kernel record it.
        assert!(wanted(exec));
        let mut system = exec.clone();
        system.auid = UNSET;
        assert!(!wanted(&system), "no login uid");
        system.auid = 999;
        assert!(!wanted(&system), "a system account");
        let mut user = exec.clone();
        user.euid = 1001;
        assert!(!wanted(&user), "not root");
        let mut setuid = exec.clone();
        setuid.uid = 1001;
        assert!(!wanted(&setuid), "a setuid program a user runs");
    }

    #[test]
    fn split_arguments_and_interleaved_events_are_put_together() {
        let rec = |kind, text: &str| parse_record(kind, text.as_bytes()).unwrap();
        let syscall = |serial: u32, exe: &str| {
            rec(SYSCALL, &format!("audit(1795761518.292:{serial}): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid={serial} auid=1001 uid=0 gid=0 euid=0 ses=2 comm=\"x\" exe=\"{exe}\" key=\"exec\""))
        };
        let mut asm = Assembler::default();
        let mut done = Vec::new();
        for r in [
            syscall(10, "/usr/bin/a"),
            syscall(11, "/usr/bin/b"),
            rec(
                EXECVE,
                "audit(1795761518.292:11): argc=2 a0=\"b\" a1=\"two\"",
            ),
            rec(
                EXECVE,
                "audit(1795761518.292:10): argc=2 a0=\"a\" a1_len=6 a1[0]=616263",
            ),
            rec(EXECVE, "audit(1795761518.292:10): a1[1]=\"def\""),
            rec(EOE, "audit(1795761518.292:11): "),
            rec(EOE, "audit(1795761518.292:10): "),
        ] {
            done.extend(asm.push(&r));
        }
        assert_eq!(done.len(), 2);
        assert_eq!(
            (done[0].exe.as_str(), &done[0].argv[..]),
            ("/usr/bin/b", &["b".to_owned(), "two".to_owned()][..])
        );
        assert_eq!(done[1].argv, ["a", "abcdef"]);
        // A 32-bit execve (syscall 11 on i386) is an execution too; x86_64's syscall 11 is not.
        assert!(is_exec_syscall("40000003", 11) && !is_exec_syscall("c000003e", 11));
        // Very long argument lists are cut, counted and digested.
        let long: Vec<String> = (0..100).map(|i| format!("{i:0>400}")).collect();
        let (kept, cut) = capped(&long);
        assert!(
            kept.len() < 100 && kept.iter().map(|a| a.len() + 1).sum::<usize>() <= MAX_ARGV_BYTES
        );
        assert_eq!(cut.unwrap()["count"], 100);
        assert_eq!(capped(&long[..2]).1, None);
    }

    #[test]
    fn bad_records_are_skipped_not_trusted() {
        for bad in [
            "",
            "audit(",
            "audit(x.y:z): a=b",
            "sudo: alice : COMMAND=/bin/sh",
        ] {
            assert_eq!(parse_record(SYSCALL, bad.as_bytes()), None, "{bad:?}");
        }
        // A quoted value keeps its spaces; an unquoted text was hex; numbers stay numbers.
        let f = fields(r#"comm="a b" pid=1234 exe=2F62696E2F7368 key=(null)"#);
        let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["comm", "pid", "exe", "key"]);
        assert_eq!(text(&f[0].1).as_deref(), Some("a b"));
        assert_eq!(f[1].1, "1234");
        assert_eq!(text(&f[2].1).as_deref(), Some("/bin/sh"));
        assert_eq!(text(&f[3].1), None);
    }
}
