//! The policy document exactly as written: serde structs that mirror the TOML, with spans.
//!
//! Every table denies unknown keys, so a typo is an error that names its line. Values that need
//! checks beyond their TOML type (durations, paths, digests, calendar names, ...) keep their span
//! so `validate` can name the line of the offending value. Tables never do: toml gives no span to
//! a table made by dotted keys (`who.users = [..]`), and `Spanned` would then reject it.
//!
//! Must never: interpret or default a value here — that is `validate`'s job.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Document {
    pub version: Option<Spanned<i64>>,
    #[serde(default)]
    pub defaults: DefaultsDoc,
    #[serde(default, rename = "wave")]
    pub waves: Vec<WaveDoc>,
    #[serde(default, rename = "calendar")]
    pub calendars: Vec<CalendarDoc>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleDoc>,
    /// Accounts whose standing rights are never revoked (emergency access).
    pub break_glass: Option<Spanned<WhoDoc>>,
    /// Where the frequency segments divide (`who = { segment = "low" }`).
    pub segments: Option<SegmentsDoc>,
}

/// `[segments] moderate = 5, high = 20`: elevations per 30 days.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SegmentsDoc {
    pub moderate: Option<Spanned<i64>>,
    pub high: Option<Spanned<i64>>,
}

/// `segment = "low"` or `segment = ["low", "moderate"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultsDoc {
    pub unmatched: Option<UnmatchedDoc>,
    pub approvers: Option<Spanned<String>>,
    pub reason: Option<ReasonDoc>,
    pub session_max: Option<Spanned<String>>,
    pub workdir: Option<WorkdirDoc>,
    pub on_disconnect: Option<DisconnectDoc>,
    pub mode: Option<ModeDoc>,
    pub deny_message: Option<Spanned<String>>,
    /// How long a device may decide on its cached policy without reaching the server.
    pub offline_max_age: Option<Spanned<String>>,
    /// How many helpdesk members' codes open an emergency admin session offline.
    pub break_glass_codes: Option<Spanned<i64>>,
    /// What approvals need when the directory does not know the requester's login.
    pub unknown_requester: Option<UnknownRequesterDoc>,
}

/// `unknown_requester = "compare-names" | "refuse"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum UnknownRequesterDoc {
    CompareNames,
    Refuse,
}

impl TryFrom<String> for UnknownRequesterDoc {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        use UnknownRequesterDoc::*;
        one_of(
            &word,
            &[("compare-names", CompareNames), ("refuse", Refuse)],
        )
    }
}

/// `unmatched = "approve" | "deny" | "auto"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum UnmatchedDoc {
    Approve,
    Deny,
    Auto,
}

/// `reason = "required" | "optional"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum ReasonDoc {
    Required,
    Optional,
}

/// `mode = "discover" | "enforce"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum ModeDoc {
    Discover,
    Enforce,
}

/// Picks the value named by `word`, or says which words are allowed.
fn one_of<T: Copy>(word: &str, choices: &[(&str, T)]) -> Result<T, String> {
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == word) {
        return Ok(*value);
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    Err(format!(
        "\"{word}\" is not allowed here; write one of {}",
        names.join(", ")
    ))
}

impl TryFrom<String> for UnmatchedDoc {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        use UnmatchedDoc::*;
        one_of(
            &word,
            &[("approve", Approve), ("deny", Deny), ("auto", Auto)],
        )
    }
}

impl TryFrom<String> for ReasonDoc {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        use ReasonDoc::*;
        one_of(&word, &[("required", Required), ("optional", Optional)])
    }
}

/// `workdir = "root" | "caller"`: where the command runs.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum WorkdirDoc {
    Root,
    Caller,
}

impl TryFrom<String> for WorkdirDoc {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        use WorkdirDoc::*;
        one_of(&word, &[("root", Root), ("caller", Caller)])
    }
}

/// `on_disconnect = "stop" | "continue"`: what happens to a running command whose `elevate`
/// client went away.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum DisconnectDoc {
    Stop,
    Continue,
}

impl TryFrom<String> for DisconnectDoc {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        use DisconnectDoc::*;
        one_of(&word, &[("stop", Stop), ("continue", Continue)])
    }
}

impl TryFrom<String> for ModeDoc {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        use ModeDoc::*;
        one_of(&word, &[("discover", Discover), ("enforce", Enforce)])
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WaveDoc {
    pub name: Spanned<String>,
    pub mode: ModeDoc,
    pub who: WhoDoc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CalendarDoc {
    pub name: Spanned<String>,
    pub timezone: Spanned<String>,
    pub weekly: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub dates_off: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleDoc {
    pub name: Spanned<String>,
    pub who: Option<WhoDoc>,
    pub what: Option<WhatDoc>,
    pub when: Option<Spanned<String>>,
    #[serde(rename = "where")]
    pub where_: Option<WhereDoc>,
    pub action: ActionDoc,
    pub reason: Option<ReasonDoc>,
    pub session_max: Option<Spanned<String>>,
    pub workdir: Option<WorkdirDoc>,
    pub on_disconnect: Option<DisconnectDoc>,
    /// `offline = false`: the helpdesk's offline codes cannot stand in for this rule's
    /// approvers.
    pub offline: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WhoDoc {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The people of a frequency segment, as discovery measured them.
    pub segment: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WhereDoc {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub devices: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WhatDoc {
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub sha256: Vec<Spanned<String>>,
    pub package: Option<Spanned<String>>,
    pub args: Option<Vec<String>>,
    pub session: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveDoc {
    pub approvers: Option<Spanned<String>>,
    pub count: Option<Spanned<i64>>,
    pub sla: Option<Spanned<String>>,
    pub escalate: Option<Spanned<String>>,
    /// How long the request may wait for its approvers before it expires.
    pub expire: Option<Spanned<String>>,
    /// Approvers must have signed in within this long to decide (high-risk rules).
    pub reauth: Option<Spanned<String>>,
    /// What approvals need when the directory does not know the requester's login.
    pub unknown_requester: Option<UnknownRequesterDoc>,
    /// The group that may answer offline challenges for this rule (the approvers otherwise).
    pub offline_responders: Option<Spanned<String>>,
}

/// `action = "auto"`, `"approve"`, `{ approve = { .. } }` or `{ deny = "message" }`.
#[derive(Debug)]
pub(super) enum ActionDoc {
    Auto,
    Approve(Box<ApproveDoc>),
    Deny(Spanned<String>),
}

const ACTION_HINT: &str = "write `action = \"auto\"`, `action = \"approve\"`, \
    `action = { approve = { approvers = \"on-call\" } }` or `action = { deny = \"message\" }`";

impl<'de> Deserialize<'de> for ActionDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ActionVisitor)
    }
}

struct ActionVisitor;

impl<'de> Visitor<'de> for ActionVisitor {
    type Value = ActionDoc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"auto\", \"approve\", { approve = { .. } } or { deny = \"message\" }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ActionDoc, E> {
        match v {
            "auto" => Ok(ActionDoc::Auto),
            "approve" => Ok(ActionDoc::Approve(Box::new(ApproveDoc {
                approvers: None,
                count: None,
                sla: None,
                escalate: None,
                expire: None,
                reauth: None,
                unknown_requester: None,
                offline_responders: None,
            }))),
            "deny" => Err(E::custom(format!(
                "a deny action needs a message for the requester; {ACTION_HINT}"
            ))),
            other => Err(E::custom(format!(
                "unknown action \"{other}\"; {ACTION_HINT}"
            ))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ActionDoc, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!(
                "the action is empty; {ACTION_HINT}"
            )));
        };
        let action = match key.as_str() {
            "approve" => ActionDoc::Approve(Box::new(map.next_value()?)),
            "deny" => ActionDoc::Deny(map.next_value()?),
            "auto" => {
                return Err(de::Error::custom(format!(
                    "`auto` takes no settings; {ACTION_HINT}"
                )))
            }
            other => {
                return Err(de::Error::custom(format!(
                    "unknown action `{other}`; {ACTION_HINT}"
                )))
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(format!(
                "an action is exactly one of auto, approve or deny; {ACTION_HINT}"
            )));
        }
        Ok(action)
    }
}
