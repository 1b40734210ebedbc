//! The agent's shared state, below every stage that serves a caller: its enrolment, key,
//! server, cached policy and spool; the open sessions per user; the sudo commands allowed and
//! not yet ended; what records elevation here (Linux audit included); the device's budget of
//! wrong offline codes. The daemon's loops and each caller's stages use it; it uses neither.
//!
//! Must never: depend on the daemon or on a caller's stages (`session`), or decide anything
//! itself (the stages decide; this keeps what they share).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use elevate_proto::bundle::{parse_public_key, VerifyingKey};
use elevate_proto::ipc::AgentStatus;
use jiff::Timestamp;

use crate::cache::{self, CachedPolicy};
use crate::enrolment::Enrolment;
use crate::packages::DpkgIndex;
use crate::spool::Spool;
use crate::upstream::Upstream;
use crate::users::Caller;

/// Most sessions one user (other than root) may hold at once, so that one user's flood of
/// connections cannot take every session from everyone else. sudo's connections count
/// against the user who ran it (`accounted_uid`).
pub(crate) const MAX_SESSIONS_PER_USER: usize = 32;

/// Open sessions per uid.
#[derive(Debug, Default)]
pub(crate) struct PerUser(std::sync::Mutex<std::collections::HashMap<u32, usize>>);

impl PerUser {
    /// Counts a session for `uid`, or `None` when that user already holds the most allowed.
    pub(crate) fn enter(self: &Arc<Self>, uid: u32) -> Option<UserSlot> {
        let mut open = self.0.lock().expect("per-user lock");
        let n = open.entry(uid).or_default();
        if uid != 0 && *n >= MAX_SESSIONS_PER_USER {
            return None;
        }
        *n += 1;
        Some(UserSlot(self.clone(), uid))
    }
}

/// Whom a connection counts against: its peer's uid, or for a root peer (sudo, setuid
/// programs) the real uid of that process, the user it acts for. Only root's own connections
/// go uncounted, so that no user can hold every session through sudo processes they stop.
pub(crate) fn accounted_uid(cred: &tokio::net::unix::UCred) -> u32 {
    if cred.uid() != 0 {
        return cred.uid();
    }
    cred.pid()
        .and_then(|pid| crate::os::process::real_uid(pid).ok())
        .unwrap_or(0)
}

/// One counted session; uncounted when dropped.
pub(crate) struct UserSlot(Arc<PerUser>, u32);

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.0 .0.lock().expect("per-user lock");
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Where the agent listens and keeps its state.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// How often the policy is fetched again.
    pub refresh: Duration,
    /// The cgroup folder for admin sessions, instead of `elevate` at the top of the cgroup v2
    /// hierarchy (for agents sharing one kernel, such as tests).
    pub cgroup_root: Option<PathBuf>,
    /// Whether to record root commands outside sudo and elevate through Linux audit (where
    /// auditing is on).
    pub linux_audit: bool,
    /// The bound on the audit spool, in bytes.
    pub spool_max: u64,
}

/// The agent's shared state.
#[derive(Debug)]
pub struct Agent {
    pub enrolment: Enrolment,
    pub key: VerifyingKey,
    pub upstream: Upstream,
    pub state_dir: PathBuf,
    pub policy: RwLock<Option<CachedPolicy>>,
    pub packages: Mutex<DpkgIndex>,
    pub spool: Mutex<Spool>,
    pub spool_ready: tokio::sync::Notify,
    pub offline_since: Mutex<Option<Timestamp>>,
    pub group_names: Mutex<crate::users::GroupNames>,
    /// Commands sudo was allowed to run, until the audit plugin reports their end.
    pub(crate) sudo_runs: Mutex<std::collections::HashMap<String, SudoRun>>,
    /// Open sessions per user: connections by uid, and sudo's by the user who ran sudo.
    pub(crate) per_user: Arc<PerUser>,
    /// What records elevation here, as the refresh loop last found it.
    pub(crate) collectors: Mutex<Vec<String>>,
    /// Where admin sessions are kept and enforced.
    pub admin_sessions: crate::grants::AdminSessions,
    /// Held while admin-session ends are reported, so each is reported once.
    pub(crate) session_reports: tokio::sync::Mutex<()>,
    /// Held while a wrong offline code is counted and paid for (its pause): codes typed on
    /// several connections at once are counted and paused one after another.
    pub(crate) wrong_codes: tokio::sync::Mutex<()>,
    /// Standing admin rights: taken away in enforce mode, given back outside it.
    pub rights: crate::rights::Rights,
    /// The Linux audit collector: whether it is wanted, and its status line once tried.
    pub(crate) linux_audit: Mutex<LinuxAudit>,
    /// Standing-rights alerts already raised (each distinct problem once).
    pub(crate) rights_alerts: Mutex<std::collections::HashSet<String>>,
    /// The human logins the server last accepted at check-in (sent again when they change).
    pub(crate) reported_users: Mutex<Option<Vec<(u32, String)>>>,
    /// Commands sudo was just allowed to run (uid, path, when): Linux audit sees their
    /// execution too, and leaves it to the sudo plugin's record.
    front_door_execs: Mutex<std::collections::VecDeque<(u32, String, std::time::Instant)>>,
}

#[derive(Debug, Default)]
pub(crate) enum LinuxAudit {
    #[default]
    NotWanted,
    Off(String),
    On(String, LinuxAuditRunning),
}

impl Agent {
    /// Loads enrolment, key, cached policy and spool from `state_dir`.
    pub fn load(state_dir: &Path) -> anyhow::Result<Agent> {
        let enrolment = Enrolment::load(state_dir)?;
        enrolment.transport()?;
        let key = parse_public_key(&enrolment.policy_key)
            .context("the pinned policy key is damaged; enrol the device again")?;
        let policy = match cache::load(state_dir, &key) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the cached policy is refused; waiting for a fresh one");
                None
            }
        };
        let spool = Spool::open(&state_dir.join("spool"))
            .with_context(|| format!("cannot open the audit spool in {}", state_dir.display()))?;
        Ok(Agent {
            upstream: Upstream::new(
                &enrolment.server,
                &enrolment.credential,
                enrolment.ca_pem.as_deref(),
            )?,
            enrolment,
            key,
            state_dir: state_dir.to_path_buf(),
            policy: RwLock::new(policy),
            packages: Mutex::new(DpkgIndex::system()),
            spool: Mutex::new(spool),
            spool_ready: tokio::sync::Notify::new(),
            offline_since: Mutex::new(None),
            group_names: Mutex::default(),
            sudo_runs: Mutex::default(),
            per_user: Arc::default(),
            collectors: Mutex::default(),
            admin_sessions: crate::grants::AdminSessions::system(state_dir),
            session_reports: tokio::sync::Mutex::new(()),
            wrong_codes: tokio::sync::Mutex::new(()),
            rights: crate::rights::Rights::system(state_dir),
            linux_audit: Mutex::default(),
            rights_alerts: Mutex::default(),
            reported_users: Mutex::default(),
            front_door_execs: Mutex::default(),
        })
    }

    /// Sets the audit spool's bound (`elevated run --spool-max`).
    pub fn set_spool_bound(&mut self, max_bytes: u64) {
        let actor = format!("agent@{}", self.enrolment.name);
        self.spool
            .get_mut()
            .expect("spool lock")
            .set_limit(max_bytes, &actor);
    }

    /// What records elevation here, and whether it is on.
    /// Worked out by the refresh loop (it runs `sudo -V` and hashes the plugin: too much to do
    /// for every `elevate status` any user may send).
    fn collectors(&self) -> Vec<String> {
        self.collectors.lock().expect("collectors lock").clone()
    }

    pub(crate) fn work_out_collectors(
        &self,
        sudo_check: Option<&Result<(), String>>,
    ) -> Vec<String> {
        let host_sudo = || crate::sudo_setup::host_sudo(Path::new("/usr/bin/sudo"));
        let installed = crate::sudo_setup::installed(&self.state_dir);
        let sudo = match (installed, sudo_check) {
            (None, _) if matches!(host_sudo(), crate::sudo_setup::Flavour::SudoRs { .. }) => {
                "sudo plugin: impossible here (this host's sudo is sudo-rs, which ignores plugins; use elevate)"
                    .to_owned()
            }
            (None, _) | (Some(_), None) => {
                "sudo plugin: off (run `elevated install-sudo` to route sudo through Elevate)"
                    .to_owned()
            }
            (Some(installed), Some(checked)) => match checked {
                Ok(()) => format!(
                    "sudo plugin: on ({}; approvals, exit statuses, discovery)",
                    installed.sudo_conf.display()
                ),
                Err(what) => format!("sudo plugin: NOT WORKING ({what})"),
            },
        };
        vec![
            "elevate: on (this socket)".to_owned(),
            sudo,
            format!(
                "Linux audit (root commands outside sudo and elevate): {}",
                match &*self.linux_audit.lock().expect("linux audit lock") {
                    LinuxAudit::NotWanted => "off (the agent runs with --linux-audit off)",
                    LinuxAudit::Off(why) | LinuxAudit::On(why, _) => why,
                }
            ),
        ]
    }

    /// Why the cached policy may no longer pre-approve anything, if so: it was signed longer
    /// ago than its `offline_max_age` (the server has not been reached since).
    pub(crate) fn stale_policy(&self, policy: &CachedPolicy) -> Option<String> {
        let max = policy.policy.offline_max_age()?;
        let age = Timestamp::now().duration_since(policy.fetched_at);
        (age > max).then(|| {
            format!(
                "the policy on this device was signed {} ago, longer than the {} it may be used without the server, so it pre-approves nothing: an approver (or, offline, the helpdesk's code) must allow this",
                elevate_core::duration::format(age),
                elevate_core::duration::format(max)
            )
        })
    }

    /// The policy's view of `caller` on this device.
    pub fn subject(&self, caller: &crate::users::Caller) -> elevate_core::Subject {
        elevate_core::Subject {
            user: caller.name.clone(),
            uid: caller.uid,
            groups: caller.groups.clone(),
            device: self.enrolment.name.clone(),
            device_tags: self.enrolment.tags.clone(),
        }
    }

    /// Remembers that a front door let `uid` run `path` (for a few seconds).
    pub(crate) fn note_front_door_exec(&self, uid: u32, path: &str) {
        let mut recent = self.front_door_execs.lock().expect("front door lock");
        recent.retain(|(_, _, at)| at.elapsed() < FRONT_DOOR_MEMORY);
        if recent.len() >= 256 {
            recent.pop_front();
        }
        recent.push_back((uid, path.to_owned(), std::time::Instant::now()));
    }

    /// Whether a front door just let `uid` run `path` (each allowance matches one execution).
    pub(crate) fn take_front_door_exec(&self, uid: u32, path: &str) -> bool {
        let mut recent = self.front_door_execs.lock().expect("front door lock");
        recent.retain(|(_, _, at)| at.elapsed() < FRONT_DOOR_MEMORY);
        match recent.iter().position(|(u, p, _)| *u == uid && p == path) {
            Some(i) => {
                recent.remove(i);
                true
            }
            None => false,
        }
    }

    /// Who a uid is (group names cached; membership fresh). Admin groups the agent took away
    /// still count as the user's for the policy: a wave defined by group `sudo` keeps its
    /// members after their standing membership is revoked.
    pub fn caller(&self, uid: u32) -> anyhow::Result<crate::users::Caller> {
        let mut caller =
            crate::users::lookup(uid, &mut self.group_names.lock().expect("group names lock"))?;
        for group in self.rights.revoked_groups(&caller.name, caller.uid) {
            if !caller.groups.contains(&group) {
                caller.groups.push(group);
            }
        }
        // The frequency segment the server measured for this login, told to the policy as a
        // group no real group can be (a group's name holds no `:`).
        use elevate_core::policy::SEGMENT_GROUP;
        caller.groups.retain(|g| !g.starts_with(SEGMENT_GROUP));
        if let Some(p) = self.policy.read().expect("policy lock").as_ref() {
            if let Some(segment) = p.segments.get(&caller.name) {
                caller.groups.push(format!("{SEGMENT_GROUP}{segment}"));
            }
        }
        Ok(caller)
    }

    pub fn status(&self) -> AgentStatus {
        let offline = *self.offline_since.lock().expect("offline lock");
        let usage = self.spool.lock().expect("spool lock").usage();
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            device: self.enrolment.name.clone(),
            server: match self.enrolment.transport() {
                Ok(crate::enrolment::Transport::InsecureHttp) => format!(
                    "{} (plain http, allowed by --insecure-http: the credential crosses the network in clear)",
                    self.enrolment.server
                ),
                _ => self.enrolment.server.clone(),
            },
            upstream: {
                let state = match offline {
                    None => "online".to_owned(),
                    Some(t) => format!("offline since {t}"),
                };
                match offline_failures(&self.state_dir) {
                    0 => state,
                    n if n >= OFFLINE_BUDGET => format!(
                        "{state}; helpdesk codes are OFF after {n} wrong ones, until the server is reached"
                    ),
                    n => format!(
                        "{state}; {n} wrong helpdesk codes of {} allowed until the server is reached",
                        OFFLINE_BUDGET
                    ),
                }
            },
            policy_version: self
                .policy
                .read()
                .expect("policy lock")
                .as_ref()
                .map(|p| p.version),
            spooled_events: usage.events,
            open_requests: None,
            collectors: self.collectors(),
            admin_sessions: Vec::new(),
            standing_rights: None,
            spool: spool_line(usage),
        }
    }

    pub(crate) fn mark_online(&self, online: bool) {
        if online {
            // The helpdesk's codes may be tried again, from a fresh budget.
            if let Err(e) = reset_offline_failures(&self.state_dir) {
                tracing::error!(error = %format!("{e:#}"), "cannot reset the offline-code budget");
            }
        }
        let mut since = self.offline_since.lock().expect("offline lock");
        match (online, since.is_some()) {
            (true, true) => {
                tracing::info!("the server is reachable again");
                *since = None;
            }
            (false, false) => {
                tracing::warn!("the server cannot be reached; working offline");
                *since = Some(Timestamp::now());
            }
            _ => {}
        }
    }
}

/// What `elevate status` says of the spool: nothing while it is far from its bound.
pub(crate) fn spool_line(u: crate::spool::Usage) -> Option<String> {
    const MIB: u64 = 1024 * 1024;
    let near = u.bytes >= u.max_bytes / 2;
    (near || u.summarised > 0).then(|| {
        let mut line = format!(
            "{:.1} MiB of its {} MiB bound in use",
            u.bytes as f64 / MIB as f64,
            u.max_bytes / MIB
        );
        if u.summarised > 0 {
            line += &format!(
                "; {} discovery events were summarised to stay within it",
                u.summarised
            );
        }
        if u.bytes >= u.max_bytes {
            line += "; FULL: elevation is refused until the server confirms events";
        }
        line
    })
}

/// How long an allowance through a front door is matched against Linux audit's records.
const FRONT_DOOR_MEMORY: Duration = Duration::from_secs(10);

/// A command sudo was allowed to run, until the audit plugin reports its end.
#[derive(Debug)]
pub(crate) struct SudoRun {
    pub caller: Caller,
    pub record: Record,
    pub allowed_at: Instant,
    /// The sudo process: once it is gone without a report (`kill -9`), nothing will come.
    pub sudo: crate::os::process::PeerProcess,
    /// In discovery mode: the facts of the command, completed by its end into one
    /// `discovery.command` event.
    pub discovery: Option<serde_json::Value>,
    /// The admin session this command (a root shell) opened: it ends when the shell does.
    pub ends_session: Option<String>,
}

/// Most commands remembered between `Allowed` and their end (a `kill -9`'d sudo never reports).
const MAX_SUDO_RUNS: usize = 4096;
/// From this many on, each new one first drops those whose sudo is gone (each holds a pidfd).
const PRUNE_SUDO_RUNS_FROM: usize = 64;

pub(crate) fn remember_sudo_run(
    agent: &Agent,
    id: &str,
    caller: &Caller,
    record: Record,
    sudo: crate::os::process::PeerProcess,
    discovery: Option<serde_json::Value>,
) {
    let mut runs = agent.sudo_runs.lock().expect("sudo runs lock");
    if runs.len() >= PRUNE_SUDO_RUNS_FROM {
        // Those whose sudo is gone without a report hold a descriptor for nothing.
        runs.retain(|_, r| r.sudo.still_there());
    }
    if runs.len() >= MAX_SUDO_RUNS {
        // Then the oldest half: their ends are recorded without the agent's memory.
        let mut ages: Vec<Instant> = runs.values().map(|r| r.allowed_at).collect();
        ages.sort();
        let cut = ages[ages.len() / 2];
        runs.retain(|_, r| r.allowed_at > cut);
    }
    runs.insert(
        id.to_owned(),
        SudoRun {
            caller: caller.clone(),
            record,
            allowed_at: Instant::now(),
            sudo,
            discovery,
            ends_session: None,
        },
    );
}

/// Ties the admin session `session` to the sudo command `id` (the shell that opened it).
pub(crate) fn end_session_with(agent: &Agent, id: &str, session: &str) {
    if let Some(run) = agent.sudo_runs.lock().expect("sudo runs lock").get_mut(id) {
        run.ends_session = Some(session.to_owned());
    }
}

/// Who keeps the request's record: the agent's spool (decided here; the start is spooled with
/// the decision) or the server.
#[derive(Debug)]
pub(crate) enum Record {
    Local,
    Server,
}

/// Wrong codes the device takes, across all challenges, before offline codes are off until the
/// server is reached again.
pub(crate) const OFFLINE_BUDGET: u32 = 10;
const FAILURES: &str = "offline-failures";

/// Wrong codes since the server was last reached (kept on disk: a restart does not reset it).
pub(crate) fn offline_failures(state_dir: &std::path::Path) -> u32 {
    std::fs::read_to_string(state_dir.join(FAILURES))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

pub(crate) fn set_offline_failures(state_dir: &std::path::Path, n: u32) -> anyhow::Result<()> {
    crate::state_file::replace(
        &state_dir.join(FAILURES),
        format!("{n}\n").as_bytes(),
        0o600,
    )
}

/// Lets the helpdesk's offline codes be tried again (the server was reached).
pub(crate) fn reset_offline_failures(state_dir: &std::path::Path) -> anyhow::Result<()> {
    if offline_failures(state_dir) > 0 {
        set_offline_failures(state_dir, 0)?;
    }
    Ok(())
}

/// An audit event the agent itself raises about the device.
pub(crate) fn agent_event(
    agent: &Agent,
    action: &str,
    data: serde_json::Value,
) -> elevate_proto::v1::AuditEventIn {
    elevate_proto::v1::AuditEventIn {
        id: uuid::Uuid::now_v7().to_string(),
        at: Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("valid time"),
        actor: format!("agent@{}", agent.enrolment.name),
        action: action.into(),
        subject: format!("device:{}", agent.enrolment.name),
        data,
    }
}

/// The Linux audit collector's reader, while it runs.
#[derive(Debug, Clone, Default)]
pub struct LinuxAuditRunning(pub(crate) Arc<std::sync::atomic::AtomicBool>);

impl LinuxAuditRunning {
    pub fn alive(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
