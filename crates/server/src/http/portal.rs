//! The approver portal: server-rendered HTML that works without JavaScript. Sign in, pending
//! queue, request detail with the facts an approver needs, approve/deny, audit list.
//!
//! Must never: render untrusted text unescaped (askama escapes HTML; `text::visible` makes control
//! and bidi characters visible first), or accept a state-changing form without the session's
//! CSRF token (the cookie is also `SameSite=Strict`).

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use elevate_core::text::visible;
use elevate_proto::v1::{RequestView, WireTarget};
use serde::Deserialize;

use crate::app::{App, AppError, Principal};
use crate::store::{AccountRow, SessionRow};

const COOKIE: &str = "elevate_session";

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal/") }))
        .route("/portal/style.css", get(style))
        .route("/portal/login", get(login_form).post(login))
        .route("/portal/logout", post(logout))
        .route("/portal/", get(queue))
        .route("/portal/requests", get(all_requests))
        .route("/portal/requests/{id}", get(detail))
        .route("/portal/requests/{id}/decide", post(decide))
        .route("/portal/links/{token}", get(open_link).post(decide_by_link))
        .route("/portal/events", get(events))
        .route("/portal/deliveries", get(deliveries))
        .route("/portal/live.js", get(live_js))
        .route("/portal/audit", get(audit))
        .route("/portal/offline", get(offline).post(respond_offline))
        .route("/portal/break-glass", get(break_glass))
        .route("/portal/devices", get(devices))
        .route("/portal/break-glass/{id}/review", post(review_break_glass))
}

/// A signed-in portal user; anyone else is sent to the sign-in page.
struct PortalUser {
    account: AccountRow,
    session: SessionRow,
    cookie: String,
}

impl PortalUser {
    /// The account, signed in when this portal session began.
    fn principal(&self) -> Principal {
        let mut account = self.account.clone();
        account.signed_in_at = Some(self.session.created_at);
        Principal::Account(account)
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

impl FromRequestParts<App> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path().to_string();
        let to_login =
            || Redirect::to(&format!("/portal/login?next={}", urlencode(&next))).into_response();
        let cookie = cookie_value(&parts.headers).ok_or_else(to_login)?;
        match app.session(&cookie).await {
            Ok(Some((account, session))) => Ok(PortalUser {
                account,
                session,
                cookie,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(page_error(e)),
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only same-site paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/portal/") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/portal/".to_string(),
    }
}

/// A form's optional text as typed: trimmed, and absent when empty.
fn typed(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The refusal of a form whose CSRF token is not this session's (`None` when it is).
fn stale_form(user: &PortalUser, csrf: &str) -> Option<Response> {
    (!constant_time_eq(csrf, &user.session.csrf)).then(|| {
        page_error(AppError::Forbidden(
            "the form is stale or did not come from this portal; reload the page and try again"
                .into(),
        ))
    })
}

fn page<T: Template>(t: T) -> Response {
    match t.render() {
        Ok(html) => (
            [
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
                    ),
                ),
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => page_error(AppError::Unexpected(anyhow::anyhow!("template: {e}"))),
    }
}

fn page_error(e: AppError) -> Response {
    let api = super::ApiError::from(e);
    let body = ErrorPage {
        signed_in: None,
        csrf: String::new(),
        flash: None,
        status: api.status.as_u16(),
        message: api.body.message,
    };
    let mut response = page(body);
    *response.status_mut() = api.status;
    response
}

#[derive(Template)]
#[template(
    source = "{% extends \"base.html\" %}{% block content %}<h1>Error {{ status }}</h1><p>{{ message }}</p><p><a href=\"/portal/\">Back to the queue</a></p>{% endblock %}",
    ext = "html"
)]
struct ErrorPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    status: u16,
    message: String,
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../templates/style.css"),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    next: String,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    /// Set when a high-risk rule needs a fresh sign-in before deciding.
    reauth: Option<String>,
}

/// To the sign-in page and back to `path`, because the rule wants a fresh sign-in.
fn sign_in_again(path: &str) -> Response {
    Redirect::to(&format!("/portal/login?reauth=1&next={}", urlencode(path))).into_response()
}

async fn login_form(Query(q): Query<NextQuery>) -> Response {
    page(LoginPage {
        signed_in: None,
        csrf: String::new(),
        flash: q.reauth.map(|_| {
            "This request's rule needs a recent sign-in to decide it: please sign in again."
                .to_string()
        }),
        next: safe_next(q.next.as_deref()),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    account: String,
    password: String,
    next: Option<String>,
}

async fn login(State(app): State<App>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    match app.open_session(&f.account, &f.password).await {
        Ok((cookie, _csrf)) => {
            let set =
                format!("{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
            ([(header::SET_COOKIE, set)], Redirect::to(&next)).into_response()
        }
        Err(AppError::Unauthenticated(m)) => {
            let mut r = page(LoginPage {
                signed_in: None,
                csrf: String::new(),
                flash: Some(m),
                next,
            });
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => page_error(e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(app): State<App>, user: PortalUser, Form(f): Form<CsrfForm>) -> Response {
    if !constant_time_eq(&f.csrf, &user.session.csrf) {
        return page_error(AppError::Forbidden(
            "the form is stale; reload the page".into(),
        ));
    }
    if let Err(e) = app.close_session(&user.cookie).await {
        return page_error(e);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/portal/login"),
    )
        .into_response()
}

struct Row {
    id: String,
    when: String,
    user: String,
    device: String,
    what: String,
    state: String,
    approvers: String,
}

fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn row(r: &RequestView) -> Row {
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
struct QueuePage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    heading: String,
    rows: Vec<Row>,
}

async fn list(app: &App, user: &PortalUser, state: Option<&str>, heading: &str) -> Response {
    match app.requests(&user.principal(), state, None, 200).await {
        Ok(requests) => page(QueuePage {
            signed_in: Some(user.account.name.clone()),
            csrf: user.session.csrf.clone(),
            flash: None,
            heading: heading.into(),
            rows: requests.iter().map(row).collect(),
        }),
        Err(e) => page_error(e),
    }
}

async fn queue(State(app): State<App>, user: PortalUser) -> Response {
    list(&app, &user, Some("pending"), "Waiting for a decision").await
}

async fn all_requests(State(app): State<App>, user: PortalUser) -> Response {
    list(&app, &user, None, "All requests").await
}

struct Detail {
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

struct LinkForm {
    token: String,
    approve: bool,
    expires: String,
}

#[derive(Template)]
#[template(path = "request.html")]
struct DetailPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    r: Detail,
}

async fn detail(State(app): State<App>, user: PortalUser, Path(id): Path<String>) -> Response {
    detail_page(&app, &user, &id, None).await
}

/// Server-sent events for live pages: `change` whenever a request changes (here or on another
/// replica), and a keep-alive comment every 15 seconds.
async fn events(
    State(app): State<App>,
    _user: PortalUser,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let changes = app.subscribe_changes();
    let stream = futures_util::stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok()?;
        let n = *changes.borrow_and_update();
        Some((
            Ok(Event::default().event("change").data(n.to_string())),
            changes,
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}

/// The script of live pages: on each change, the list is fetched again and swapped in.
async fn live_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../templates/live.js"),
    )
        .into_response()
}

/// A one-time approval link (from e-mail or Teams): shows the request and a form that decides
/// through the link. Opening it decides nothing.
async fn open_link(
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
struct LinkDecideForm {
    csrf: String,
    comment: Option<String>,
}

async fn decide_by_link(
    State(app): State<App>,
    user: PortalUser,
    Path(token): Path<String>,
    Form(f): Form<LinkDecideForm>,
) -> Response {
    if let Some(refused) = stale_form(&user, &f.csrf) {
        return refused;
    }
    let comment = typed(&f.comment);
    match app.decide_by_link(&user.principal(), &token, comment).await {
        Ok((link, _)) => {
            Redirect::to(&format!("/portal/requests/{}", urlencode(&link.request))).into_response()
        }
        Err(AppError::Unauthenticated(_)) => sign_in_again(&format!("/portal/links/{token}")),
        Err(e) => page_error(e),
    }
}

async fn detail_page(app: &App, user: &PortalUser, id: &str, link: Option<LinkForm>) -> Response {
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
    } else if v.user == user.account.name {
        "This is your own request: another approver must decide it.".to_string()
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
        user: visible(&v.user),
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
        csrf: user.session.csrf.clone(),
        flash: None,
        r,
    })
}

#[derive(Deserialize)]
struct DecideForm {
    csrf: String,
    verdict: String,
    comment: Option<String>,
}

async fn decide(
    State(app): State<App>,
    user: PortalUser,
    Path(id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Response {
    if let Some(refused) = stale_form(&user, &f.csrf) {
        return refused;
    }
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
        .decide_request(&user.principal(), &id, approve, comment, "portal")
        .await
    {
        Ok(_) => Redirect::to(&format!("/portal/requests/{}", urlencode(&id))).into_response(),
        Err(AppError::Unauthenticated(_)) => sign_in_again(&format!("/portal/requests/{id}")),
        Err(e) => page_error(e),
    }
}

struct AuditRow {
    seq: u64,
    when: String,
    actor: String,
    action: String,
    subject: String,
    data: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    chain_status: String,
    chain_class: String,
    rows: Vec<AuditRow>,
}

async fn audit(State(app): State<App>, user: PortalUser) -> Response {
    let principal = user.principal();
    let report = match app.verify_audit(&principal).await {
        Ok(r) => r,
        Err(e) => return page_error(e),
    };
    let records = match app.store().audit_latest(200).await {
        Ok(r) => r,
        Err(e) => return page_error(e.into()),
    };
    let (chain_status, chain_class) = match &report.first_break {
        None => (
            format!(
                "Chain intact: {} records verified; head {}",
                report.count,
                &report.head[..16]
            ),
            "ok",
        ),
        Some(b) => (format!("Chain BROKEN: {}", visible(&b.message)), "broken"),
    };
    page(AuditPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.session.csrf.clone(),
        flash: None,
        chain_status,
        chain_class: chain_class.into(),
        rows: records
            .into_iter()
            .map(|r| AuditRow {
                seq: r.seq,
                when: when(r.event.at),
                actor: visible(&r.event.actor),
                action: visible(&r.event.action),
                subject: visible(&r.event.subject),
                data: visible(&r.event.data),
            })
            .collect(),
    })
}

struct DeliveryLine {
    when: String,
    channel: String,
    target: String,
    event: String,
    subject: String,
    request: Option<String>,
    short: String,
    state: String,
    state_class: &'static str,
    attempts: u32,
    next: String,
    last: String,
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    request: Option<String>,
    rows: Vec<DeliveryLine>,
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    request: Option<String>,
}

/// The delivery log (admins and auditors), optionally of one request; updates itself.
async fn deliveries(
    State(app): State<App>,
    user: PortalUser,
    Query(q): Query<DeliveriesQuery>,
) -> Response {
    let request = q.request.filter(|r| !r.is_empty());
    let rows = match app
        .deliveries(&user.principal(), request.as_deref(), 300)
        .await
    {
        Ok(r) => r,
        Err(e) => return page_error(e),
    };
    page(DeliveriesPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.session.csrf.clone(),
        flash: None,
        request,
        rows: rows
            .into_iter()
            .map(|d| {
                let request = d.subject.strip_prefix("request:").map(str::to_string);
                DeliveryLine {
                    when: when(d.created_at),
                    channel: d.channel,
                    // An address or a subscription's name; never a URL (Teams URLs are secrets).
                    target: visible(&d.target),
                    event: visible(&d.event),
                    short: request
                        .as_deref()
                        .map(|r| {
                            r.chars()
                                .rev()
                                .take(8)
                                .collect::<Vec<_>>()
                                .into_iter()
                                .rev()
                                .collect()
                        })
                        .unwrap_or_default(),
                    request,
                    subject: visible(&d.subject),
                    state_class: match d.state.as_str() {
                        "delivered" => "approved",
                        "failed" => "denied",
                        _ => "pending",
                    },
                    state: d.state,
                    attempts: d.attempts,
                    next: when(d.next_at),
                    last: match (d.last_status, d.last_error) {
                        (_, Some(e)) => visible(&e),
                        (Some(s), None) => format!("{s}"),
                        (None, None) => "—".into(),
                    },
                }
            })
            .collect(),
    })
}

struct ChallengeView {
    challenge: String,
    devices: String,
    device_names: Vec<String>,
    several: bool,
    user: String,
    uid: u32,
}

struct AnswerView {
    code: String,
    who: String,
    device: String,
    grants: String,
    minutes: u16,
}

#[derive(Template)]
#[template(path = "offline.html")]
struct OfflinePage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    typed: String,
    found: Option<ChallengeView>,
    answer: Option<AnswerView>,
}

#[derive(Deserialize)]
struct ChallengeQuery {
    challenge: Option<String>,
}

/// The helpdesk's page: type a challenge, see whose it is, answer it.
async fn offline(
    State(app): State<App>,
    user: PortalUser,
    Query(q): Query<ChallengeQuery>,
) -> Response {
    let typed = q.challenge.unwrap_or_default();
    let found = if typed.trim().is_empty() {
        None
    } else {
        match app.view_challenge(&user.principal(), &typed).await {
            Ok(v) => Some(ChallengeView {
                challenge: v.challenge,
                devices: v
                    .devices
                    .iter()
                    .map(|d| visible(&d.name))
                    .collect::<Vec<_>>()
                    .join(", "),
                several: v.devices.len() > 1,
                device_names: v.devices.iter().map(|d| visible(&d.name)).collect(),
                user: v
                    .user
                    .as_deref()
                    .map_or_else(|| "not seen on this device yet".to_owned(), visible),
                uid: v.uid,
            }),
            Err(e) => return page_error(e),
        }
    };
    page(OfflinePage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.session.csrf.clone(),
        flash: None,
        typed: visible(&typed),
        found,
        answer: None,
    })
}

#[derive(Deserialize)]
struct RespondForm {
    csrf: String,
    challenge: String,
    scope: String,
    duration: String,
    reason: String,
    device: Option<String>,
}

async fn respond_offline(
    State(app): State<App>,
    user: PortalUser,
    Form(f): Form<RespondForm>,
) -> Response {
    if let Some(refused) = stale_form(&user, &f.csrf) {
        return refused;
    }
    let minutes = match elevate_core::duration::parse(&f.duration) {
        Ok(d) if d.is_positive() && d.as_secs() <= 24 * 3600 => (d.as_secs() / 60).max(1) as u16,
        _ => {
            return page_error(AppError::BadRequest(
                "the duration must be between 1m and 24h, e.g. 30m or 2h".into(),
            ))
        }
    };
    let body = elevate_proto::v1::OfflineRespondIn {
        challenge: f.challenge,
        scope: f.scope,
        minutes,
        reason: f.reason,
        device: f.device.filter(|d| !d.is_empty()),
    };
    let answer = match app.respond_offline(&user.principal(), &body).await {
        Ok(a) => a,
        Err(e) => return page_error(e),
    };
    page(OfflinePage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.session.csrf.clone(),
        flash: None,
        typed: String::new(),
        found: None,
        answer: Some(AnswerView {
            code: answer.response,
            who: answer
                .user
                .as_deref()
                .map_or_else(|| format!("uid {}", answer.uid), visible),
            device: visible(&answer.device),
            grants: match answer.scope.as_str() {
                "session" => "an admin session".into(),
                "break-glass" => "your share of a break-glass session".into(),
                _ => "the pending request".into(),
            },
            minutes: answer.minutes,
        }),
    })
}

struct DeviceCard {
    name: String,
    tags: String,
    last_seen: String,
    /// (reported, what, user, right, to do)
    rights: Vec<(String, String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    rows: Vec<DeviceCard>,
}

async fn devices(State(app): State<App>, user: PortalUser) -> Response {
    let principal = user.principal();
    let devices = match app.devices(&principal).await {
        Ok(d) => d,
        Err(e) => return page_error(e),
    };
    let mut rows = Vec::with_capacity(devices.len());
    for d in devices {
        let rights = match app.device_rights(&principal, &d.name).await {
            Ok(r) => r,
            Err(e) => return page_error(e),
        };
        rows.push(DeviceCard {
            name: visible(&d.name),
            tags: visible(&d.tags.join(", ")),
            last_seen: d.last_seen_at.map_or("never".into(), when),
            rights: rights
                .into_iter()
                .map(|r| {
                    (
                        when(r.at),
                        visible(&r.action),
                        visible(&r.user),
                        visible(&r.right),
                        visible(&r.message),
                    )
                })
                .collect(),
        });
    }
    page(DevicesPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.session.csrf.clone(),
        flash: None,
        rows,
    })
}

struct BreakGlassRow {
    challenge: String,
    when: String,
    device: String,
    user: String,
    reason: String,
    issued_by: String,
    /// The session's length, or that the device has not reported it.
    length: String,
    /// (by, when, note)
    reviewed: Option<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "breakglass.html")]
struct BreakGlassPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    rows: Vec<BreakGlassRow>,
}

async fn break_glass(State(app): State<App>, user: PortalUser) -> Response {
    let uses = match app.break_glass_uses(&user.principal()).await {
        Ok(u) => u,
        Err(e) => return page_error(e),
    };
    page(BreakGlassPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.session.csrf.clone(),
        flash: None,
        rows: uses
            .into_iter()
            .map(|u| BreakGlassRow {
                challenge: urlencode(&u.challenge),
                when: when(u.at),
                device: visible(&u.device),
                user: visible(&u.user),
                reason: visible(&u.reason),
                issued_by: if u.issued_by.is_empty() {
                    "none issued by this server".into()
                } else {
                    visible(&u.issued_by.join(", "))
                },
                length: match u.reported_secs {
                    Some(secs) => format!("{} min", secs / 60),
                    None => "(use not reported by the device yet)".into(),
                },
                reviewed: u
                    .review
                    .map(|(by, at, note)| (visible(&by), when(at), visible(&note))),
            })
            .collect(),
    })
}

#[derive(Deserialize)]
struct ReviewForm {
    csrf: String,
    note: String,
}

async fn review_break_glass(
    State(app): State<App>,
    user: PortalUser,
    Path(id): Path<String>,
    Form(f): Form<ReviewForm>,
) -> Response {
    if let Some(refused) = stale_form(&user, &f.csrf) {
        return refused;
    }
    match app
        .review_break_glass(&user.principal(), &id, &f.note)
        .await
    {
        Ok(()) => Redirect::to("/portal/break-glass").into_response(),
        Err(e) => page_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_follows_portal_paths() {
        for (input, expect) in [
            (Some("/portal/requests/1"), "/portal/requests/1"),
            (Some("https://evil.example/"), "/portal/"),
            (Some("//evil.example/portal/"), "/portal/"),
            (Some("/portal/\\evil"), "/portal/"),
            (None, "/portal/"),
        ] {
            assert_eq!(safe_next(input), expect, "{input:?}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; elevate_session=ews_x; b=2"),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("ews_x"));
    }
}
