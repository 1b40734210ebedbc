//! JSON types of HTTP API v1 (`/v1/...`), with conversions from and to core's domain types.
//!
//! Every request body is `deny_unknown_fields`: a misspelt field is an error, not a silent default.
//! Must never: carry secrets in a type that is logged (`Debug` of credentials is redacted).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod audit;
mod discovery;
mod people;
mod requests;
pub use audit::*;
pub use discovery::*;
pub use people::*;
pub use requests::*;

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

/// An API token as its owner and admins see it: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    /// The first 16 hex digits of the token's SHA-256 digest (what `revoke` takes).
    pub id: String,
    pub account: String,
    pub label: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
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
    /// When an admin revoked it (its credential is refused since), and who.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
}

/// Revoke a device: its credential is refused at once, everywhere.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRevoke {
    /// Why (lost, stolen, decommissioned…), for the audit log.
    pub reason: String,
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
    /// The login name of that uid on that device, as the device reported it or a request
    /// showed it.
    pub user: Option<String>,
    /// Whether the challenge is for one command (answered for the pending request only with the
    /// command typed as the caller reads it); otherwise for an admin session or break glass.
    #[serde(default)]
    pub names_command: bool,
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
    /// For `request`: the command exactly as the caller reads it from the device (program and
    /// arguments, quoted as for a shell). The code covers it; a code for another command is
    /// refused on the device.
    #[serde(default)]
    pub command: Option<String>,
    /// The SHA-256 of the program on the device, when the server has never seen it there
    /// (`sha256sum PROGRAM`); otherwise the server finds it among the hashes devices sent.
    #[serde(default)]
    pub sha256: Option<String>,
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
    /// For `request`: the command the code covers, its SHA-256 and package, and the rule that
    /// decided who may answer.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
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

#[cfg(test)]
mod tests;
