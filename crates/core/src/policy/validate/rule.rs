//! Checking one `[[rule]]` table: who, what, when, where, action and its overrides.
//!
//! Must never: let a rule through that names a relative path, a malformed digest, an unknown
//! calendar, an empty matcher table or an approval count below 1.

use std::ops::Range;

use toml::Spanned;

use super::{continue_on_disconnect, keep_caller_cwd, reason_required, Positions};
use crate::calendar::Calendar;
use crate::policy::document::{
    ActionDoc, ApproveDoc, OneOrMany, RuleDoc, WhatDoc, WhereDoc, WhoDoc,
};
use crate::policy::glob::{ArgPattern, Glob};
use crate::policy::model::{Defaults, PackageMatch, Rule, What, When, Where, Who};
use crate::policy::PolicyError;
use crate::policy::SEGMENT_GROUP;
use crate::{ApprovalRoute, Outcome};

pub(super) fn rule(
    at: &Positions,
    field: &str,
    doc: RuleDoc,
    defaults: &Defaults,
    calendars: &[Calendar],
) -> Result<Rule, PolicyError> {
    let name = &doc.name;
    let who = match doc.who {
        Some(w) => Some(who(at, at.key(name, "who"), &format!("{field}.who"), w)?),
        None => None,
    };
    let what = match doc.what {
        Some(w) => Some(what(at, at.key(name, "what"), &format!("{field}.what"), w)?),
        None => None,
    };
    let when = match &doc.when {
        Some(w) => Some(when(at, &format!("{field}.when"), w, calendars)?),
        None => None,
    };
    let where_ = match doc.where_ {
        Some(w) => Some(where_(
            at,
            at.key(name, "where"),
            &format!("{field}.where"),
            w,
        )?),
        None => None,
    };
    let session_max = match &doc.session_max {
        Some(d) => Some(at.duration(d, &format!("{field}.session_max"))?),
        None => None,
    };
    Ok(Rule {
        name: at.name(name, &format!("{field}.name"), "the rule name")?,
        who,
        what,
        when,
        where_,
        action: action(at, &format!("{field}.action"), doc.action, defaults)?,
        reason_required: doc.reason.map(reason_required),
        session_max,
        keep_caller_cwd: doc.workdir.map(keep_caller_cwd),
        continue_on_disconnect: doc.on_disconnect.map(continue_on_disconnect),
        offline: doc.offline.unwrap_or(true),
    })
}

pub(super) fn who(
    at: &Positions,
    span: Range<usize>,
    field: &str,
    doc: WhoDoc,
) -> Result<Who, PolicyError> {
    let WhoDoc {
        users,
        mut groups,
        segment,
    } = doc;
    if groups.iter().any(|g| g.starts_with(SEGMENT_GROUP)) {
        return Err(at.error(
            span.clone(),
            format!("{field}.groups"),
            "a group name holds no `:`; for a frequency segment write `segment = \"low\"`",
        ));
    }
    let segments = match segment {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(list)) => list,
    };
    for s in segments {
        let name = s.trim();
        if crate::discovery::Segment::parse(name).is_none() {
            return Err(at.error(
                span.clone(),
                format!("{field}.segment"),
                format!("\"{name}\" is not a segment; use \"low\", \"moderate\" or \"high\""),
            ));
        }
        groups.push(format!("{SEGMENT_GROUP}{name}"));
    }
    if users.is_empty() && groups.is_empty() {
        return Err(at.error(
            span,
            field,
            "`who` lists nobody; add `users`, `groups` or `segment`, or leave `who` out to \
             match everyone",
        ));
    }
    Ok(Who { users, groups })
}

fn where_(
    at: &Positions,
    span: Range<usize>,
    field: &str,
    doc: WhereDoc,
) -> Result<Where, PolicyError> {
    let WhereDoc { tags, devices } = doc;
    if tags.is_empty() && devices.is_empty() {
        return Err(at.error(
            span,
            field,
            "`where` lists no device; add `tags` or `devices`, \
             or leave `where` out to match every device",
        ));
    }
    Ok(Where { tags, devices })
}

fn when(
    at: &Positions,
    field: &str,
    doc: &Spanned<String>,
    calendars: &[Calendar],
) -> Result<When, PolicyError> {
    let text = doc.get_ref().trim();
    let (inside, name) = match text.strip_prefix('!') {
        Some(rest) => (false, rest.trim()),
        None => (true, text),
    };
    let Some(calendar) = calendars.iter().position(|c| c.name() == name) else {
        let known: Vec<&str> = calendars.iter().map(Calendar::name).collect();
        let message = if known.is_empty() {
            format!(
                "unknown calendar \"{name}\"; no calendars are defined, \
                 add a [[calendar]] named \"{name}\""
            )
        } else {
            format!(
                "unknown calendar \"{name}\"; defined calendars: {}",
                known.join(", ")
            )
        };
        return Err(at.error(doc.span(), field, message));
    };
    Ok(When { calendar, inside })
}

fn what(
    at: &Positions,
    span: Range<usize>,
    field: &str,
    doc: WhatDoc,
) -> Result<What, PolicyError> {
    let mut paths = Vec::with_capacity(doc.paths.len());
    for (i, p) in doc.paths.iter().enumerate() {
        paths.push(path(at, &format!("{field}.paths[{}]", i + 1), p)?);
    }
    let mut sha256 = Vec::with_capacity(doc.sha256.len());
    for (i, d) in doc.sha256.iter().enumerate() {
        sha256.push(digest(at, &format!("{field}.sha256[{}]", i + 1), d)?);
    }
    let package = match &doc.package {
        None => None,
        Some(p) if p.get_ref() == "required" => Some(PackageMatch::Required),
        Some(p) => {
            let name = p.get_ref().trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(at.error(
                    p.span(),
                    format!("{field}.package"),
                    "write `package = \"required\"` or the name of one package, \
                     like `package = \"apt\"`",
                ));
            }
            Some(PackageMatch::Named(name.to_owned()))
        }
    };
    let args = doc
        .args
        .map(|a| a.iter().map(|s| ArgPattern::new(s)).collect());
    let what = What {
        paths,
        sha256,
        package,
        args,
        session: doc.session,
    };
    if what.session == Some(true) && what.has_command_matcher() {
        return Err(at.error(
            span,
            field,
            "a rule matches admin sessions (`session = true`) or commands \
             (paths, sha256, package, args), not both; split it into two rules",
        ));
    }
    if what.session.is_none() && !what.has_command_matcher() {
        return Err(at.error(
            span,
            field,
            "`what` is empty; add paths, sha256, package or args, set `session = true`, \
             or leave `what` out to match every request",
        ));
    }
    Ok(what)
}

fn path(at: &Positions, field: &str, doc: &Spanned<String>) -> Result<Glob, PolicyError> {
    let p = doc.get_ref();
    if !p.starts_with('/') {
        let example = p.trim_start_matches("./");
        return Err(at.error(
            doc.span(),
            field,
            format!(
                "\"{p}\" is a relative path; commands are matched by their resolved \
                 absolute path, write it like \"/usr/bin/{example}\""
            ),
        ));
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(at.error(
            doc.span(),
            field,
            format!(
                "\"{p}\" has `.` or `..` in it; commands are matched by their resolved \
                 path, write that path"
            ),
        ));
    }
    Ok(Glob::new(p))
}

fn digest(at: &Positions, field: &str, doc: &Spanned<String>) -> Result<String, PolicyError> {
    let d = doc.get_ref().trim();
    if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(at.error(
            doc.span(),
            field,
            format!(
                "\"{d}\" is not a SHA-256 digest; write the 64 hexadecimal characters \
                 that `sha256sum <file>` prints"
            ),
        ));
    }
    Ok(d.to_ascii_lowercase())
}

fn action(
    at: &Positions,
    field: &str,
    doc: ActionDoc,
    defaults: &Defaults,
) -> Result<Outcome, PolicyError> {
    match doc {
        ActionDoc::Auto => Ok(Outcome::Auto),
        ActionDoc::Deny(message) => {
            if message.get_ref().trim().is_empty() {
                return Err(at.error(
                    message.span(),
                    format!("{field}.deny"),
                    "the deny message is empty; tell the requester what to do instead",
                ));
            }
            Ok(Outcome::Deny {
                message: message.into_inner().trim().to_owned(),
            })
        }
        ActionDoc::Approve(doc) => {
            approve(at, &format!("{field}.approve"), *doc, defaults).map(Outcome::Approve)
        }
    }
}

fn approve(
    at: &Positions,
    field: &str,
    doc: ApproveDoc,
    defaults: &Defaults,
) -> Result<ApprovalRoute, PolicyError> {
    let approvers = match &doc.approvers {
        Some(a) => at.name(a, &format!("{field}.approvers"), "the approver group")?,
        None => defaults.approvers.clone(),
    };
    let count = match &doc.count {
        None => 1,
        Some(c) => match u32::try_from(*c.get_ref()) {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(at.error(
                    c.span(),
                    format!("{field}.count"),
                    format!(
                        "count is {}; it is how many approvers must say yes, so write 1 or more",
                        c.get_ref()
                    ),
                ))
            }
        },
    };
    // Waits are bounded: a year is far beyond any real SLA or expiry, and keeps every
    // `now + duration` in range.
    let bounded = |s: &Spanned<String>, name: &str| {
        let d = at.duration(s, &format!("{field}.{name}"))?;
        if d > jiff::SignedDuration::from_hours(24 * 366) {
            return Err(at.error(
                s.span(),
                format!("{field}.{name}"),
                format!("{name} is {}; write at most 366d", s.get_ref()),
            ));
        }
        Ok(d)
    };
    let sla = doc.sla.as_ref().map(|s| bounded(s, "sla")).transpose()?;
    if let (Some(e), None) = (&doc.escalate, &sla) {
        return Err(at.error(
            e.span(),
            format!("{field}.escalate"),
            "escalate needs an sla: write how long the first group has, e.g. sla = \"15m\"",
        ));
    }
    let escalate = doc
        .escalate
        .map(|e| at.name(&e, &format!("{field}.escalate"), "the escalation group"))
        .transpose()?;
    let expire_span = doc.expire.as_ref().map(|e| e.span()).unwrap_or(0..0);
    let expire = doc
        .expire
        .as_ref()
        .map(|s| bounded(s, "expire"))
        .transpose()?;
    let reauth = doc
        .reauth
        .as_ref()
        .map(|s| bounded(s, "reauth"))
        .transpose()?;
    if let (Some(sla), Some(expire)) = (sla, expire) {
        if expire <= sla {
            return Err(at.error(
                expire_span,
                format!("{field}.expire"),
                format!(
                    "expire ({}) must be longer than sla ({}): the request would expire before it could be escalated",
                    crate::duration::format(expire),
                    crate::duration::format(sla)
                ),
            ));
        }
    }
    Ok(ApprovalRoute {
        approvers,
        count,
        sla,
        escalate,
        expire,
        reauth,
        unknown_requester: doc
            .unknown_requester
            .map_or(defaults.unknown_requester, super::unknown_requester),
        offline_responders: doc
            .offline_responders
            .map(|g| {
                at.name(
                    &g,
                    &format!("{field}.offline_responders"),
                    "the responder group",
                )
            })
            .transpose()?,
    })
}
