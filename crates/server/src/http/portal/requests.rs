//! The requests pages: the pending queue, all requests, a request's facts for an approver,
//! approve/deny through the form or a one-time link.
//!
//! Must never: decide on a form without the session's CSRF token, or on a link's opening alone.

use super::*;

pub(super) struct Row {
    id: String,
    when: String,
    user: String,
    device: String,
    what: String,
    state: String,
    approvers: String,
}

pub(super) fn row(r: &RequestView) -> Row {
    Row {
        id: r.id.clone(),
        when: when(r.created_at),
        user: visible(&r.user),
        device: visible(&r.device),
        what: r.target.describe(),
        state: r.state.clone(),
        approvers: r.decision.approvers.clone().unwrap_or_else(|| "—".into()),
    }
}

#[derive(Template)]
#[template(path = "queue.html")]
pub(super) struct QueuePage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    heading: String,
    rows: Vec<Row>,
}

pub(super) async fn list(
    app: &App,
    user: &PortalUser,
    state: Option<&str>,
    heading: &str,
) -> Response {
    match app.requests(&user.principal(), state, None, 200).await {
        Ok(requests) => page(QueuePage {
            signed_in: Some(user.account.name.clone()),
            csrf: user.sign_in.csrf.clone(),
            flash: None,
            heading: heading.into(),
            rows: requests.iter().map(row).collect(),
        }),
        Err(e) => page_error(e),
    }
}

pub(super) async fn queue(State(app): State<App>, user: PortalUser) -> Response {
    list(&app, &user, Some("pending"), "Waiting for a decision").await
}

pub(super) async fn all_requests(State(app): State<App>, user: PortalUser) -> Response {
    list(&app, &user, None, "All requests").await
}

pub(super) struct Detail {
    id: String,
    state: String,
    user: String,
    uid: u32,
    groups: String,
    device: String,
    what: String,
    path: String,
    sha256: String,
    package: String,
    reason: String,
    workdir: String,
    when: String,
    channel: String,
    rule: String,
    policy_version: u64,
    explanation: String,
    approvers: String,
    needed: u32,
    history: String,
    exit_code: Option<i32>,
    approvals: Vec<String>,
    can_decide: bool,
    why_not: String,
    /// Opened through a one-time link: the form decides through it.
    link: Option<LinkForm>,
    first_seen: String,
    time_of_day: String,
    metrics: String,
}

pub(super) struct LinkForm {
    token: String,
    approve: bool,
    expires: String,
}

#[derive(Template)]
#[template(path = "request.html")]
pub(super) struct DetailPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    r: Detail,
}

pub(super) async fn detail(
    State(app): State<App>,
    user: PortalUser,
    Path(id): Path<String>,
) -> Response {
    detail_page(&app, &user, &id, None).await
}

/// A one-time approval link (from e-mail or Teams): shows the request and a form that decides
/// through the link. Opening it decides nothing.
pub(super) async fn open_link(
    State(app): State<App>,
    user: PortalUser,
    Path(token): Path<String>,
) -> Response {
    let link = match app.open_link(&user.principal(), &token).await {
        Ok(l) => l,
        Err(e) => return page_error(e),
    };
    let form = LinkForm {
        token,
        approve: link.approve,
        expires: when(link.expires),
    };
    detail_page(&app, &user, &link.request, Some(form)).await
}

#[derive(Deserialize)]
pub(super) struct LinkDecideForm {
    csrf: String,
    comment: Option<String>,
}

with_csrf!(LinkDecideForm);

pub(super) async fn decide_by_link(
    State(app): State<App>,
    Path(token): Path<String>,
    SignedForm { user, form: f }: SignedForm<LinkDecideForm>,
) -> Response {
    let comment = typed(&f.comment);
    match app.decide_by_link(&user.principal(), &token, comment).await {
        Ok((link, _)) => {
            Redirect::to(&format!("/portal/requests/{}", urlencode(&link.request))).into_response()
        }
        Err(AppError::Unauthenticated(_)) => sign_in_again(&format!("/portal/links/{token}")),
        Err(e) => page_error(e),
    }
}

pub(super) async fn detail_page(
    app: &App,
    user: &PortalUser,
    id: &str,
    link: Option<LinkForm>,
) -> Response {
    let d = match app.request(&user.principal(), id).await {
        Ok(d) => d,
        Err(e) => return page_error(e),
    };
    let v = &d.view;
    let (path, sha256, package) = match &v.target {
        WireTarget::Command {
            path,
            invoked,
            sha256,
            package,
            ..
        } => (
            // The name the program sees decides what it does (a link to a multi-call program).
            match invoked.as_deref().filter(|i| *i != path) {
                Some(invoked) => format!("{} (invoked as {})", visible(path), visible(invoked)),
                None => visible(path),
            },
            sha256.clone().unwrap_or_else(|| "not known".into()),
            package
                .as_deref()
                .map(visible)
                .unwrap_or_else(|| "not from a package".into()),
        ),
        WireTarget::Session { .. } => ("—".into(), "—".into(), "—".into()),
    };
    let group = v.decision.approvers.clone().unwrap_or_default();
    let why_not = if v.state != "pending" {
        format!("This request is {}; nothing left to decide.", v.state)
    } else if let Some(why) = &d.not_for_you {
        format!("You cannot decide this request: {why}.")
    } else if !user.account.groups.contains(&group)
        && !v
            .escalated_to
            .as_ref()
            .is_some_and(|e| user.account.groups.contains(e))
    {
        format!("This request is routed to {group}; you are not in that group.")
    } else {
        String::new()
    };
    let h = &d.history;
    let mut history = if h.total == 0 {
        "never asked for before".to_string()
    } else {
        format!(
            "asked {} before: {} approved, {} denied",
            if h.total == 1 {
                "once".to_string()
            } else {
                format!("{} times", h.total)
            },
            h.approved,
            h.denied
        )
    };
    if !h.approvers.is_empty() {
        let by: Vec<String> = h
            .approvers
            .iter()
            .map(|(who, n)| format!("{} ({n})", visible(who)))
            .collect();
        history.push_str(&format!("; approved by {}", by.join(", ")));
    }
    let first_seen = match &h.first_seen {
        Some((at, device)) if h.total > 0 => format!("{} on {}", when(*at), visible(device)),
        _ => "now: this is the first time anywhere in the fleet".to_string(),
    };
    let hour = (v.created_at.as_second().rem_euclid(86_400) / 3600) as u8;
    let time_of_day = match crate::app::unusual_hour(hour, &h.user_hours) {
        None => format!("{hour:02}:00 UTC (too few earlier requests to tell)"),
        Some(false) => format!("{hour:02}:00 UTC, usual for {}", visible(&v.user)),
        Some(true) => format!(
            "{hour:02}:00 UTC — UNUSUAL: {}'s earlier requests were at other hours",
            visible(&v.user)
        ),
    };
    let metrics = {
        let secs = |a: jiff::Timestamp| a.duration_since(v.created_at).as_secs();
        let mut parts = Vec::new();
        if let Some(t) = v.first_viewed_at {
            parts.push(format!("first viewed after {}s", secs(t)));
        }
        if let Some(t) = v.decided_at {
            parts.push(format!(
                "decided after {}s via {}",
                secs(t),
                v.decided_via.as_deref().unwrap_or("?")
            ));
        }
        if let Some(e) = &v.escalated_to {
            parts.push(format!("escalated to {}", visible(e)));
        }
        if parts.is_empty() {
            "not viewed by an approver yet".to_string()
        } else {
            parts.join("; ")
        }
    };
    let r = Detail {
        id: v.id.clone(),
        state: v.state.clone(),
        user: match d.requester.as_slice() {
            [] => format!("{} (not in the people directory)", visible(&v.user)),
            people => format!("{} ({})", visible(&v.user), visible(&people.join(" or "))),
        },
        uid: v.uid,
        groups: visible(&v.groups.join(", ")),
        device: visible(&v.device),
        what: v.target.describe(),
        path,
        sha256,
        package,
        reason: v
            .reason
            .as_deref()
            .map(visible)
            .unwrap_or_else(|| "none given".into()),
        workdir: match (&v.cwd, v.decision.keep_caller_cwd) {
            (Some(cwd), true) => format!("{} (the command runs there)", visible(cwd)),
            (Some(cwd), false) => format!("{} (the command runs in /)", visible(cwd)),
            (None, _) => "/ (the requester's directory was not sent)".into(),
        },
        when: when(v.created_at),
        channel: v.channel.clone(),
        rule: v
            .decision
            .rule
            .clone()
            .unwrap_or_else(|| "the defaults".into()),
        policy_version: v.decision.policy_version,
        explanation: visible(&v.decision.explanation),
        approvers: if group.is_empty() {
            "—".into()
        } else {
            group
        },
        needed: v.decision.needed,
        history,
        exit_code: v.exit_code,
        approvals: v
            .approvals
            .iter()
            .map(|a| {
                format!(
                    "{} {} at {}{}",
                    a.approver,
                    if a.verdict == "approve" {
                        "approved"
                    } else {
                        "denied"
                    },
                    when(a.at),
                    a.comment
                        .as_deref()
                        .map(|c| format!(": {}", visible(c)))
                        .unwrap_or_default()
                )
            })
            .collect(),
        can_decide: why_not.is_empty(),
        why_not,
        link,
        first_seen,
        time_of_day,
        metrics,
    };
    page(DetailPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
        flash: None,
        r,
    })
}

#[derive(Deserialize)]
pub(super) struct DecideForm {
    csrf: String,
    verdict: String,
    comment: Option<String>,
}

with_csrf!(DecideForm);

pub(super) async fn decide(
    State(app): State<App>,
    Path(id): Path<String>,
    SignedForm { user, form: f }: SignedForm<DecideForm>,
) -> Response {
    let approve = match f.verdict.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return page_error(AppError::BadRequest(
                "verdict must be approve or deny".into(),
            ))
        }
    };
    let comment = typed(&f.comment);
    match app
        .decide_request(&user.principal(), &id, approve, comment, Via::Portal)
        .await
    {
        Ok(_) => Redirect::to(&format!("/portal/requests/{}", urlencode(&id))).into_response(),
        Err(AppError::Unauthenticated(_)) => sign_in_again(&format!("/portal/requests/{id}")),
        Err(e) => page_error(e),
    }
}
