//! Break-glass sessions devices reported, and their reviews.
//!
//! Must never: record a review without the session's CSRF token.

use super::*;

pub(super) struct BreakGlassRow {
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
pub(super) struct BreakGlassPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    rows: Vec<BreakGlassRow>,
}

pub(super) async fn break_glass(State(app): State<App>, user: PortalUser) -> Response {
    let uses = match app.break_glass_uses(&user.principal()).await {
        Ok(u) => u,
        Err(e) => return page_error(e),
    };
    page(BreakGlassPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
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
pub(super) struct ReviewForm {
    csrf: String,
    note: String,
}

with_csrf!(ReviewForm);

pub(super) async fn review_break_glass(
    State(app): State<App>,
    Path(id): Path<String>,
    SignedForm { user, form: f }: SignedForm<ReviewForm>,
) -> Response {
    match app
        .review_break_glass(&user.principal(), &id, &f.note)
        .await
    {
        Ok(()) => Redirect::to("/portal/break-glass").into_response(),
        Err(e) => page_error(e),
    }
}
