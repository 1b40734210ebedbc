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

/// Signs `account` (with the testkit password) in to the portal at `url`; returns the session
/// cookie as a `cookie` header takes it.
pub async fn portal_cookie(http: &reqwest::Client, url: &str, account: &str) -> String {
    let r = http
        .post(format!("{url}/portal/login"))
        .form(&[
            ("account", account),
            ("password", PASSWORD),
            ("next", "/portal/"),
        ])
        .send()
        .await
        .expect("the portal answers");
    assert_eq!(r.status(), 303, "sign-in should redirect");
    let cookie = r.headers()["set-cookie"].to_str().expect("a cookie");
    cookie.split(';').next().expect("a name=value").to_owned()
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
