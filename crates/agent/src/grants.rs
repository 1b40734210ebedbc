//! Admin sessions: a user's time-limited right to use sudo for anything, with an absolute expiry
//! that holds without the agent (security invariant 2).
//!
//! An open session is four things, made in this order and undone in reverse:
//! 1. a line in the ledger (`admin-sessions.json` in the state folder, written whole and flushed,
//!    under a lock shared with the reaper), so that a crash at any later step is swept;
//! 2. a cgroup (v2) that sudo joins before it runs a command for the session (the plugin does it;
//!    it refuses to run otherwise), so every process of the session, even one whose sudo was
//!    `kill -9`ed, is killed at the end with one write to `cgroup.kill`;
//! 3. a sudoers rule with `NOTAFTER=` in UTC, checked by `visudo` (sudo itself stops honouring it
//!    at expiry; with the agent gone, the plugin refuses every sudo anyway);
//! 4. a reaper: a small `elevated session-reaper` process of its own that wakes at expiry, ends
//!    the session and exits, so the session ends on time even when the agent was killed.
//!
//! The agent also ends due sessions on a timer, at every refresh and at start (after a reboot the
//! ledger still names the rule and the cgroup). Ends are recorded in the ledger with who ended
//! them; the agent turns every recorded end into an audit event exactly once.
//!
//! Must never: leave a rule without `NOTAFTER`, open a session whose processes cannot be put in
//! its cgroup, or keep a managed session rule that no open session accounts for.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sudoers::{safe_user_name, Sudoers};

const LEDGER: &str = "admin-sessions.json";
const LEDGER_LOCK: &str = "admin-sessions.lock";
/// Names of the session rules in the sudoers folder.
const RULE_PREFIX: &str = "elevate-session-";
/// Ended sessions are kept this long in the ledger (for reporting), then forgotten.
const KEEP_ENDED: SignedDuration = SignedDuration::from_hours(24);

/// How a session came to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// Its time ran out; ended by the agent's timer or refresh.
    Expiry,
    /// Its time ran out; ended by its reaper (the agent may have been gone).
    Reaper,
    /// Found past its expiry when the agent started (after a crash or a reboot).
    StartSweep,
    /// The user ended it (`elevate session end`).
    User,
    /// The policy in force no longer allows it (a new policy, or the user left the group).
    Policy,
    /// It could not be set up completely; what was made was undone.
    Failed,
}

impl EndedBy {
    /// The audit action for this end.
    pub fn action(self) -> &'static str {
        match self {
            EndedBy::Expiry | EndedBy::Reaper | EndedBy::StartSweep => "session.expired",
            EndedBy::User => "session.ended",
            EndedBy::Policy => "session.revoked",
            EndedBy::Failed => "session.failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub at: Timestamp,
    pub by: EndedBy,
    /// Processes still running in the session's cgroup that were killed.
    pub killed: u64,
    /// Whether the agent has spooled the audit event for this end.
    pub reported: bool,
}

/// One admin session, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSession {
    /// The request that opened it.
    pub id: String,
    pub user: String,
    pub uid: u32,
    pub starts: Timestamp,
    pub expires: Timestamp,
    /// The sudoers rule.
    pub rule: PathBuf,
    /// The cgroup its processes live in.
    pub cgroup: PathBuf,
    /// Whether the server holds the request (approved there) rather than the spool.
    pub on_server: bool,
    /// Opened by break glass (several helpdesk members' codes): it lasts as they said, whatever
    /// the cached policy says of sessions meanwhile.
    #[serde(default)]
    pub break_glass: bool,
    pub ended: Option<Ended>,
}

impl AdminSession {
    pub fn is_open_at(&self, now: Timestamp) -> bool {
        self.ended.is_none() && now < self.expires
    }

    pub fn remaining(&self, now: Timestamp) -> SignedDuration {
        if self.is_open_at(now) {
            self.expires.duration_since(now)
        } else {
            SignedDuration::ZERO
        }
    }
}

/// Admin sessions: where they are kept (the ledger) and enforced (sudoers rules, cgroups).
#[derive(Debug, Clone)]
pub struct AdminSessions {
    pub state_dir: PathBuf,
    pub sudoers: Sudoers,
    /// The folder under which session cgroups are made; `None` when the host has no cgroup v2
    /// hierarchy (then no session can be opened).
    pub cgroups: Option<PathBuf>,
}

impl AdminSessions {
    pub fn system(state_dir: &Path) -> AdminSessions {
        AdminSessions {
            state_dir: state_dir.to_path_buf(),
            sudoers: Sudoers::system(),
            cgroups: cgroup2_mount().map(|m| m.join("elevate")),
        }
    }

    /// Holds the ledger lock (shared by the agent and the reapers) until the file is dropped.
    fn lock(&self) -> anyhow::Result<fs::File> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.state_dir.join(LEDGER_LOCK))
            .context("cannot open the admin-session ledger lock")?;
        crate::os::files::lock(&lock).context("cannot lock the admin-session ledger")?;
        Ok(lock)
    }

    /// Writes the ledger whole and flushed (call with the lock held).
    fn write(&self, sessions: &[AdminSession]) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(sessions).expect("sessions serialise");
        crate::state_file::replace(&self.state_dir.join(LEDGER), text.as_bytes(), 0o600)
    }

    /// Reads the ledger, lets `f` change it, and writes it back, holding the lock throughout.
    pub fn with_ledger<T>(&self, f: impl FnOnce(&mut Vec<AdminSession>) -> T) -> anyhow::Result<T> {
        let _lock = self.lock()?;
        let mut sessions = self.read()?;
        let before = sessions.clone();
        let out = f(&mut sessions);
        if sessions != before {
            self.write(&sessions)?;
        }
        Ok(out)
    }

    /// Moves a damaged ledger aside (kept for a person to read), so that sessions can be opened
    /// again; the sweep that follows removes every session rule and cgroup it accounted for.
    pub fn set_aside_damaged(&self) -> anyhow::Result<PathBuf> {
        let _lock = self.lock()?;
        let path = self.state_dir.join(LEDGER);
        let aside = self.state_dir.join(format!(
            "{LEDGER}.damaged-{}",
            Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
        ));
        fs::rename(&path, &aside)
            .with_context(|| format!("cannot move {} aside", path.display()))?;
        Ok(aside)
    }

    /// The ledger as it is on disk (no lock: for reading only).
    pub fn read(&self) -> anyhow::Result<Vec<AdminSession>> {
        crate::state_file::read_list(&self.state_dir.join(LEDGER))
    }

    /// Opens an admin session of `length` for `user` (request `id`). On any failure what was
    /// made is undone and nothing is open (the ledger keeps the attempt, as failed).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &self,
        id: &str,
        user: &str,
        uid: u32,
        now: Timestamp,
        length: SignedDuration,
        on_server: bool,
        break_glass: bool,
    ) -> anyhow::Result<AdminSession> {
        if !safe_user_name(user) {
            bail!("the user name {user:?} cannot be written into a sudoers rule safely; no admin session can be opened for it");
        }
        let Some(root) = &self.cgroups else {
            bail!("this host has no cgroup v2 hierarchy, so an admin session's processes could not be stopped at its end; no admin session is opened (use elevate COMMAND)");
        };
        let expires = now
            .checked_add(length)
            .context("the session would end beyond the supported range of time")?;
        // The id names files and a cgroup: only a well-formed UUID, in its plain form.
        let key = uuid::Uuid::parse_str(id)
            .with_context(|| {
                format!("the request id {id:?} is not a UUID; no admin session is opened")
            })?
            .simple()
            .to_string();
        let mut session = AdminSession {
            id: id.to_owned(),
            user: user.to_owned(),
            uid,
            starts: now,
            expires,
            rule: self.sudoers.path(&format!("{RULE_PREFIX}{key}")),
            cgroup: root.join(format!("session-{key}")),
            on_server,
            break_glass,
            ended: None,
        };
        // One lock for all of it: a sweep never sees the rule without the ledger line.
        let _lock = self.lock()?;
        let mut all = self.read()?;
        all.push(session.clone());
        self.write(&all)?;
        let made = (|| {
            fs::create_dir_all(&session.cgroup)
                .with_context(|| format!("cannot make the cgroup {}", session.cgroup.display()))?;
            self.sudoers
                .install(&format!("{RULE_PREFIX}{key}"), &rule_text(&session))?;
            Ok::<_, anyhow::Error>(())
        })();
        if let Err(e) = made {
            let _ = Sudoers::remove(&session.rule);
            let killed = kill_cgroup(&session.cgroup).unwrap_or(0);
            session.ended = Some(Ended {
                at: Timestamp::now(),
                by: EndedBy::Failed,
                killed,
                // The caller records the failure itself, with its reason.
                reported: true,
            });
            if let Some(last) = all.last_mut() {
                *last = session;
            }
            self.write(&all)?;
            return Err(e);
        }
        Ok(session)
    }

    /// Ends session `id` (if it is not ended yet): the sudoers rule goes (no new sudo), and
    /// everything in its cgroup is killed, each step tried even when the other failed; the end
    /// is recorded only once both are done, so a failure is tried again by the next sweep or
    /// the reaper. All under the lock. Returns the session as ended, or `None` when it was
    /// already ended or is unknown.
    pub fn end(
        &self,
        id: &str,
        by: EndedBy,
        now: Timestamp,
    ) -> anyhow::Result<Option<AdminSession>> {
        let _lock = self.lock()?;
        let mut all = self.read()?;
        let Some(session) = all.iter_mut().find(|s| s.id == id && s.ended.is_none()) else {
            return Ok(None);
        };
        let rule = Sudoers::remove(&session.rule)
            .with_context(|| format!("cannot remove {}", session.rule.display()));
        let killed = kill_cgroup(&session.cgroup)
            .with_context(|| format!("cannot stop the processes in {}", session.cgroup.display()));
        let killed = match (rule, killed) {
            (Ok(()), Ok(killed)) => killed,
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        session.ended = Some(Ended {
            at: now,
            by,
            killed,
            reported: false,
        });
        let ended = session.clone();
        self.write(&all)?;
        Ok(Some(ended))
    }

    /// Ends every session past its expiry, removes session rules and cgroups that no open
    /// session accounts for, and forgets reported ends older than a day. Returns the sessions
    /// it ended.
    pub fn sweep(&self, now: Timestamp, by: EndedBy) -> anyhow::Result<Vec<AdminSession>> {
        let ledger = match self.read() {
            Ok(l) => l,
            Err(e) => {
                // A damaged ledger accounts for nothing: every session rule and cgroup goes.
                let _lock = self.lock()?;
                self.remove_unaccounted(&[])?;
                return Err(e);
            }
        };
        let mut ended = Vec::new();
        let mut failed = None;
        for s in &ledger {
            if s.ended.is_none() && now >= s.expires {
                match self.end(&s.id, by, now) {
                    Ok(Some(done)) => ended.push(done),
                    Ok(None) => {}
                    // The others still end; this one is tried again next time.
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let _lock = self.lock()?;
        let mut all = self.read()?;
        let open: Vec<AdminSession> = all.iter().filter(|s| s.ended.is_none()).cloned().collect();
        self.remove_unaccounted(&open)?;
        let before = all.len();
        all.retain(|s| {
            s.ended
                .as_ref()
                .is_none_or(|e| !e.reported || now.duration_since(e.at) < KEEP_ENDED)
        });
        if all.len() != before {
            self.write(&all)?;
        }
        Ok(ended)
    }

    /// A session rule or cgroup with no open session behind it (a ledger lost, damaged or
    /// restored from a backup; a cgroup whose processes outlived an earlier attempt) is a
    /// standing right nobody accounts for: it goes.
    fn remove_unaccounted(&self, open: &[AdminSession]) -> anyhow::Result<()> {
        if let Ok(entries) = fs::read_dir(&self.sudoers.dir) {
            for entry in entries.flatten() {
                let ours = entry.file_name().to_string_lossy().starts_with(RULE_PREFIX);
                if ours && !open.iter().any(|s| s.rule == entry.path()) {
                    tracing::warn!(rule = %entry.path().display(), "removing a session rule no open session accounts for");
                    Sudoers::remove(&entry.path())?;
                }
            }
        }
        if let Some(Ok(entries)) = self.cgroups.as_ref().map(fs::read_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let session = name.starts_with("session-");
                if session && !open.iter().any(|s| s.cgroup == entry.path()) {
                    kill_cgroup(&entry.path())?;
                } else if name.starts_with("reaper-") {
                    // A reaper's own cgroup, empty once it has exited (busy while it runs).
                    let _ = fs::remove_dir(entry.path());
                }
            }
        }
        Ok(())
    }

    /// The user's open session at `now`, if any.
    pub fn open_for(&self, uid: u32, now: Timestamp) -> Option<AdminSession> {
        self.read()
            .ok()?
            .into_iter()
            .filter(|s| s.uid == uid && s.is_open_at(now))
            .max_by_key(|s| s.expires)
    }

    /// Ends recorded but not yet turned into audit events.
    pub fn unreported(&self) -> Vec<AdminSession> {
        self.read()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.ended.as_ref().is_some_and(|e| !e.reported))
            .collect()
    }

    pub fn mark_reported(&self, id: &str) -> anyhow::Result<()> {
        self.with_ledger(|all| {
            for s in all.iter_mut().filter(|s| s.id == id) {
                if let Some(e) = s.ended.as_mut() {
                    e.reported = true;
                }
            }
        })
    }

    /// The reaper's life: sleep until the session's expiry (waking now and then, as the wall
    /// clock may jump, e.g. after a suspend), end it, exit. Returns at once when the session is
    /// already over.
    ///
    /// One reaper per session: a second one (the agent restarted while the first still waits)
    /// exits at once. The reaper leaves the agent's cgroup for one of its own, so that stopping
    /// the agent's service (systemd kills its whole cgroup) does not stop it. A failed end is
    /// tried again, a little later each time.
    pub fn reap(&self, id: &str) -> anyhow::Result<()> {
        let key = uuid::Uuid::parse_str(id)
            .context("a session id is a UUID")?
            .simple()
            .to_string();
        let only = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.state_dir.join(format!("reaper-{key}.lock")))?;
        if !crate::os::files::try_lock(&only) {
            return Ok(());
        }
        if let Some(root) = &self.cgroups {
            let own = root.join(format!("reaper-{key}"));
            let joined = fs::create_dir_all(&own).and_then(|()| {
                fs::write(
                    own.join("cgroup.procs"),
                    format!("{}\n", std::process::id()),
                )
            });
            if let Err(e) = joined {
                tracing::warn!(error = %e, "the reaper stays in the agent's cgroup");
            }
        }
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            let now = Timestamp::now();
            let ledger = match self.read() {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the reaper cannot read the ledger");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                    continue;
                }
            };
            let Some(session) = ledger.into_iter().find(|s| s.id == id) else {
                break;
            };
            if session.ended.is_some() {
                break;
            }
            if now >= session.expires {
                match self.end(id, EndedBy::Reaper, now) {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "the reaper could not end the session yet");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                        continue;
                    }
                }
            }
            let left = session.expires.duration_since(now).unsigned_abs();
            std::thread::sleep(left.min(std::time::Duration::from_secs(5)));
        }
        let _ = fs::remove_file(self.state_dir.join(format!("reaper-{key}.lock")));
        Ok(())
    }
}

/// The sudoers rule of a session: everything, until the expiry (the policy decided; the
/// approval plugin still sees every command).
fn rule_text(s: &AdminSession) -> String {
    format!(
        "# Elevate admin session {} for {}, until {} (managed by elevated; do not edit)\n{}",
        s.id,
        s.user,
        s.expires,
        crate::sudoers::all_until(s.uid, s.expires)
    )
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on
/// hybrid hosts).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// Kills every process in `cgroup` (and in any cgroup under it) and removes it. Returns how
/// many processes were in it. A cgroup that does not exist (never made, or already removed) is
/// fine.
///
/// `cgroup.kill` is written again for as long as anything is left (a sudo allowed a moment
/// before the end may join late), child cgroups are removed deepest first, and the cgroup goes
/// only once it is empty: from then on a late sudo cannot join it and refuses to run. (cgroup
/// v2 does not allow renaming a cgroup out of the way first.)
fn kill_cgroup(cgroup: &Path) -> anyhow::Result<u64> {
    let found = match tree_processes(cgroup) {
        Ok(p) => p.len() as u64,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    for _ in 0..200 {
        let left = tree_processes(cgroup).unwrap_or_default();
        if left.is_empty() {
            match remove_tree(cgroup) {
                Ok(()) => return Ok(found),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
                // Processes that just died may still be leaving.
                Err(_) => {}
            }
        } else {
            // Linux 5.14 and later kill the whole tree, new forks included, with one write.
            let all_at_once = fs::write(cgroup.join("cgroup.kill"), "1").is_ok();
            if !all_at_once {
                for pid in left {
                    crate::os::process::kill_by_pid(pid);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    bail!(
        "processes of {} did not end within 2 s of being killed",
        cgroup.display()
    )
}

/// The pids in `cgroup` and every cgroup under it.
fn tree_processes(cgroup: &Path) -> std::io::Result<Vec<i32>> {
    let mut pids: Vec<i32> = fs::read_to_string(cgroup.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for entry in fs::read_dir(cgroup)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            pids.extend(tree_processes(&entry.path()).unwrap_or_default());
        }
    }
    Ok(pids)
}

/// Removes an empty cgroup and the cgroups under it, deepest first.
fn remove_tree(cgroup: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(cgroup)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    fs::remove_dir(cgroup)
}

/// Starts the reaper of session `id`: `elevated session-reaper`, in a process group of its own
/// and with no terminal or pipes of anyone's, so it outlives the agent. Its exit is awaited so
/// it leaves no zombie behind while the agent lives.
pub fn spawn_reaper(places: &AdminSessions, id: &str) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("/proc/self/exe");
    command
        .arg("--state-dir")
        .arg(&places.state_dir)
        .args(["session-reaper", "--id", id]);
    if let Some(root) = &places.cgroups {
        command.arg("--cgroup-root").arg(root);
    }
    let mut child = command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the session's reaper")?;
    std::thread::Builder::new()
        .name("reaper-wait".into())
        .spawn(move || {
            let _ = child.wait();
        })
        .context("cannot watch the session's reaper")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_rules_carry_a_utc_notafter() {
        let s = AdminSession {
            id: "0192-ab".into(),
            user: "alice".into(),
            uid: 1001,
            starts: "2026-11-27T10:00:00Z".parse().unwrap(),
            expires: "2026-11-27T10:30:05Z".parse().unwrap(),
            rule: "/etc/sudoers.d/elevate-session-0192ab".into(),
            cgroup: "/sys/fs/cgroup/elevate/session-0192ab".into(),
            on_server: false,
            break_glass: false,
            ended: None,
        };
        let text = rule_text(&s);
        assert!(
            text.ends_with(
                "\n#1001 ALL=(ALL:ALL) NOTAFTER=20261127103005Z NOPASSWD: NOSETENV: ALL\n"
            ),
            "{text}"
        );
        assert!(s.is_open_at("2026-11-27T10:30:04Z".parse().unwrap()));
        assert!(!s.is_open_at("2026-11-27T10:30:05Z".parse().unwrap()));
    }

    #[test]
    fn the_cgroup2_mount_is_found_here() {
        // Every supported host has one (this one at /sys/fs/cgroup or .../unified).
        let m = cgroup2_mount().expect("a cgroup2 mount");
        assert!(m.join("cgroup.procs").exists(), "{}", m.display());
    }
}
