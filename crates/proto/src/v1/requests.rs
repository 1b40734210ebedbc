//! Requests on the wire: what to run or open (`WireTarget`), a new request (`NewRequest`), the
//! decision and the request as the API shows them, and the one conversion from wire to core
//! (`to_core`) both the server and the agent use.
//!
//! Must never: let a request reach core unchecked (paths absolute, hashes hex, lengths bounded,
//! the reason under core's rule).

use elevate_core as core;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// What approvals need when the people directory does not know the requester's login:
    /// `compare-names` (any approver whose account name is not the login) or `refuse`.
    /// Absent (decided before the setting existed) means `compare-names`.
    #[serde(default)]
    pub unknown_requester: Option<String>,
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
        let (approvers, needed, sla_secs, escalate, expire_secs, reauth_secs, unknown_requester) =
            match &d.policy_outcome {
                core::Outcome::Approve(route) => (
                    Some(route.approvers.clone()),
                    route.count,
                    secs(route.sla),
                    route.escalate.clone(),
                    secs(route.expire),
                    secs(route.reauth),
                    Some(route.unknown_requester.as_str().to_owned()),
                ),
                _ => (None, 0, None, None, None, None, None),
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
            unknown_requester,
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
    /// Approved: what the server vouches for, signed with the key the device pinned; the agent
    /// runs nothing on an approval without it (`proto::grant`).
    #[serde(default)]
    pub grant: Option<crate::grant::SignedGrant>,
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
            reason: core::Reason::optional(self.reason.clone())
                .map_err(|e| InvalidRequest(e.to_string()))?
                .map(core::Reason::into_string),
            channel: self.channel,
        })
    }
}
