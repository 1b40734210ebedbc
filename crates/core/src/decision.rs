//! The result of evaluating a policy: what happens to a request and why.
//!
//! A `Decision` is `#[must_use]` and always carries the rule that produced it and a sentence a
//! person can read. Must never: be constructed with an empty explanation.

use jiff::SignedDuration;

/// Whether a user's requests are enforced or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pre-revocation logging: everything the user could already do is allowed and recorded.
    Discover,
    /// Policy decisions are applied.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Discover => "discover",
            Mode::Enforce => "enforce",
        }
    }
}

/// Who must approve a request, how many of them, and how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRoute {
    /// Name of the approver group.
    pub approvers: String,
    /// Number of distinct approvers needed (at least 1).
    pub count: u32,
    /// Time in which an approver should answer, if the rule sets one.
    pub sla: Option<SignedDuration>,
    /// Approver group to escalate to when the SLA passes.
    pub escalate: Option<String>,
    /// How long the request may wait for approvers before it expires (the server's
    /// `request_ttl` when not set).
    pub expire: Option<SignedDuration>,
    /// An approver must have signed in within this long to decide.
    pub reauth: Option<SignedDuration>,
    /// Who may approve when the people directory does not know the requester's login.
    pub unknown_requester: UnknownRequester,
    /// Who may answer the helpdesk's offline challenges for this rule (`offline_responders`);
    /// the approver group when not set.
    pub offline_responders: Option<String>,
}

impl ApprovalRoute {
    /// The group whose members may answer this rule's offline challenges.
    pub fn responders(&self) -> &str {
        self.offline_responders
            .as_deref()
            .unwrap_or(&self.approvers)
    }
}

/// What approvals need when the people directory does not know who a login belongs to.
///
/// A known login is decided on people: nobody approves a request made under any of their own
/// logins. An unknown one cannot be, so the policy says what to do (`unknown_requester`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UnknownRequester {
    /// `"compare-names"` (the default): any approver whose account name is not the login name.
    #[default]
    CompareNames,
    /// `"refuse"`: nobody may approve until the directory says whose login it is.
    Refuse,
}

impl UnknownRequester {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownRequester::CompareNames => "compare-names",
            UnknownRequester::Refuse => "refuse",
        }
    }

    /// The policy's word, as `as_str` writes it.
    pub fn parse(word: &str) -> Option<UnknownRequester> {
        match word {
            "compare-names" => Some(UnknownRequester::CompareNames),
            "refuse" => Some(UnknownRequester::Refuse),
            _ => None,
        }
    }
}

/// What the policy says happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Run now, no human involved.
    Auto,
    /// Wait for approvers.
    Approve(ApprovalRoute),
    /// Refused, with a message for the requester.
    Deny { message: String },
}

impl Outcome {
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Auto => "auto",
            Outcome::Approve(_) => "approve",
            Outcome::Deny { .. } => "deny",
        }
    }
}

/// Conditions attached to whatever is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraints {
    /// The requester must give a reason.
    pub reason_required: bool,
    /// Longest admin session that may be granted.
    pub session_max: SignedDuration,
    /// Run in the caller's working directory (`workdir = "caller"`) instead of `/`.
    pub keep_caller_cwd: bool,
    /// Keep the command running when the requester's client goes away (`on_disconnect =
    /// "continue"`); by default it is stopped (TERM, then KILL).
    pub continue_on_disconnect: bool,
    /// Whether the helpdesk's offline codes may stand in for the approvers when the server
    /// cannot be reached (a rule's `offline = false` says no).
    pub offline_codes: bool,
}

/// A policy decision with its explanation.
#[must_use = "a decision that is not acted on is a bug"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happens now. In `discover` mode this is always `Auto`.
    pub outcome: Outcome,
    /// What the policy itself says (equal to `outcome` in `enforce` mode). Discovery reports use
    /// this to show what enforcement would have done.
    pub policy_outcome: Outcome,
    pub mode: Mode,
    /// Name of the rule that matched, or `None` when the defaults applied.
    pub rule: Option<String>,
    /// One or two sentences for people: which rule matched and why.
    pub explanation: String,
    pub constraints: Constraints,
}

impl Decision {
    /// True when the policy wants a reason and the request has none: ask for one before acting.
    pub fn missing_reason(&self, request: &crate::AccessRequest) -> bool {
        self.constraints.reason_required && !request.has_reason()
    }
}
