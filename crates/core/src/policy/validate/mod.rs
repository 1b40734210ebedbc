//! From the document as written to a policy that can be evaluated: every semantic check lives here.
//!
//! Each error names the line of the offending value and its field path (1-based indexes, see
//! `location`), and says what to write instead.
//!
//! This module checks the document as a whole (version, defaults, calendars, waves, unique rule
//! names); `rule` checks one `[[rule]]`.
//!
//! Must never: accept a value that could silently never match or always match by mistake
//! (relative paths, malformed digests, unknown calendars, empty `who`/`what`/`where` tables).

use std::ops::Range;

use toml::Spanned;

mod rule;

use super::document::{
    CalendarDoc, DefaultsDoc, DisconnectDoc, Document, ModeDoc, ReasonDoc, UnknownRequesterDoc,
    UnmatchedDoc, WaveDoc, WorkdirDoc,
};
use super::location::{key_offset, line_column};
use super::model::{Defaults, Rule, Wave};
use super::{Policy, PolicyError};
use crate::calendar::{Calendar, DateRange, WeeklyWindow};
use crate::{duration, ApprovalRoute, Mode, Outcome, UnknownRequester};

/// Checks a deserialized document against the policy rules; `text` is the source, for positions.
pub(super) fn validate(text: &str, doc: Document) -> Result<Policy, PolicyError> {
    let at = Positions { text };
    let version = match doc.version {
        None => {
            return Err(at.error(
                0..0,
                "version",
                "the policy has no `version`; add `version = 1` as the first line",
            ))
        }
        Some(v) if *v.get_ref() == 1 => 1,
        Some(v) => {
            return Err(at.error(
                v.span(),
                "version",
                format!(
                    "version {} is not supported; this Elevate reads `version = 1`",
                    v.get_ref()
                ),
            ))
        }
    };
    let defaults = defaults(&at, doc.defaults)?;
    let calendars = calendars(&at, doc.calendars)?;
    let waves = waves(&at, doc.waves)?;
    let break_glass = match doc.break_glass {
        None => None,
        Some(who) => {
            let span = who.span();
            let who = rule::who(&at, span.clone(), "break_glass", who.into_inner())?;
            if who
                .groups
                .iter()
                .any(|g| g.starts_with(super::SEGMENT_GROUP))
            {
                return Err(at.error(
                    span,
                    "break_glass.segment",
                    "break-glass accounts are named, never measured: list `users` or `groups`",
                ));
            }
            Some(who)
        }
    };
    let mut rules: Vec<Rule> = Vec::with_capacity(doc.rules.len());
    for (i, raw) in doc.rules.into_iter().enumerate() {
        let field = format!("rule[{}]", i + 1);
        if rules.iter().any(|r| r.name == raw.name.get_ref().trim()) {
            return Err(at.error(
                raw.name.span(),
                format!("{field}.name"),
                format!(
                    "a rule named \"{}\" already exists; give every rule its own name",
                    raw.name.get_ref()
                ),
            ));
        }
        rules.push(rule::rule(&at, &field, raw, &defaults, &calendars)?);
    }
    let segments = segments(&at, doc.segments)?;
    Ok(Policy {
        version,
        defaults,
        waves,
        calendars,
        rules,
        break_glass,
        segments,
    })
}

/// `[segments]`: 0 < moderate < high (defaults 5 and 20).
fn segments(
    at: &Positions,
    doc: Option<super::document::SegmentsDoc>,
) -> Result<crate::discovery::Thresholds, PolicyError> {
    let mut t = crate::discovery::Thresholds::default();
    let Some(doc) = doc else { return Ok(t) };
    let mut last = 0..0;
    for (value, slot, name) in [
        (doc.moderate, &mut t.moderate, "moderate"),
        (doc.high, &mut t.high, "high"),
    ] {
        if let Some(v) = value {
            last = v.span();
            *slot = u64::try_from(*v.get_ref()).map_err(|_| {
                at.error(
                    v.span(),
                    format!("segments.{name}"),
                    "a number of elevations per 30 days is 1 or more",
                )
            })?;
        }
    }
    t.check().map_err(|m| at.error(last, "segments", m))?;
    Ok(t)
}

/// The source text, for turning spans into lines and columns.
pub(super) struct Positions<'a> {
    text: &'a str,
}

impl Positions<'_> {
    pub(super) fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> PolicyError {
        let (line, column) = line_column(self.text, span.start);
        PolicyError {
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// Where `key` is set in the table whose `name` is given (tables carry no span themselves).
    pub(super) fn key(&self, name: &Spanned<String>, key: &str) -> Range<usize> {
        let offset = key_offset(self.text, name.span().start, key);
        offset..offset
    }

    pub(super) fn duration(
        &self,
        value: &Spanned<String>,
        field: &str,
    ) -> Result<jiff::SignedDuration, PolicyError> {
        duration::parse(value.get_ref()).map_err(|e| self.error(value.span(), field, e))
    }

    pub(super) fn name(
        &self,
        value: &Spanned<String>,
        field: &str,
        what: &str,
    ) -> Result<String, PolicyError> {
        let name = value.get_ref().trim();
        if name.is_empty() {
            return Err(self.error(
                value.span(),
                field,
                format!("{what} is empty; write a name"),
            ));
        }
        Ok(name.to_owned())
    }
}

fn mode(doc: ModeDoc) -> Mode {
    match doc {
        ModeDoc::Discover => Mode::Discover,
        ModeDoc::Enforce => Mode::Enforce,
    }
}

pub(super) fn reason_required(doc: ReasonDoc) -> bool {
    matches!(doc, ReasonDoc::Required)
}

pub(super) fn keep_caller_cwd(doc: WorkdirDoc) -> bool {
    matches!(doc, WorkdirDoc::Caller)
}

pub(super) fn continue_on_disconnect(doc: DisconnectDoc) -> bool {
    matches!(doc, DisconnectDoc::Continue)
}

fn defaults(at: &Positions, doc: DefaultsDoc) -> Result<Defaults, PolicyError> {
    let approvers = match &doc.approvers {
        Some(a) => at.name(a, "defaults.approvers", "the approver group")?,
        None => "helpdesk".to_owned(),
    };
    let session_max = match &doc.session_max {
        Some(d) => at.duration(d, "defaults.session_max")?,
        None => jiff::SignedDuration::from_hours(1),
    };
    let deny_message = match &doc.deny_message {
        Some(m) if m.get_ref().trim().is_empty() => {
            return Err(at.error(
                m.span(),
                "defaults.deny_message",
                "the deny message is empty; tell the requester what to do instead",
            ))
        }
        Some(m) => m.get_ref().trim().to_owned(),
        None => format!("no policy rule allows this request; ask {approvers} if you need it"),
    };
    let unknown_requester = doc
        .unknown_requester
        .map_or(UnknownRequester::CompareNames, unknown_requester);
    let unmatched = match doc.unmatched.unwrap_or(UnmatchedDoc::Approve) {
        UnmatchedDoc::Approve => Outcome::Approve(ApprovalRoute {
            approvers: approvers.clone(),
            count: 1,
            sla: None,
            escalate: None,
            expire: None,
            reauth: None,
            unknown_requester,
            offline_responders: None,
        }),
        UnmatchedDoc::Deny => Outcome::Deny {
            message: deny_message,
        },
        UnmatchedDoc::Auto => Outcome::Auto,
    };
    Ok(Defaults {
        unmatched,
        approvers,
        reason_required: doc.reason.is_some_and(reason_required),
        session_max,
        mode_written: doc.mode.is_some(),
        offline_max_age: match &doc.offline_max_age {
            Some(d) => Some(at.duration(d, "defaults.offline_max_age")?),
            None => None,
        },
        break_glass_codes: match &doc.break_glass_codes {
            None => None,
            Some(n) => match u8::try_from(*n.get_ref()) {
                Ok(m) if (2..=crate::offline::MAX_SHARES).contains(&m) => Some(m),
                _ => {
                    return Err(at.error(
                        n.span(),
                        "defaults.break_glass_codes",
                        format!(
                            "break glass needs codes from 2 to {} different helpdesk members; write e.g. `break_glass_codes = 2`",
                            crate::offline::MAX_SHARES
                        ),
                    ))
                }
            },
        },
        keep_caller_cwd: doc.workdir.is_some_and(keep_caller_cwd),
        continue_on_disconnect: doc.on_disconnect.is_some_and(continue_on_disconnect),
        mode: doc.mode.map_or(Mode::Enforce, mode),
        unknown_requester,
    })
}

pub(super) fn unknown_requester(doc: UnknownRequesterDoc) -> UnknownRequester {
    match doc {
        UnknownRequesterDoc::CompareNames => UnknownRequester::CompareNames,
        UnknownRequesterDoc::Refuse => UnknownRequester::Refuse,
    }
}

fn calendars(at: &Positions, docs: Vec<CalendarDoc>) -> Result<Vec<Calendar>, PolicyError> {
    let mut calendars: Vec<Calendar> = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        let field = format!("calendar[{}]", i + 1);
        let name = at.name(&doc.name, &format!("{field}.name"), "the calendar name")?;
        if name.starts_with('!') {
            return Err(at.error(
                doc.name.span(),
                format!("{field}.name"),
                "a calendar name cannot start with `!` (it means \"outside\" in `when`); rename it",
            ));
        }
        if calendars.iter().any(|c| c.name() == name) {
            return Err(at.error(
                doc.name.span(),
                format!("{field}.name"),
                format!(
                    "a calendar named \"{name}\" already exists; give every calendar its own name"
                ),
            ));
        }
        let mut calendar = Calendar::new(&name, doc.timezone.get_ref())
            .map_err(|e| at.error(doc.timezone.span(), format!("{field}.timezone"), e))?;
        if doc.weekly.get_ref().is_empty() {
            return Err(at.error(
                doc.weekly.span(),
                format!("{field}.weekly"),
                "a calendar needs at least one weekly window, like \"mon-fri 08:00-18:00\"",
            ));
        }
        for (j, w) in doc.weekly.get_ref().iter().enumerate() {
            let window = WeeklyWindow::parse(w.get_ref())
                .map_err(|e| at.error(w.span(), format!("{field}.weekly[{}]", j + 1), e))?;
            calendar.add_window(window);
        }
        for (j, d) in doc.dates_off.iter().enumerate() {
            let dates = DateRange::parse(d.get_ref())
                .map_err(|e| at.error(d.span(), format!("{field}.dates_off[{}]", j + 1), e))?;
            calendar.add_dates_off(dates);
        }
        calendars.push(calendar);
    }
    Ok(calendars)
}

fn waves(at: &Positions, docs: Vec<WaveDoc>) -> Result<Vec<Wave>, PolicyError> {
    let mut waves: Vec<Wave> = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        let field = format!("wave[{}]", i + 1);
        let name = at.name(&doc.name, &format!("{field}.name"), "the wave name")?;
        if waves.iter().any(|w| w.name == name) {
            return Err(at.error(
                doc.name.span(),
                format!("{field}.name"),
                format!("a wave named \"{name}\" already exists; give every wave its own name"),
            ));
        }
        let span = at.key(&doc.name, "who");
        let who = rule::who(at, span, &format!("{field}.who"), doc.who)?;
        waves.push(Wave {
            name,
            mode: mode(doc.mode),
            who,
        });
    }
    Ok(waves)
}
