//! Single sign-on in the portal: `/portal/oidc/start` sends the browser to the identity
//! provider with a signed start cookie; `/portal/oidc/callback` finishes the sign-in and sets
//! the portal's cookie.
//!
//! Must never: follow `next` off the portal (`safe_next`), or send the browser on with a
//! redirect from the callback (the portal's cookie is `SameSite=Strict`, which a browser holds
//! back on a redirect that began at another site; a page of ours moves it on instead).

use super::*;

/// The start cookie (`SameSite=Lax`: the provider's answer is a top-level navigation from its
/// site, which must carry it).
const START_COOKIE: &str = "elevate_oidc";

fn start_cookie(app: &App, value: &str, max_age: u32) -> String {
    let secure = if app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{START_COOKIE}={value}; Path=/portal/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

#[derive(Deserialize)]
pub(super) struct StartQuery {
    next: Option<String>,
    /// A fresh sign-in at the provider (for rules with `reauth`).
    fresh: Option<String>,
}

pub(super) async fn start(State(app): State<App>, Query(q): Query<StartQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    match app.oidc_start(&next, q.fresh.is_some()).await {
        Ok(s) => (
            [(header::SET_COOKIE, start_cookie(&app, &s.cookie, 600))],
            Redirect::to(&s.redirect),
        )
            .into_response(),
        Err(e) => page_error(e),
    }
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Template)]
#[template(path = "continue.html")]
struct Continue {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    next: String,
}

pub(super) async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let failed = |message: String, status: StatusCode| {
        let mut r = page(LoginPage {
            signed_in: None,
            csrf: String::new(),
            flash: Some(message),
            next: "/portal/".into(),
            sso: app.oidc().map(|o| o.display_name.clone()),
            reauth: false,
        });
        *r.status_mut() = status;
        r
    };
    if let Some(e) = q.error {
        let said = q.error_description.unwrap_or_default();
        return failed(
            format!(
                "The identity provider did not sign you in ({}: {})",
                visible(&e),
                visible(&said)
            ),
            StatusCode::UNAUTHORIZED,
        );
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return failed(
            "The identity provider's answer has no code.".into(),
            StatusCode::BAD_REQUEST,
        );
    };
    let cookie = named_cookie(&headers, START_COOKIE);
    match app.oidc_finish(cookie.as_deref(), &state, &code).await {
        Ok((session, next)) => {
            let next = safe_next(Some(&next));
            let mut r = page(Continue {
                signed_in: None,
                csrf: String::new(),
                flash: None,
                next,
            });
            for value in [
                set_cookie(&app, COOKIE, &session, "/", 43200),
                start_cookie(&app, "", 0),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Err(AppError::Unauthenticated(m)) => failed(m, StatusCode::UNAUTHORIZED),
        Err(AppError::Forbidden(m)) => failed(m, StatusCode::FORBIDDEN),
        Err(e) => page_error(e),
    }
}
