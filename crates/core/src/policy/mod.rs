//! Policy documents (TOML, `version = 1`): parsing, validation and evaluation.
//!
//! `Policy::parse` turns text into a validated [`Policy`] or a [`PolicyError`] that names the line,
//! column and field (`rule[3].what.paths[1]`; indexes are 1-based) and says what to write instead.
//! [`decide`] evaluates a policy for one request at one instant: rules in order, first match wins,
//! the defaults cover the rest, and every decision carries its explanation.
//!
//! Must never: do I/O, read the clock (`now` is passed in), or panic on any input text or request.

mod document;
mod eval;
mod glob;
mod location;
mod model;
mod validate;

#[cfg(test)]
mod tests;

pub use eval::{covering, decide, holds_standing_admin, STANDING_ADMIN_GROUPS};

use crate::calendar::Calendar;
use crate::{Mode, Subject};

/// A parsed, validated policy, ready for [`decide`].
#[derive(Debug, Clone)]
pub struct Policy {
    version: u32,
    defaults: model::Defaults,
    waves: Vec<model::Wave>,
    calendars: Vec<Calendar>,
    rules: Vec<model::Rule>,
    break_glass: Option<model::Who>,
    segments: crate::discovery::Thresholds,
}

/// Who is in a frequency segment is told to `decide` as a group of this prefix and the
/// segment's name (`segment:low`): a real group's name cannot hold a `:` (it separates the
/// fields of `/etc/group`), so none can pass for one, and requests' group lists are cleaned of
/// it before the server's own measure is added.
pub const SEGMENT_GROUP: &str = "segment:";

impl Policy {
    /// Parses and validates a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc: document::Document =
            toml::from_str(text).map_err(|e| PolicyError::from_toml(text, &e))?;
        validate::validate(text, doc)
    }

    /// The calendar named `name`; with no name, the one called `business-hours`, else the
    /// first (reports measure "after hours" by it).
    pub fn calendar(&self, name: Option<&str>) -> Option<&Calendar> {
        match name {
            Some(n) => self.calendars.iter().find(|c| c.name() == n),
            None => self
                .calendars
                .iter()
                .find(|c| c.name() == "business-hours")
                .or(self.calendars.first()),
        }
    }

    /// Where the frequency segments divide (`[segments]`).
    pub fn segment_thresholds(&self) -> crate::discovery::Thresholds {
        self.segments
    }

    /// Whether any rule, wave or break-glass entry names a segment (only then do devices need
    /// to know who is in which).
    pub fn uses_segments(&self) -> bool {
        let named = |who: &model::Who| who.groups.iter().any(|g| g.starts_with(SEGMENT_GROUP));
        self.rules.iter().filter_map(|r| r.who.as_ref()).any(named)
            || self.waves.iter().any(|w| named(&w.who))
            || self.break_glass.as_ref().is_some_and(named)
    }

    /// The document's `version` (always 1 today).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Rule names in evaluation order.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The mode of the first wave that includes `subject`, else `defaults.mode`.
    pub fn mode_for(&self, subject: &Subject) -> Mode {
        self.waves
            .iter()
            .find(|w| eval::who_matches(&w.who, subject).is_some())
            .map_or(self.defaults.mode, |w| w.mode)
    }

    /// Whether `subject` is a break-glass account (`[break_glass]`): its standing rights are
    /// never revoked, whatever its wave says.
    pub fn is_break_glass(&self, subject: &Subject) -> bool {
        self.break_glass
            .as_ref()
            .is_some_and(|who| eval::who_matches(who, subject).is_some())
    }

    /// Whether endpoints remove `subject`'s standing admin rights: the policy puts it in
    /// enforce mode *in writing* (an enforce wave that includes it, or `[defaults] mode =
    /// "enforce"` spelt out) and it is not a break-glass account. A policy that never mentions
    /// modes enforces its rules but takes nobody's rights away: rollout is a decision someone
    /// writes down, never a side effect of a default. In discover mode rights stay, and rights
    /// taken away are given back when a wave moves back to discover.
    pub fn revokes_standing_rights(&self, subject: &Subject) -> bool {
        let written = match self
            .waves
            .iter()
            .find(|w| eval::who_matches(&w.who, subject).is_some())
        {
            Some(wave) => wave.mode == Mode::Enforce,
            None => self.defaults.mode_written && self.defaults.mode == Mode::Enforce,
        };
        written && !self.is_break_glass(subject)
    }

    /// `[defaults] offline_max_age`: how long a device may pre-approve on this policy without
    /// reaching the server (`None`: no limit).
    pub fn offline_max_age(&self) -> Option<jiff::SignedDuration> {
        self.defaults.offline_max_age
    }

    /// `[defaults] break_glass_codes`: how many different helpdesk members' codes open an
    /// emergency admin session offline (`None`: break glass is off).
    pub fn break_glass_codes(&self) -> Option<u8> {
        self.defaults.break_glass_codes
    }

    /// Every approval route: each rule's (by name), then the defaults' (`None`) when unmatched
    /// requests go to approvers.
    pub fn approval_routes(&self) -> Vec<(Option<&str>, &crate::ApprovalRoute)> {
        self.rules
            .iter()
            .filter_map(|r| match &r.action {
                crate::Outcome::Approve(route) => Some((Some(r.name.as_str()), route)),
                _ => None,
            })
            .chain(match &self.defaults.unmatched {
                crate::Outcome::Approve(route) => Some((None, route)),
                _ => None,
            })
            .collect()
    }

    /// Every literal path a rule names (no wildcards), with the rule's name: what an admin
    /// meant by a file, to be checked against a real file system by the caller.
    pub fn literal_paths(&self) -> Vec<(&str, String)> {
        self.rules
            .iter()
            .flat_map(|r| {
                r.what
                    .iter()
                    .flat_map(|w| w.paths.iter())
                    .filter(|g| g.is_literal())
                    .map(|g| (r.name.as_str(), g.to_string()))
            })
            .collect()
    }

    /// The approver group used when a rule or the defaults do not name one.
    pub fn default_approvers(&self) -> &str {
        &self.defaults.approvers
    }

    /// `[defaults] unknown_requester`: what approvals need for a login the directory does not
    /// know, where a rule does not say.
    pub fn default_unknown_requester(&self) -> crate::UnknownRequester {
        self.defaults.unknown_requester
    }
}

/// A policy text that cannot be used, with the place and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}, `{field}`: {message}")]
pub struct PolicyError {
    /// 1-based line of the offending value (or key, for syntax errors and unknown keys).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Field path like `rule[3].what.paths[1]` (1-based indexes), or `policy` when unknown.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl PolicyError {
    fn from_toml(text: &str, error: &toml::de::Error) -> PolicyError {
        let offset = error.span().map_or(0, |s| s.start);
        let (line, column) = location::line_column(text, offset);
        let field = location::field_at(text, offset);
        let mut message = error
            .message()
            .trim()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ");
        if message.is_empty() {
            message =
                "this is not valid TOML here; check the quotes, brackets and `=` signs".into();
        }
        let top = field.split(['[', '.']).next().unwrap_or_default();
        if matches!(top, "rule" | "wave" | "calendar") && message.contains("expected a sequence") {
            message.push_str(&format!(
                "; write `[[{top}]]` (double brackets) above each {top}"
            ));
        }
        PolicyError {
            line,
            column,
            field,
            message,
        }
    }
}
