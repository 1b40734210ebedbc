//! JSON types of HTTP API v1 (`/v1/...`), with conversions from and to core's domain types.
//!
//! Every request body is `deny_unknown_fields`: a misspelt field is an error, not a silent default.
//! Must never: carry secrets in a type that is logged (`Debug` of credentials is redacted).

use elevate_core as core;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `bad_request`, `forbidden`, `invalid_policy`.
    pub error: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Structured details (e.g. the line of a policy error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

// ---------------------------------------------------------------- accounts and tokens

/// Exchange an account's password for an API token.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub account: String,
    pub password: String,
    /// Label shown in token lists, e.g. `elevatectl on laptop-7`.
    #[serde(default)]
    pub label: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("account", &self.account)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenIssued {
    /// Shown once; the server stores only its hash.
    pub token: String,
    pub account: String,
    pub roles: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for TokenIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssued")
            .field("account", &self.account)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub name: String,
    pub roles: Vec<String>,
    /// Approver groups the account belongs to.
    pub groups: Vec<String>,
}

// ---------------------------------------------------------------- devices and enrolment

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolTokenCreate {
    /// Lifetime in seconds (default 3600, at most 30 days).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Tags given to the device that enrols with this token.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrolTokenCreated {
    /// Shown once; works once.
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for EnrolTokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolTokenCreated")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub token: String,
    /// Host name of the device (unique).
    pub name: String,
}

impl std::fmt::Debug for EnrolRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolRequest")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Enrolled {
    pub device_id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// Bearer credential of the device for the API. Shown once.
    pub credential: String,
    /// Hex secret for offline response codes. Shown once; keep it root-only.
    pub device_secret: String,
    /// Hex Ed25519 key that signs policy bundles; pin it.
    pub policy_key: String,
}

impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolled")
            .field("device_id", &self.device_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub enrolled_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<Timestamp>,
}

/// A standing admin right a device reported as needing a person (the latest report of each).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RightAlert {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `rights.unmanageable`, `rights.failed`, `rights.not_restored`,
    /// `rights.group_still_held`, `rights.check_failed`.
    pub action: String,
    /// The person it concerns (`*` for a grant naming nobody the device can tell).
    pub user: String,
    /// The right: file and line, or group.
    pub right: String,
    /// What a person should do.
    pub message: String,
}

// ---------------------------------------------------------------- notifications

/// One notification to one receiver (a webhook subscription, a chat, an address), with what
/// became of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    /// `webhook`, `slack`, `teams` or `email`.
    pub channel: String,
    /// The subscription's name, or the address.
    pub target: String,
    /// The event it tells of, e.g. `request.approved`.
    pub event: String,
    /// What the event is about, e.g. `request:<id>`.
    pub subject: String,
    /// `queued` (waiting or due again), `delivered` or `failed` (given up).
    pub state: String,
    pub attempts: u32,
    /// When it is (or was) due next.
    #[schema(value_type = String, format = DateTime)]
    pub next_at: Timestamp,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub done_at: Option<Timestamp>,
    /// Every attempt, oldest first (only when one delivery is asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tries: Vec<DeliveryAttemptView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttemptView {
    pub attempt: u32,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

// ---------------------------------------------------------------- offline codes

/// A challenge read out by a person at a device that cannot reach the server.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineChallengeIn {
    /// As the person read it (`XXXXX-XXXXX-XXXXX-XXXXX-C`; case, dashes and spaces do not matter).
    pub challenge: String,
}

/// Whose challenge it is, for the helpdesk to check before answering.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfflineChallengeView {
    /// The challenge, as it should have been read.
    pub challenge: String,
    /// The enrolled devices it can belong to (almost always one; name the one the caller is at
    /// when there are more).
    pub devices: Vec<Device>,
    /// The requester's uid on the device.
    pub uid: u32,
    /// The login name last seen for that uid on that device, if any request showed it.
    pub user: Option<String>,
}

/// The helpdesk's answer to a challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineRespondIn {
    pub challenge: String,
    /// `request` (the one pending request, once) or `session` (an admin session).
    pub scope: String,
    /// Minutes, 1 to 1440.
    pub minutes: u16,
    /// Why (kept in the audit log).
    pub reason: String,
    /// The device's name, when the challenge could belong to more than one.
    #[serde(default)]
    pub device: Option<String>,
}

/// The response code to read back, and what it grants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfflineResponseOut {
    /// `XXXXX-XXXXX`.
    pub response: String,
    pub challenge: String,
    pub device: String,
    pub uid: u32,
    pub user: Option<String>,
    pub scope: String,
    pub minutes: u16,
}

// ---------------------------------------------------------------- policies

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyApply {
    /// The policy document (TOML).
    pub text: String,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersion {
    pub version: u64,
    pub sha256: String,
    pub author: String,
    pub comment: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When just applied: what the server noticed about the policy's paths (links, paths that
    /// do not exist here). The policy is applied all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyDocument {
    #[serde(flatten)]
    pub meta: PolicyVersion,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyDiff {
    pub from: u64,
    pub to: u64,
    /// Unified diff of the two texts.
    pub diff: String,
}

/// Explain how a policy would decide a request, without creating it.
/// What `policy test` answers: the decision (as a device would get it) and what the server
/// noticed about the paths involved (links, paths that do not exist here).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyTestResult {
    #[serde(flatten)]
    pub decision: DecisionView,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    pub request: NewRequest,
    /// Device name to evaluate for (default `test-device`).
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub device_tags: Vec<String>,
    /// Evaluate at this time instead of now.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<Timestamp>,
    /// Evaluate this policy text (a draft) instead of a stored version.
    #[serde(default)]
    pub text: Option<String>,
    /// Evaluate this stored version instead of the current one.
    #[serde(default)]
    pub version: Option<u64>,
}

// ---------------------------------------------------------------- requests

/// What is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WireTarget {
    /// Run one command as root.
    Command {
        /// Absolute resolved path.
        path: String,
        /// The name the program sees as `argv[0]` (the path as typed, after the PATH lookup),
        /// when it is not `path`: rules match it, approvers see it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invoked: Option<String>,
        /// Lower-case hex SHA-256 of the file the agent opened.
        #[serde(default)]
        sha256: Option<String>,
        /// Owning package, if any.
        #[serde(default)]
        package: Option<String>,
        /// argv[1..].
        #[serde(default)]
        args: Vec<String>,
    },
    /// An admin session of `duration_secs` seconds.
    Session { duration_secs: u64 },
}

/// A request for elevation, sent by an enrolled device on behalf of a local user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// Login name on the device (from the kernel's peer credentials, never from the user).
    pub user: String,
    pub uid: u32,
    #[serde(default)]
    pub groups: Vec<String>,
    pub target: WireTarget,
    #[serde(default)]
    pub reason: Option<String>,
    /// `sudo`, `native` or `offline`.
    #[schema(value_type = String)]
    pub channel: core::Channel,
    /// The requester's working directory as the agent confirmed it (shown to approvers; the
    /// command runs there only when the policy says `workdir = "caller"`).
    #[serde(default)]
    pub cwd: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    /// `auto`, `approve` or `deny`: what happens.
    pub outcome: String,
    /// What the policy says (differs from `outcome` in discover mode).
    pub policy_outcome: String,
    /// `discover` or `enforce`.
    pub mode: String,
    /// Rule that matched; absent when the defaults applied.
    pub rule: Option<String>,
    pub explanation: String,
    /// Approver group, when approval is needed.
    pub approvers: Option<String>,
    /// Number of approvals needed.
    pub needed: u32,
    pub sla_secs: Option<u64>,
    pub escalate: Option<String>,
    /// How long the request may wait for approvers (the server's default when absent).
    #[serde(default)]
    pub expire_secs: Option<u64>,
    /// Approvers must have signed in within this many seconds to decide.
    #[serde(default)]
    pub reauth_secs: Option<u64>,
    /// Message for the requester when denied.
    pub message: Option<String>,
    pub reason_required: bool,
    pub session_max_secs: u64,
    /// Run in the requester's working directory instead of `/` (policy `workdir = "caller"`).
    #[serde(default)]
    pub keep_caller_cwd: bool,
    /// Keep the command running when the requester's client goes away (policy
    /// `on_disconnect = "continue"`); otherwise it is stopped.
    #[serde(default)]
    pub continue_on_disconnect: bool,
    /// Policy version that decided.
    pub policy_version: u64,
}

impl DecisionView {
    pub fn from_decision(d: &core::Decision, policy_version: u64) -> DecisionView {
        let secs = |d: Option<jiff::SignedDuration>| d.map(|s| s.as_secs().max(0) as u64);
        let (approvers, needed, sla_secs, escalate, expire_secs, reauth_secs) =
            match &d.policy_outcome {
                core::Outcome::Approve(route) => (
                    Some(route.approvers.clone()),
                    route.count,
                    secs(route.sla),
                    route.escalate.clone(),
                    secs(route.expire),
                    secs(route.reauth),
                ),
                _ => (None, 0, None, None, None, None),
            };
        let message = match &d.policy_outcome {
            core::Outcome::Deny { message } => Some(message.clone()),
            _ => None,
        };
        DecisionView {
            outcome: d.outcome.kind().into(),
            policy_outcome: d.policy_outcome.kind().into(),
            mode: d.mode.as_str().into(),
            rule: d.rule.clone(),
            explanation: d.explanation.clone(),
            approvers,
            needed,
            sla_secs,
            escalate,
            expire_secs,
            reauth_secs,
            message,
            reason_required: d.constraints.reason_required,
            session_max_secs: d.constraints.session_max.as_secs().max(0) as u64,
            keep_caller_cwd: d.constraints.keep_caller_cwd,
            continue_on_disconnect: d.constraints.continue_on_disconnect,
            policy_version,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    pub approver: String,
    /// `approve` or `deny`.
    pub verdict: String,
    pub comment: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    pub device: String,
    pub user: String,
    pub uid: u32,
    pub groups: Vec<String>,
    pub target: WireTarget,
    pub reason: Option<String>,
    pub channel: String,
    /// The requester's working directory, when the agent sent it.
    pub cwd: Option<String>,
    /// `pending`, `approved`, `denied`, `expired`, `cancelled`, `running`, `finished`.
    pub state: String,
    pub decision: DecisionView,
    pub approvals: Vec<ApprovalView>,
    /// Exit status reported by the agent when finished.
    pub exit_code: Option<i32>,
    /// When it lapses if nobody decides (or, approved, if it is not started).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// When the rule's SLA falls due, until it has been handled.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sla_due_at: Option<Timestamp>,
    /// The approver group it was escalated to when its SLA passed.
    #[serde(default)]
    pub escalated_to: Option<String>,
    /// Metrics: when an approver who may decide first opened it.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_viewed_at: Option<Timestamp>,
    /// Metrics: when it was decided (approved, denied or expired).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
    /// Metrics: the channel of the deciding answer (`portal`, `api`, `slack`, `link`, `expiry`).
    #[serde(default)]
    pub decided_via: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Finished {
    pub exit_code: i32,
}

// ---------------------------------------------------------------- audit

/// An audit event as sent by an agent (or returned by the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEventIn {
    /// Globally unique id (UUID); the same id ingested twice is stored once.
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditBatch {
    pub events: Vec<AuditEventIn>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestResult {
    pub accepted: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub seq: u64,
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON text exactly as hashed.
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<core::audit::ChainedRecord> for AuditRecord {
    fn from(r: core::audit::ChainedRecord) -> Self {
        AuditRecord {
            seq: r.seq,
            id: r.event.id,
            at: r.event.at,
            actor: r.event.actor,
            action: r.event.action,
            subject: r.event.subject,
            data: r.event.data,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl From<AuditRecord> for core::audit::ChainedRecord {
    fn from(r: AuditRecord) -> Self {
        core::audit::ChainedRecord {
            seq: r.seq,
            prev_hash: r.prev_hash,
            hash: r.hash,
            event: core::audit::AuditEvent {
                id: r.id,
                at: r.at,
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                data: r.data,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChainBreakView {
    pub seq: u64,
    pub event_id: Option<String>,
    /// `edited`, `deleted`, `inserted`, `reordered`, `renumbered` or `truncated`.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    /// Records checked.
    pub count: u64,
    /// Hash of the last record (the chain head).
    pub head: String,
    #[serde(rename = "break")]
    pub first_break: Option<ChainBreakView>,
}

// ---------------------------------------------------------------- conversions

/// A request body that cannot become a domain request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

impl WireTarget {
    /// One line for people: the command line (quoted, control characters made visible) or
    /// "admin session of 30m". Used by the portal, `elevatectl` and `elevate requests`.
    pub fn describe(&self) -> String {
        match self {
            WireTarget::Command {
                path,
                args,
                invoked: Some(invoked),
                ..
            } if invoked != path => format!(
                "{} (invoked as {})",
                core::text::command_line(path, args),
                core::text::visible(invoked)
            ),
            WireTarget::Command { path, args, .. } => core::text::command_line(path, args),
            WireTarget::Session { duration_secs } => format!(
                "admin session of {}",
                core::duration::format(SignedDuration::from_secs(*duration_secs as i64))
            ),
        }
    }

    pub fn to_core(&self) -> Result<core::Target, InvalidRequest> {
        match self {
            WireTarget::Command {
                path,
                invoked,
                sha256,
                package,
                args,
            } => {
                if !path.starts_with('/') {
                    return Err(InvalidRequest(format!(
                        "target.path `{path}` is not absolute; the agent sends resolved absolute paths"
                    )));
                }
                if invoked
                    .as_ref()
                    .is_some_and(|i| !i.starts_with('/') || i.len() > crate::limits::MAX_TEXT)
                {
                    return Err(InvalidRequest(format!(
                        "target.invoked must be an absolute path of at most {} bytes",
                        crate::limits::MAX_TEXT
                    )));
                }
                if let Some(h) = sha256 {
                    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(InvalidRequest(
                            "target.sha256 must be 64 hex characters".into(),
                        ));
                    }
                }
                Ok(core::Target::Command(core::CommandSpec {
                    path: path.clone(),
                    invoked: invoked.clone().filter(|i| i != path),
                    sha256: sha256.as_ref().map(|h| h.to_ascii_lowercase()),
                    package: package.clone().filter(|p| !p.is_empty()),
                    args: args.clone(),
                }))
            }
            WireTarget::Session { duration_secs } => {
                if *duration_secs == 0 || *duration_secs > 366 * 86_400 {
                    return Err(InvalidRequest(
                        "target.duration_secs must be between 1 second and a year".into(),
                    ));
                }
                Ok(core::Target::Session {
                    duration: SignedDuration::from_secs(*duration_secs as i64),
                })
            }
        }
    }
}

impl NewRequest {
    /// Builds the domain request for a device (name and tags come from the authenticated device).
    pub fn to_core(
        &self,
        device: &str,
        device_tags: &[String],
    ) -> Result<core::AccessRequest, InvalidRequest> {
        if self.user.is_empty() || self.user.len() > 256 {
            return Err(InvalidRequest(
                "user must be a login name of 1 to 256 characters".into(),
            ));
        }
        Ok(core::AccessRequest {
            subject: core::Subject {
                user: self.user.clone(),
                uid: self.uid,
                groups: self.groups.clone(),
                device: device.to_string(),
                device_tags: device_tags.to_vec(),
            },
            target: self.target.to_core()?,
            reason: self.reason.clone().filter(|r| !r.trim().is_empty()),
            channel: self.channel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let body = r#"{"user":"a","uid":1,"target":{"kind":"session","duration_secs":60},"channel":"native","admin":true}"#;
        let err = serde_json::from_str::<NewRequest>(body).unwrap_err();
        assert!(err.to_string().contains("unknown field `admin`"), "{err}");
    }

    #[test]
    fn targets_are_checked() {
        let relative = WireTarget::Command {
            path: "bin/ls".into(),
            invoked: None,
            sha256: None,
            package: None,
            args: vec![],
        };
        assert!(relative.to_core().is_err());
        let bad_hash = WireTarget::Command {
            path: "/bin/ls".into(),
            invoked: None,
            sha256: Some("abc".into()),
            package: None,
            args: vec![],
        };
        assert!(bad_hash.to_core().is_err());
        assert!(WireTarget::Session { duration_secs: 0 }.to_core().is_err());
        let ok = WireTarget::Command {
            path: "/bin/ls".into(),
            invoked: None,
            sha256: Some("AB".repeat(32)),
            package: Some(String::new()),
            args: vec![],
        };
        match ok.to_core().unwrap() {
            core::Target::Command(c) => {
                assert_eq!(c.sha256.unwrap(), "ab".repeat(32));
                assert_eq!(c.package, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
