//! The validated policy model: rules, matchers, waves and defaults, ready to evaluate.
//!
//! Values here have been checked by `validate`: paths are absolute, digests are lower-case hex,
//! calendar references point at a defined calendar, counts are at least 1.
//!
//! Must never: be built from unchecked text (only `validate` constructs these).

use jiff::SignedDuration;

use super::glob::{ArgPattern, Glob};
use crate::{Mode, Outcome};

/// What applies when no rule matches, and what rules inherit.
#[derive(Debug, Clone)]
pub(super) struct Defaults {
    /// The outcome for unmatched requests (an `Approve` already names `approvers`).
    pub unmatched: Outcome,
    pub approvers: String,
    pub reason_required: bool,
    pub session_max: SignedDuration,
    pub keep_caller_cwd: bool,
    pub continue_on_disconnect: bool,
    pub mode: Mode,
    /// Whether the document wrote `mode` out (standing rights are revoked only on its word).
    pub mode_written: bool,
    /// After this long without reaching the server, a device's cached policy pre-approves
    /// nothing: only the helpdesk's codes (or the server again) allow elevation.
    pub offline_max_age: Option<SignedDuration>,
    /// Codes from this many different helpdesk members open an emergency admin session on a
    /// device that cannot reach the server (`None`: break glass is off).
    pub break_glass_codes: Option<u8>,
    /// What approvals need when the directory does not know the requester's login.
    pub unknown_requester: crate::decision::UnknownRequester,
}

/// A rollout wave: the people in it get its mode.
#[derive(Debug, Clone)]
pub(super) struct Wave {
    pub name: String,
    pub mode: Mode,
    pub who: Who,
}

/// One ordered policy rule.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub name: String,
    pub who: Option<Who>,
    pub what: Option<What>,
    pub when: Option<When>,
    pub where_: Option<Where>,
    pub action: Outcome,
    pub reason_required: Option<bool>,
    pub session_max: Option<SignedDuration>,
    pub keep_caller_cwd: Option<bool>,
    pub continue_on_disconnect: Option<bool>,
    /// Whether helpdesk codes may stand in for the approvers (default yes).
    pub offline: bool,
}

/// Users and groups; a subject matches when it is one of the users or in one of the groups.
#[derive(Debug, Clone)]
pub(super) struct Who {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// Command matchers (all given ones must hold) or an admin-session matcher.
#[derive(Debug, Clone)]
pub(super) struct What {
    pub paths: Vec<Glob>,
    pub sha256: Vec<String>,
    pub package: Option<PackageMatch>,
    pub args: Option<Vec<ArgPattern>>,
    /// `Some(true)`: only admin sessions. `Some(false)`: only commands. `None`: commands only
    /// when a command matcher is given, otherwise both.
    pub session: Option<bool>,
}

impl What {
    pub fn has_command_matcher(&self) -> bool {
        !self.paths.is_empty()
            || !self.sha256.is_empty()
            || self.package.is_some()
            || self.args.is_some()
    }
}

#[derive(Debug, Clone)]
pub(super) enum PackageMatch {
    /// The file must belong to some package.
    Required,
    /// The file must belong to this package.
    Named(String),
}

/// A calendar condition: inside (or, negated, outside) a defined calendar.
#[derive(Debug, Clone)]
pub(super) struct When {
    /// Index into `Policy::calendars`.
    pub calendar: usize,
    pub inside: bool,
}

/// Device tags and device names; a device matches when it has one of the tags or one of the names.
#[derive(Debug, Clone)]
pub(super) struct Where {
    pub tags: Vec<String>,
    pub devices: Vec<String>,
}
