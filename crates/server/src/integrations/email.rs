//! E-mail over SMTP (lettre): approval requests to approvers with one-time links, and outcomes
//! to requesters. Every message has a plain-text and an HTML part; untrusted text is made
//! visible (no control characters) in both and HTML-escaped in the HTML part (askama), and
//! header values are single lines.
//!
//! `smtp_url`: `smtp://host:25` (plain, for a relay on the same host), `smtp://host:587?tls=required`
//! (STARTTLS) or `smtps://host:465` (TLS from the start).
//!
//! Must never: put a password into a message or an error, or a raw newline into a header.

use std::time::Duration;

use askama::Template;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::webhook::Sent;

/// How the server sends e-mail.
#[derive(Clone)]
pub struct EmailConfig {
    pub smtp_url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub from: Mailbox,
    /// Requesters without an account address get mail at `<login>@<this domain>`.
    pub requester_domain: Option<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &self.smtp_url)
            .field("user", &self.user)
            .field("from", &self.from.to_string())
            .field("requester_domain", &self.requester_domain)
            .finish_non_exhaustive()
    }
}

/// Checks an address (for account settings and configuration).
pub fn parse_address(text: &str) -> Result<Mailbox, String> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{text:?} is not an e-mail address ({e})"))
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A line of a request's facts, for both parts.
#[derive(Debug, Clone)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

/// The HTML part of a message.
#[derive(Debug, Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html><body style="font-family:sans-serif">
<h2>{{ heading }}</h2>
<table>{% for f in facts %}<tr><th align="left" valign="top">{{ f.label }}</th><td><code>{{ f.value }}</code></td></tr>{% endfor %}</table>
{% if let Some(a) = approve %}<p><a href="{{ a }}">Approve</a> &nbsp; <a href="{{ deny.as_deref().unwrap_or_default() }}">Deny</a></p>
<p style="color:#555">Each link works once, within an hour, and asks you to sign in to Elevate first.</p>{% endif %}
<p><a href="{{ portal }}">Open the request in the portal</a></p>
</body></html>"#
)]
pub struct Html<'a> {
    pub heading: &'a str,
    pub facts: &'a [Fact],
    pub approve: Option<String>,
    pub deny: Option<String>,
    pub portal: &'a str,
}

/// The plain-text part of the same message.
pub fn text(heading: &str, facts: &[Fact], links: Option<(&str, &str)>, portal: &str) -> String {
    let mut out = format!("{heading}\n\n");
    for f in facts {
        out.push_str(&format!("{}: {}\n", f.label, f.value));
    }
    if let Some((approve, deny)) = links {
        out.push_str(&format!(
            "\nApprove: {approve}\nDeny:    {deny}\n\nEach link works once, within an hour, and asks you to sign in to Elevate first.\n"
        ));
    }
    out.push_str(&format!("\nThe request in the portal: {portal}\n"));
    out
}

/// A header value: one line of visible characters, at most 150 of them.
pub fn header_line(text: &str) -> String {
    super::cut(&super::printable(text), 150)
}

/// Sends `mail` through the configured server; says whether to try again.
pub async fn send(config: &EmailConfig, mail: &Mail) -> Sent {
    let to: Mailbox = match mail.to.parse() {
        Ok(m) => m,
        Err(e) => {
            return Sent::Refused {
                status: 0,
                error: format!("{:?} is not an e-mail address ({e})", mail.to),
            }
        }
    };
    let message = Message::builder()
        .from(config.from.clone())
        .to(to)
        .subject(header_line(&mail.subject))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.html.clone()),
                ),
        );
    let message = match message {
        Ok(m) => m,
        Err(e) => {
            return Sent::Refused {
                status: 0,
                error: format!("the message could not be built: {e}"),
            }
        }
    };
    let builder = match AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url) {
        Ok(b) => b,
        Err(e) => {
            return Sent::Refused {
                status: 0,
                error: format!("smtp_url is not usable: {e}"),
            }
        }
    };
    let mut builder = builder.timeout(Some(Duration::from_secs(15)));
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    match builder.build().send(message).await {
        Ok(answer) => Sent::Delivered(answer.code().to_string().parse().unwrap_or(250)),
        Err(e) if e.is_permanent() => Sent::Refused {
            status: e.status().map_or(0, |c| c.to_string().parse().unwrap_or(0)),
            error: format!("the mail server refused the message: {e}"),
        },
        Err(e) => Sent::Retry {
            status: e.status().and_then(|c| c.to_string().parse().ok()),
            error: format!("the mail server could not take the message: {e}"),
        },
    }
}
