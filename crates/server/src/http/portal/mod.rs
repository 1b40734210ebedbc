//! The approver portal: server-rendered HTML that works without JavaScript. This module holds
//! the routes, sign-in and sign-out, the CSRF check, live updates and what every page
//! shares; each area has a file of its own (requests, audit, deliveries, offline codes, break
//! glass, devices).
//!
//! Must never: render untrusted text unescaped (askama escapes HTML; `text::visible` makes control
//! and bidi characters visible first), or accept a state-changing form without the sign-in's
//! CSRF token (the cookie is also `SameSite=Strict`).

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use elevate_core::text::visible;
use elevate_proto::v1::{RequestView, WireTarget};
use serde::Deserialize;

use crate::app::{App, AppError, Principal, Via};
use crate::store::{AccountRow, SignInRow};

mod audit;
mod break_glass;
mod deliveries;
mod devices;
mod discovery;
mod offline;
mod requests;
mod sso;

use audit::audit;
use break_glass::{break_glass, review_break_glass};
use deliveries::deliveries;
use devices::devices;
use discovery::{discovery, evidence};
use offline::{offline, respond_offline};
use requests::{all_requests, decide, decide_by_link, detail, open_link, queue};

const COOKIE: &str = "elevate_session";

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal/") }))
        .route("/portal/style.css", get(style))
        .route("/portal/login", get(login_form).post(login))
        .route("/portal/oidc/start", get(sso::start))
        .route("/portal/oidc/callback", get(sso::callback))
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
        .route("/portal/discovery", get(discovery))
        .route("/portal/discovery/people/{who}", get(evidence))
        .route("/portal/break-glass/{id}/review", post(review_break_glass))
}

/// A signed-in portal user; anyone else is sent to the sign-in page.
struct PortalUser {
    account: AccountRow,
    sign_in: SignInRow,
    cookie: String,
}

impl PortalUser {
    /// The account, signed in when this sign-in began.
    fn principal(&self) -> Principal {
        let mut account = self.account.clone();
        account.signed_in_at = Some(self.sign_in.created_at);
        Principal::Account(account)
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    named_cookie(headers, COOKIE)
}

/// The value of cookie `wanted` in a request's headers.
fn named_cookie(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_string())
}

/// The cookie that ties a sign-in form to the browser it was shown to (double submit: the form
/// carries the same random value), so no other site can sign a browser in to an account of its
/// choosing.
const LOGIN_COOKIE: &str = "elevate_login";

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when the portal is served
/// over https (its public URL says so).
fn set_cookie(app: &App, name: &str, value: &str, path: &str, max_age: u32) -> String {
    let secure = if app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

impl FromRequestParts<App> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let next = parts.uri.path().to_string();
        let to_login =
            || Redirect::to(&format!("/portal/login?next={}", urlencode(&next))).into_response();
        let cookie = cookie_value(&parts.headers).ok_or_else(to_login)?;
        match app.signed_in(&cookie).await {
            Ok(Some((account, sign_in))) => Ok(PortalUser {
                account,
                sign_in,
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

/// A form that carries the sign-in's CSRF token.
trait WithCsrf {
    fn csrf(&self) -> &str;
}

/// A signed-in user's form, its CSRF token checked against the sign-in before the handler
/// sees it: the one way a form that changes anything reaches a handler. Extracted last (it
/// reads the body).
struct SignedForm<T> {
    user: PortalUser,
    form: T,
}

impl<T: serde::de::DeserializeOwned + WithCsrf + Send> axum::extract::FromRequest<App>
    for SignedForm<T>
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, app: &App) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = PortalUser::from_request_parts(&mut parts, app).await?;
        let req = axum::extract::Request::from_parts(parts, body);
        let Form(form) = Form::<T>::from_request(req, app)
            .await
            .map_err(IntoResponse::into_response)?;
        if !constant_time_eq(form.csrf(), &user.sign_in.csrf) {
            return Err(page_error(AppError::Forbidden(
                "the form is stale or did not come from this portal; reload the page and try again"
                    .into(),
            )));
        }
        Ok(SignedForm { user, form })
    }
}

/// `impl WithCsrf` for forms whose token is the field `csrf`.
macro_rules! with_csrf {
    ($($form:ty),+) => {
        $(impl WithCsrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })+
    };
}
use with_csrf;

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
        include_str!("../../../templates/style.css"),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    next: String,
    /// The identity provider's name, when single sign-on is on.
    sso: Option<String>,
    /// The rule wants a fresh sign-in (the provider is asked to authenticate again).
    reauth: bool,
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

/// The sign-in page, with a fresh form token in the form and in a cookie.
async fn login_form(State(app): State<App>, Query(q): Query<NextQuery>) -> Response {
    let token = crate::app::auth::new_token("");
    let mut r = page(LoginPage {
        signed_in: None,
        csrf: token.clone(),
        flash: q.reauth.as_ref().map(|_| {
            "This request's rule needs a recent sign-in to decide it: please sign in again."
                .to_string()
        }),
        next: safe_next(q.next.as_deref()),
        sso: app.oidc().map(|o| o.display_name.clone()),
        reauth: q.reauth.is_some(),
    });
    let cookie = set_cookie(&app, LOGIN_COOKIE, &token, "/portal/login", 3600);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, value);
    }
    r
}

#[derive(Deserialize)]
struct LoginForm {
    account: String,
    password: String,
    next: Option<String>,
    /// The form's token (`login_form`); must match the browser's `elevate_login` cookie.
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(app): State<App>,
    axum::extract::ConnectInfo(super::PeerAddr(peer)): axum::extract::ConnectInfo<super::PeerAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let shown = named_cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if f.csrf.is_empty() || !constant_time_eq(&f.csrf, &shown) {
        // Not the form this browser was shown (another site posting, or an old page).
        let mut r = page(LoginPage {
            signed_in: None,
            csrf: String::new(),
            flash: Some("This sign-in form has expired: reload the page and sign in again.".into()),
            next,
            sso: app.oidc().map(|o| o.display_name.clone()),
            reauth: false,
        });
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    match app.sign_in(&f.account, &f.password, Some(peer.ip())).await {
        Ok((cookie, _csrf)) => {
            let set = set_cookie(&app, COOKIE, &cookie, "/", 43200);
            let done = set_cookie(&app, LOGIN_COOKIE, "", "/portal/login", 0);
            (
                AppendHeaders([(header::SET_COOKIE, set), (header::SET_COOKIE, done)]),
                Redirect::to(&next),
            )
                .into_response()
        }
        Err(AppError::Unauthenticated(m)) => {
            let mut r = page(LoginPage {
                signed_in: None,
                csrf: f.csrf,
                flash: Some(m),
                next,
                sso: app.oidc().map(|o| o.display_name.clone()),
                reauth: false,
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

with_csrf!(CsrfForm);

async fn logout(State(app): State<App>, SignedForm { user, .. }: SignedForm<CsrfForm>) -> Response {
    if let Err(e) = app.sign_out(&user.cookie).await {
        return page_error(e);
    }
    (
        [(header::SET_COOKIE, set_cookie(&app, COOKIE, "", "/", 0))],
        Redirect::to("/portal/login"),
    )
        .into_response()
}

fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
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
        include_str!("../../../templates/live.js"),
    )
        .into_response()
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
