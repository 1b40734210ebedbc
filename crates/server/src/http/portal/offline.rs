//! The helpdesk's offline codes: type a challenge, see whose it is, answer it.
//!
//! Must never: answer without the session's CSRF token and a reason.

use super::*;

pub(super) struct ChallengeView {
    challenge: String,
    devices: String,
    device_names: Vec<String>,
    several: bool,
    user: String,
    uid: u32,
    names_command: bool,
}

pub(super) struct AnswerView {
    code: String,
    who: String,
    device: String,
    grants: String,
    minutes: u16,
    /// What a code for one request covers: the command, its SHA-256, package and rule.
    covers: Option<String>,
}

#[derive(Template)]
#[template(path = "offline.html")]
pub(super) struct OfflinePage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    typed: String,
    found: Option<ChallengeView>,
    answer: Option<AnswerView>,
}

#[derive(Deserialize)]
pub(super) struct ChallengeQuery {
    challenge: Option<String>,
}

/// The helpdesk's page: type a challenge, see whose it is, answer it.
pub(super) async fn offline(
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
                names_command: v.names_command,
            }),
            Err(e) => return page_error(e),
        }
    };
    page(OfflinePage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
        flash: None,
        typed: visible(&typed),
        found,
        answer: None,
    })
}

#[derive(Deserialize)]
pub(super) struct RespondForm {
    csrf: String,
    challenge: String,
    scope: String,
    duration: String,
    reason: String,
    device: Option<String>,
    command: Option<String>,
}

with_csrf!(RespondForm);

pub(super) async fn respond_offline(
    State(app): State<App>,
    SignedForm { user, form: f }: SignedForm<RespondForm>,
) -> Response {
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
        command: f.command.filter(|c| !c.trim().is_empty()),
        sha256: None,
    };
    let answer = match app.respond_offline(&user.principal(), &body).await {
        Ok(a) => a,
        Err(e) => return page_error(e),
    };
    page(OfflinePage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
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
            covers: match (&answer.command, &answer.sha256) {
                (Some(c), Some(h)) => Some(format!(
                    "{} (SHA-256 {}…, {}; rule {})",
                    visible(c),
                    &h[..16.min(h.len())],
                    answer.package.as_deref().map_or_else(
                        || "no package".into(),
                        |p| format!("package {}", visible(p))
                    ),
                    visible(answer.rule.as_deref().unwrap_or("(the defaults)"))
                )),
                _ => None,
            },
        }),
    })
}
