//! Integrations with the places approvers are: chat, e-mail, webhooks (issue 6). Each module
//! turns outside input into something the application can trust, or refuses it, before the
//! application sees it, and renders untrusted text (argv, reasons, names) so that it stays text
//! in that channel (security invariant 8).

pub mod email;
pub mod oidc;
pub mod slack;
pub mod teams;
pub mod webhook;

use elevate_core::text;

/// `text` with every control, format and bidi character made visible (`\u{001b}`, `\u{000a}`), so a
/// newline or an escape sequence cannot fake a line of the message.
pub fn printable(text: &str) -> String {
    text::visible(text)
}

/// The channel a request goes to in a chat: its rule's own (keyed by the rule's name), else its
/// approver group's, else the catch-all `*`. An escalation goes to the escalation group's.
pub fn channel_key<'a, V>(
    channels: &'a std::collections::BTreeMap<String, V>,
    rule: Option<&str>,
    group: &str,
    escalation: bool,
) -> Option<(&'a String, &'a V)> {
    let by_rule = (!escalation)
        .then_some(rule)
        .flatten()
        .and_then(|r| channels.get_key_value(r));
    by_rule
        .or_else(|| channels.get_key_value(group))
        .or_else(|| channels.get_key_value("*"))
}

/// At most `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// What a request asks for, as a person reads it: the command line, or an admin session.
pub fn describe_target(target: &serde_json::Value) -> String {
    match target["kind"].as_str() {
        Some("command") => {
            let path = target["path"].as_str().unwrap_or("?");
            let args: Vec<String> = target["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            format!("Run: {}", text::command_line(path, &args))
        }
        Some("session") => format!(
            "Admin session of {} minutes",
            target["duration_secs"].as_u64().unwrap_or(0) / 60
        ),
        _ => "Elevation".to_string(),
    }
}
