//! The agent process: load the enrolment and the cached policy, listen on the socket, keep the
//! policy fresh and the spool delivered in the background, and serve each caller in a task.
//!
//! Must never: start serving without an enrolment (it exits saying how to enrol), or make the
//! socket reachable before its permissions are set.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use elevate_proto::bundle::{parse_public_key, VerifyingKey};
use elevate_proto::ipc::AgentStatus;
use elevate_proto::limits;
use elevate_proto::v1::AuditEventIn;
use jiff::Timestamp;
use tokio::net::UnixListener;

use crate::cache::{self, CachedPolicy};
use crate::enrolment::Enrolment;
use crate::packages::DpkgIndex;
use crate::spool::Spool;
use crate::upstream::{Upstream, UpstreamError};

/// Most callers served at once (each holds a few descriptors).
const MAX_SESSIONS: usize = 256;
/// Most sessions one user (other than root) may hold at once, so that one user's flood of
/// connections cannot take every session from everyone else. sudo's connections count
/// against the user who ran it (`accounted_uid`).
const MAX_SESSIONS_PER_USER: usize = 32;

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
fn accounted_uid(cred: &tokio::net::unix::UCred) -> u32 {
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
    pub(crate) sudo_runs: Mutex<std::collections::HashMap<String, crate::session::SudoRun>>,
    /// Open sessions per user: connections by uid, and sudo's by the user who ran sudo.
    pub(crate) per_user: Arc<PerUser>,
    /// What records elevation here, as the refresh loop last found it.
    collectors: Mutex<Vec<String>>,
    /// Where admin sessions are kept and enforced.
    pub places: crate::grants::Places,
    /// Held while admin-session ends are reported, so each is reported once.
    pub(crate) session_reports: tokio::sync::Mutex<()>,
    /// Held while a wrong offline code is counted and paid for (its pause): codes typed on
    /// several connections at once are counted and paused one after another.
    pub(crate) wrong_codes: tokio::sync::Mutex<()>,
    /// Standing admin rights: taken away in enforce mode, given back outside it.
    pub rights: crate::rights::Rights,
    /// The Linux audit collector: whether it is wanted, and its status line once tried.
    linux_audit: Mutex<LinuxAudit>,
    /// Standing-rights alerts already raised (each distinct problem once).
    rights_alerts: Mutex<std::collections::HashSet<String>>,
    /// Commands sudo was just allowed to run (uid, path, when): Linux audit sees their
    /// execution too, and leaves it to the sudo plugin's record.
    front_door_execs: Mutex<std::collections::VecDeque<(u32, String, std::time::Instant)>>,
}

#[derive(Debug, Default)]
enum LinuxAudit {
    #[default]
    NotWanted,
    Off(String),
    On(String, crate::linux_audit::Running),
}

impl Agent {
    /// Loads enrolment, key, cached policy and spool from `state_dir`.
    pub fn load(state_dir: &Path) -> anyhow::Result<Agent> {
        let enrolment = Enrolment::load(state_dir)?;
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
            upstream: Upstream::new(&enrolment.server, &enrolment.credential),
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
            places: crate::grants::Places::system(state_dir),
            session_reports: tokio::sync::Mutex::new(()),
            wrong_codes: tokio::sync::Mutex::new(()),
            rights: crate::rights::Rights::system(state_dir),
            linux_audit: Mutex::default(),
            rights_alerts: Mutex::default(),
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

    fn work_out_collectors(&self, sudo_check: Option<&Result<(), String>>) -> Vec<String> {
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
        Ok(caller)
    }

    pub fn status(&self) -> AgentStatus {
        let offline = *self.offline_since.lock().expect("offline lock");
        let usage = self.spool.lock().expect("spool lock").usage();
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            device: self.enrolment.name.clone(),
            server: self.enrolment.server.clone(),
            upstream: {
                let state = match offline {
                    None => "online".to_owned(),
                    Some(t) => format!("offline since {t}"),
                };
                match crate::session::offline_failures(&self.state_dir) {
                    0 => state,
                    n if n >= crate::session::OFFLINE_BUDGET => format!(
                        "{state}; helpdesk codes are OFF after {n} wrong ones, until the server is reached"
                    ),
                    n => format!(
                        "{state}; {n} wrong helpdesk codes of {} allowed until the server is reached",
                        crate::session::OFFLINE_BUDGET
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
            if let Err(e) = crate::session::reset_offline_failures(&self.state_dir) {
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

    /// Fetches, verifies and installs the current policy.
    pub async fn refresh_policy(&self) -> anyhow::Result<u64> {
        let bundle = self.upstream.bundle().await;
        self.mark_online(!matches!(
            bundle,
            Err(crate::upstream::UpstreamError::Unreachable { .. })
        ));
        let bundle = bundle?;
        let current = self
            .policy
            .read()
            .expect("policy lock")
            .as_ref()
            .map(|p| p.version);
        let fresh = cache::store(&self.state_dir, &self.key, &bundle, current)?;
        let version = fresh.version;
        if current != Some(version) {
            tracing::info!(version, "policy installed");
        }
        *self.policy.write().expect("policy lock") = Some(fresh);
        Ok(version)
    }

    /// Sends spooled events until the spool is empty or the server stops answering.
    pub async fn deliver(&self) -> anyhow::Result<u64> {
        let mut sent = 0;
        loop {
            let next = self.spool.lock().expect("spool lock").next_batch()?;
            let Some((batch, events)) = next else {
                return Ok(sent);
            };
            let count = events.len();
            let refused = self.send_batch(events).await?;
            let mut spool = self.spool.lock().expect("spool lock");
            let kept_as = spool.set_aside(&batch, count, &refused_events(&refused))?;
            // Told once per batch; an alert about refused alerts would only beget another.
            if refused.iter().any(|r| r.event.action != "spool.rejected") {
                let alert = agent_event(self, "spool.rejected", rejected_alert(&refused, kept_as));
                if let Err(e) = spool.append_record(&[alert]) {
                    tracing::error!(error = %e, "cannot spool the rejected-events alert");
                }
            }
            sent += (count - refused.len()) as u64;
        }
    }

    /// Offers one batch's events to the server in calls of at most `limits::BATCH_BYTES`; a
    /// call the server refuses is split in halves until the event it refuses is alone, so one
    /// event never holds back the others. Returns the events refused for good; an error when
    /// the server could not be asked (the whole batch is offered again later: the server
    /// stores each event once).
    async fn send_batch(&self, events: Vec<AuditEventIn>) -> anyhow::Result<Vec<Refused>> {
        let mut refused = Vec::new();
        let mut calls: std::collections::VecDeque<Vec<AuditEventIn>> = calls(events).into();
        while let Some(call) = calls.pop_front() {
            let answer = self.upstream.ingest(&call).await;
            self.mark_online(!matches!(answer, Err(UpstreamError::Unreachable { .. })));
            let (status, code, message) = match answer {
                Ok(_) => continue,
                Err(UpstreamError::Refused {
                    status,
                    code,
                    message,
                }) if refuses_the_events(status, &code) => (status, code, message),
                Err(e) => return Err(e.into()),
            };
            if call.len() > 1 {
                let mut first = call;
                let second = first.split_off(first.len() / 2);
                calls.push_front(second);
                calls.push_front(first);
                continue;
            }
            tracing::error!(status, %message, "the server refused an audit event; kept aside as rejected");
            refused.extend(call.into_iter().map(|event| Refused {
                event,
                status,
                code: code.clone(),
                message: message.clone(),
            }));
        }
        Ok(refused)
    }
}

/// An event the server will never take, and its word why.
#[derive(Debug)]
struct Refused {
    event: AuditEventIn,
    status: u16,
    code: String,
    message: String,
}

fn refused_events(refused: &[Refused]) -> Vec<AuditEventIn> {
    refused.iter().map(|r| r.event.clone()).collect()
}

/// Whether a refusal is about the events sent (split the call, and set a lone event aside)
/// rather than the way there: the server's own 400, 403 or 422, or a body too large for
/// anything on the way (a lone bounded event that is still too large never will pass).
/// Timeouts, 5xx and a proxy's other pages are retried.
fn refuses_the_events(status: u16, code: &str) -> bool {
    status == 413 || (matches!(status, 400 | 403 | 422) && code != "http")
}

/// The events of a batch in calls of at most `limits::BATCH_BYTES` bytes and
/// `limits::MAX_BATCH_EVENTS` events (one event alone may be up to `limits::MAX_EVENT`).
fn calls(events: Vec<AuditEventIn>) -> Vec<Vec<AuditEventIn>> {
    let mut calls: Vec<Vec<AuditEventIn>> = Vec::new();
    let mut used = 0;
    for event in events {
        let size = serde_json::to_vec(&event).map_or(usize::MAX, |v| v.len()) + 1;
        match calls.last_mut() {
            Some(call)
                if used + size <= limits::BATCH_BYTES && call.len() < limits::MAX_BATCH_EVENTS =>
            {
                used += size;
                call.push(event);
            }
            _ => {
                used = size;
                calls.push(vec![event]);
            }
        }
    }
    calls
}

/// The `spool.rejected` alert: which events the server refused and what it said (a few named,
/// all counted).
fn rejected_alert(refused: &[Refused], kept_as: Option<String>) -> serde_json::Value {
    let named: Vec<serde_json::Value> = refused
        .iter()
        .take(20)
        .map(|r| {
            serde_json::json!({ "id": r.event.id, "action": r.event.action, "status": r.status,
                "code": r.code, "message": r.message })
        })
        .collect();
    serde_json::json!({ "alert": true, "events": refused.len(), "refused": named,
        "kept_as": kept_as,
        "message": "the server refused these events for good; they are kept on the device, and every other event was delivered" })
}

async fn refresh_loop(agent: Arc<Agent>, every: Duration) {
    let mut sudo_conf: Result<(), String> = Ok(());
    loop {
        // First, so the status is right from the start even when the server is slow.
        start_linux_audit(&agent);
        watch_sudo_conf(&agent, &mut sudo_conf);
        sweep_admin_sessions(&agent, crate::grants::EndedBy::Expiry).await;
        if let Err(e) = agent.refresh_policy().await {
            tracing::warn!(error = %format!("{e:#}"), "policy refresh failed; keeping the cached policy");
        }
        crate::session::end_disallowed(&agent).await;
        reconcile_rights(&agent).await;
        tokio::time::sleep(every).await;
    }
}

/// Starts the Linux audit collector when it is wanted and not running yet (auditing may be
/// switched on after the agent started).
fn start_linux_audit(agent: &Arc<Agent>) {
    let mut state = agent.linux_audit.lock().expect("linux audit lock");
    // A running collector must still have its reader and its kernel rule (an audit daemon's
    // restart deletes rules); if not, it is off until it can start again.
    if let LinuxAudit::On(text, running) = &mut *state {
        if !running.alive() {
            tracing::error!("the Linux audit reader stopped; starting it again");
            *state = LinuxAudit::Off("off (the reader stopped; starting again)".into());
        } else {
            // The reader stays (a second one would record everything twice); the status says
            // what is wrong until the rule is back.
            *text = match crate::linux_audit::ensure_rules() {
                Ok(()) => crate::linux_audit::ON.to_owned(),
                Err(why) => {
                    format!("NOT WORKING: the kernel rule is gone and cannot be added back ({why})")
                }
            };
        }
    }
    if matches!(*state, LinuxAudit::Off(_)) {
        *state = match crate::linux_audit::start(agent.clone()) {
            Ok((on, running)) => {
                tracing::info!("recording root commands outside sudo through Linux audit");
                LinuxAudit::On(on, running)
            }
            Err(off) => LinuxAudit::Off(off),
        };
    }
}

/// Takes standing admin rights from people the policy puts in enforce mode and gives them back
/// to people it no longer does; each change is spooled before it is made. What cannot be done
/// is raised as an alert (once for each distinct problem).
async fn reconcile_rights(agent: &Arc<Agent>) {
    let policy = agent.policy.read().expect("policy lock").clone();
    let worker = agent.clone();
    let done = tokio::task::spawn_blocking(move || {
        let agent = worker;
        let mut names = crate::users::GroupNames::default();
        let subject = |user: &str, taken: Vec<String>| {
            let found = nix::unistd::User::from_name(user).ok().flatten()?;
            let mut who = crate::users::lookup(found.uid.as_raw(), &mut names).ok()?;
            for g in taken {
                if !who.groups.contains(&g) {
                    who.groups.push(g);
                }
            }
            Some(elevate_core::Subject {
                user: who.name,
                uid: who.uid,
                groups: who.groups,
                device: agent.enrolment.name.clone(),
                device_tags: agent.enrolment.tags.clone(),
            })
        };
        let subject = std::cell::RefCell::new(subject);
        // Asked afresh each time (it runs `sudo -V`): the managed rule is written only while
        // the approval plugin really gates sudo.
        let plugin_works =
            || crate::sudo_setup::installed(&agent.state_dir).is_some_and(|i| i.check().is_ok());
        let mut before = |action: &str, data: serde_json::Value| -> anyhow::Result<()> {
            agent
                .spool
                .lock()
                .expect("spool lock")
                .append(&[agent_event(&agent, action, data)])
                .context("cannot record the change in the audit spool")?;
            agent.spool_ready.notify_one();
            Ok(())
        };
        let changes = agent.rights.reconcile(
            policy.as_ref().map(|p| p.policy.as_ref()),
            &|u, t| (subject.borrow_mut())(u, t),
            &plugin_works,
            &mut before,
        );
        (agent, changes)
    })
    .await;
    let (agent, changes) = match done {
        Ok(d) => d,
        Err(e) => return tracing::error!(error = %e, "the standing-rights check failed"),
    };
    use crate::rights::Change;
    let mut raised = agent.rights_alerts.lock().expect("alerts lock");
    for change in changes {
        let (action, data) = match change {
            Change::Failed { user, right, error } => (
                "rights.failed",
                serde_json::json!({ "user": user, "right": right,
                    "described": right.describe(), "error": error }),
            ),
            Change::Unmanageable { user, right } => (
                "rights.unmanageable",
                serde_json::json!({ "user": user, "right": right, "described": right.describe(),
                    "error": "a standing admin right in enforce mode that Elevate cannot take away; remove or split it by hand" }),
            ),
            Change::NotRestored { user, right, why } => (
                "rights.not_restored",
                serde_json::json!({ "user": user, "right": right,
                    "described": right.describe(), "error": why }),
            ),
            Change::GroupStillHeld {
                user,
                group,
                processes,
            } => (
                "rights.group_still_held",
                serde_json::json!({ "user": user, "group": group, "processes": processes,
                    "error": format!("{processes} processes of {user} started before keep group {group} until they end; `elevated rights --end-sessions {user}` ends them") }),
            ),
            Change::Error { what } => ("rights.check_failed", serde_json::json!({ "error": what })),
            Change::Revoked { .. } | Change::Restored { .. } | Change::ManagedRule { .. } => {
                continue
            }
        };
        let key = format!("{action} {data}");
        if raised.contains(&key) {
            continue;
        }
        if raised.len() > 1024 {
            raised.clear();
        }
        raised.insert(key);
        tracing::error!(%action, %data, "standing rights need a person");
        let mut data = data;
        data["alert"] = true.into();
        let event = agent_event(&agent, action, data);
        if let Err(e) = agent
            .spool
            .lock()
            .expect("spool lock")
            .append_record(&[event])
        {
            tracing::error!(error = %e, "cannot spool a rights alert");
        }
        agent.spool_ready.notify_one();
    }
}

/// An audit event the agent itself raises about the device.
fn agent_event(
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

/// Ends admin sessions past their expiry (and removes session rules nobody accounts for), then
/// reports every recorded end, whoever ended it.
pub(crate) async fn sweep_admin_sessions(agent: &Arc<Agent>, by: crate::grants::EndedBy) {
    let places = agent.places.clone();
    let swept = tokio::task::spawn_blocking(move || {
        // A ledger that cannot be read accounts for nothing: it is set aside (kept for a
        // person), and the sweep then removes every session rule and cgroup.
        let aside = places
            .read()
            .err()
            .map(|e| (format!("{e:#}"), places.set_aside_damaged()));
        (aside, places.sweep(Timestamp::now(), by))
    })
    .await;
    let swept = match swept {
        Ok((aside, swept)) => {
            if let Some((damage, moved)) = aside {
                let moved = match moved {
                    Ok(path) => path.display().to_string(),
                    Err(e) => format!("could not be moved aside: {e:#}"),
                };
                tracing::error!(%damage, %moved, "the admin-session ledger was damaged; every session rule is removed");
                let data =
                    serde_json::json!({ "error": damage, "set_aside": moved, "alert": true });
                if let Err(e) = agent
                    .spool
                    .lock()
                    .expect("spool lock")
                    .append_record(&[agent_event(agent, "session.ledger_damaged", data)])
                {
                    tracing::error!(error = %e, "cannot spool the ledger alert");
                }
                agent.spool_ready.notify_one();
            }
            Ok(swept)
        }
        Err(e) => Err(e),
    };
    match swept {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "cannot end expired admin sessions")
        }
        Err(e) => tracing::error!(error = %e, "the admin-session sweep failed"),
    }
    crate::session::report_ends(agent).await;
}

/// Ends admin session `id` at `expires` while the agent lives (its reaper does the same if the
/// agent is gone by then).
pub(crate) fn end_on_time(agent: Arc<Agent>, expires: Timestamp) {
    tokio::spawn(async move {
        let left = expires.duration_since(Timestamp::now());
        if left.is_positive() {
            tokio::time::sleep(left.unsigned_abs()).await;
        }
        sweep_admin_sessions(&agent, crate::grants::EndedBy::Expiry).await;
    });
}

/// After `install-sudo`, the plugin lines must stay in sudo.conf: their disappearance (someone
/// editing sudo out of Elevate's hands) is raised as an audit event, and so is their return.
fn watch_sudo_conf(agent: &Agent, last: &mut Result<(), String>) {
    let installed = crate::sudo_setup::installed(&agent.state_dir);
    let checked = installed.as_ref().map(|i| i.check());
    *agent.collectors.lock().expect("collectors lock") =
        agent.work_out_collectors(checked.as_ref());
    let (Some(installed), Some(checked)) = (installed, checked) else {
        return;
    };
    let conf = &installed.sudo_conf;
    // Any change is raised: broken, restored, or broken differently.
    if checked == *last {
        return;
    }
    *last = checked.clone();
    let intact = checked.is_ok();
    let (action, message) = match checked {
        Ok(()) => (
            "sudo.plugin_restored",
            format!("{} routes sudo through Elevate again", conf.display()),
        ),
        Err(what) => {
            tracing::error!(sudo_conf = %conf.display(), %what, "sudo may no longer ask Elevate");
            (
                "sudo.plugin_removed",
                format!("{what}: sudo may no longer ask Elevate"),
            )
        }
    };
    let event = elevate_proto::v1::AuditEventIn {
        id: uuid::Uuid::now_v7().to_string(),
        at: Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("valid time"),
        actor: format!("agent@{}", agent.enrolment.name),
        action: action.into(),
        subject: format!("device:{}", agent.enrolment.name),
        data: serde_json::json!({ "sudo_conf": conf.display().to_string(), "message": message, "alert": !intact }),
    };
    let spooled = agent
        .spool
        .lock()
        .expect("spool lock")
        .append_record(&[event]);
    match spooled {
        Ok(()) => agent.spool_ready.notify_one(),
        Err(e) => tracing::error!(error = %e, "cannot spool the sudo.conf alert"),
    }
}

/// What `elevate status` says of the spool: nothing while it is far from its bound.
fn spool_line(u: crate::spool::Usage) -> Option<String> {
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

/// How long the sender waits after the first new event before sending: a burst of commands
/// becomes one batch (one request to the server, one spool file) instead of one each.
const LINGER: Duration = Duration::from_millis(200);

async fn deliver_loop(agent: Arc<Agent>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        tokio::time::sleep(LINGER).await;
        if let Err(e) = agent.spool.lock().expect("spool lock").flush() {
            tracing::error!(error = %e, "cannot flush the audit spool");
        }
        let delivered = agent.deliver().await;
        crate::os::memory::release_free_memory();
        match delivered {
            Ok(_) => {
                backoff = Duration::from_secs(1);
                let _ = tokio::time::timeout(Duration::from_secs(30), agent.spool_ready.notified())
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "audit delivery failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// How long an allowance through a front door is matched against Linux audit's records.
const FRONT_DOOR_MEMORY: Duration = Duration::from_secs(10);

/// Refusals answered at once; more are closed without a word.
const MAX_REFUSALS: usize = 64;
/// How long a refused caller has to send its request before the connection is closed.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// Tells a caller that is not served why. The reply goes out first; what the caller sent is
/// then read and dropped until it closes (at most `REFUSAL_GRACE`), because closing a Unix
/// socket with unread data makes the caller's side fail before it reads the reply.
fn refuse(
    mut conn: tokio::net::UnixStream,
    message: String,
    refusals: &Arc<tokio::sync::Semaphore>,
) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let frame = elevate_proto::ipc::AgentFrame::Error {
            code: "busy".into(),
            message,
        };
        let _ = tokio::time::timeout(REFUSAL_GRACE, async {
            conn.write_all(&elevate_proto::ipc::encode(&frame)).await?;
            let mut sink = [0u8; 4096];
            while conn.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
        drop(permit);
    });
}

/// Binds the socket: a stale socket file is replaced; the folder is 0755, the socket 0666 (every
/// local user may ask; who they are comes from the kernel).
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            anyhow::bail!(
                "{} exists and is not a socket; remove it or choose another --socket",
                path.display()
            );
        }
    }
    // Bind under a private name, open it up, then move it into place.
    let staging = path.with_extension("binding");
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)
        .with_context(|| format!("cannot listen on {}", staging.display()))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o666))?;
    std::fs::rename(&staging, path)?;
    Ok(listener)
}

/// Runs the agent until the process is stopped.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let mut agent = Agent::load(&config.state_dir)?;
    agent.set_spool_bound(config.spool_max);
    if let Some(root) = config.cgroup_root {
        agent.places.cgroups = Some(root);
    }
    if config.linux_audit {
        *agent.linux_audit.lock().expect("linux audit lock") =
            LinuxAudit::Off("off (not started yet)".into());
    }
    let agent = Arc::new(agent);
    let listener = bind(&config.socket)?;
    // Read dpkg's database once before serving (on this thread: a helper thread would keep a
    // malloc arena of its own for the agent's lifetime).
    let _warm = agent
        .packages
        .lock()
        .expect("packages lock")
        .owner("/usr/bin/true");
    // Admin sessions that ran out while the agent was down (or the machine was off) end now;
    // those still open get their reaper and timer back.
    sweep_admin_sessions(&agent, crate::grants::EndedBy::StartSweep).await;
    match agent.places.read() {
        Ok(ledger) => {
            for s in ledger.iter().filter(|s| s.is_open_at(Timestamp::now())) {
                if let Err(e) = crate::grants::spawn_reaper(&agent.places, &s.id) {
                    tracing::error!(error = %format!("{e:#}"), session = %s.id, "cannot restart a session's reaper");
                }
                end_on_time(agent.clone(), s.expires);
            }
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot read the admin-session ledger")
        }
    }
    tokio::spawn(refresh_loop(agent.clone(), config.refresh));
    tokio::spawn(deliver_loop(agent.clone()));
    tracing::info!(socket = %config.socket.display(), device = %agent.enrolment.name, "elevated is listening");
    // Bounded: a flood of idle connections must not exhaust descriptors and stop the agent.
    let sessions = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    let refusals = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS));
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let Ok(cred) = conn.peer_cred() else {
                    continue;
                };
                let uid = accounted_uid(&cred);
                let Some(slot) = agent.per_user.enter(uid) else {
                    tracing::warn!(
                        uid,
                        "one user holds too many sessions; refusing a connection"
                    );
                    refuse(conn, format!("too many requests at once: you already have {MAX_SESSIONS_PER_USER} elevate sessions open (sudo's count too); finish or cancel some first"), &refusals);
                    continue;
                };
                match sessions.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let agent = agent.clone();
                        tokio::spawn(async move {
                            crate::session::serve(agent, conn).await;
                            drop((permit, slot));
                        });
                    }
                    Err(_) => {
                        tracing::warn!("too many open sessions; refusing a connection");
                        refuse(
                            conn,
                            "the agent is serving too many sessions; try again shortly".into(),
                            &refusals,
                        );
                    }
                }
            }
            Err(e) => {
                // Out of descriptors or memory: wait and go on; never stop serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
