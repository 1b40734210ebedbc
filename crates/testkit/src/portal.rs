//! The portal as a browser without JavaScript uses it: sign in, read pages, take CSRF tokens.
//!
//! Must never: keep cookies between tests.

use super::*;

/// A client for the portal as a browser without JavaScript is: it keeps no cookies and follows
/// no redirects, so a test sees both.
pub fn portal_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// Posts the sign-in form as a browser does: the form is fetched first (its token and the
/// cookie that goes with it), then sent with `account`, `password` and `next`.
pub async fn portal_login(
    http: &reqwest::Client,
    url: &str,
    account: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let form = http
        .get(format!("{url}/portal/login"))
        .send()
        .await
        .expect("the portal answers");
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("elevate_login="))
        .expect("the sign-in form sets its cookie")
        .split(';')
        .next()
        .expect("a name=value")
        .to_owned();
    let csrf = csrf_of(&form.text().await.expect("a page"));
    http.post(format!("{url}/portal/login"))
        .header("cookie", cookie)
        .form(&[
            ("account", account),
            ("password", password),
            ("next", next),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .expect("the portal answers")
}

/// Signs `account` (with the testkit password) in to the portal at `url`; returns the session
/// cookie as a `cookie` header takes it.
pub async fn portal_cookie(http: &reqwest::Client, url: &str, account: &str) -> String {
    let r = portal_login(http, url, account, PASSWORD, "/portal/").await;
    assert_eq!(r.status(), 303, "sign-in should redirect");
    session_cookie(&r)
}

/// The portal session cookie a sign-in answer sets, as a `cookie` header takes it.
pub fn session_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("elevate_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .expect("a name=value")
        .to_owned()
}

/// The CSRF token of the (first) form on a portal page.
pub fn csrf_of(page: &str) -> String {
    const FIELD: &str = "name=\"csrf\" value=\"";
    let at = page.find(FIELD).expect("a form with a CSRF token") + FIELD.len();
    page[at..]
        .split('"')
        .next()
        .expect("a quoted token")
        .to_string()
}

/// A portal page as the holder of `cookie` sees it.
pub async fn portal_page(http: &reqwest::Client, url: &str, cookie: &str, path: &str) -> String {
    http.get(format!("{url}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("the portal answers")
        .text()
        .await
        .expect("a page")
}
