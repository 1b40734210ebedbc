//! The agent process: load the enrolment and the cached policy, listen on the socket, keep the
//! policy fresh and the spool delivered in the background, and serve each caller in a task.
//!
//! Must never: start serving without an enrolment (it exits saying how to enrol), or make the
//! socket reachable before its permissions are set.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use elevate_proto::limits;
use elevate_proto::v1::AuditEventIn;
use jiff::Timestamp;
use tokio::net::UnixListener;

use crate::cache;
use crate::upstream::UpstreamError;

use crate::state::{accounted_uid, LinuxAudit, MAX_SESSIONS_PER_USER};
pub use crate::state::{Agent, AgentConfig};

/// Most callers served at once (each holds a few descriptors).
const MAX_SESSIONS: usize = 256;
impl Agent {
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
                let alert = crate::state::agent_event(
                    self,
                    "spool.rejected",
                    rejected_alert(&refused, kept_as),
                );
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
        crate::caller::sweep_admin_sessions(&agent, crate::grants::EndedBy::Expiry).await;
        if let Err(e) = agent.refresh_policy().await {
            tracing::warn!(error = %format!("{e:#}"), "policy refresh failed; keeping the cached policy");
        }
        crate::caller::end_disallowed(&agent).await;
        reconcile_rights(&agent).await;
        report_users(&agent).await;
        tokio::time::sleep(every).await;
    }
}

/// The check-in: tells the server this machine's human logins when they changed since the
/// server last took them, so the helpdesk sees the name behind a challenge's uid.
async fn report_users(agent: &Arc<Agent>) {
    let passwd = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => text,
        Err(e) => return tracing::warn!(error = %e, "cannot read /etc/passwd for the check-in"),
    };
    let users = crate::users::human_logins(&passwd);
    if agent
        .reported_users
        .lock()
        .expect("reported users lock")
        .as_ref()
        == Some(&users)
    {
        return;
    }
    let body = elevate_proto::v1::DeviceUsersIn {
        users: users
            .iter()
            .map(|(uid, login)| elevate_proto::v1::DeviceUser {
                uid: *uid,
                login: login.clone(),
            })
            .collect(),
    };
    match agent.upstream.report_users(&body).await {
        Ok(_) => *agent.reported_users.lock().expect("reported users lock") = Some(users),
        Err(e) => {
            tracing::debug!(error = %e, "the check-in's logins were not taken; trying again later")
        }
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
            let uid = crate::users::uid_of(user)?;
            let mut who = crate::users::lookup(uid, &mut names).ok()?;
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
                .append(&[crate::state::agent_event(&agent, action, data)])
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
        let event = crate::state::agent_event(&agent, action, data);
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
            code: elevate_proto::ipc::Refusal::Busy,
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
        agent.admin_sessions.cgroups = Some(root);
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
    crate::caller::sweep_admin_sessions(&agent, crate::grants::EndedBy::StartSweep).await;
    match agent.admin_sessions.read() {
        Ok(ledger) => {
            for s in ledger.iter().filter(|s| s.is_open_at(Timestamp::now())) {
                if let Err(e) = crate::grants::spawn_reaper(&agent.admin_sessions, &s.id) {
                    tracing::error!(error = %format!("{e:#}"), session = %s.id, "cannot restart a session's reaper");
                }
                crate::caller::end_on_time(agent.clone(), s.expires);
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
                            crate::caller::serve(agent, conn).await;
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
