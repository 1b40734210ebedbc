//! The delivery log: what each notification channel was sent, and what became of it.
//!
//! Must never: show a receiver's secret or unescaped text.

use super::*;

pub(super) struct DeliveryLine {
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
pub(super) struct DeliveriesPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    request: Option<String>,
    rows: Vec<DeliveryLine>,
}

#[derive(Deserialize)]
pub(super) struct DeliveriesQuery {
    request: Option<String>,
}

/// The delivery log (admins and auditors), optionally of one request; updates itself.
pub(super) async fn deliveries(
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
        csrf: user.sign_in.csrf.clone(),
        flash: None,
        request,
        rows: rows
            .into_iter()
            .map(|d| {
                let request = d.subject.strip_prefix("request:").map(str::to_string);
                DeliveryLine {
                    when: when(d.created_at),
                    channel: d.channel.to_string(),
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
