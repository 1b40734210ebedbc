//! Printing for people and scripts: aligned tables with untrusted text made visible, or JSON.
//!
//! Must never: send a raw control character from server data to the terminal.

use elevate_proto::v1::{RequestView, WireTarget};

/// Text safe to print on a terminal (control characters and bidi overrides made visible).
pub fn terminal_safe(text: &str) -> String {
    elevate_core::text::visible(text)
}

/// Prints rows as aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| terminal_safe(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The full story of one request.
pub fn request(r: &RequestView) {
    let d = &r.decision;
    let mut facts = vec![
        ("id", r.id.clone()),
        ("state", r.state.clone()),
        (
            "user",
            format!("{} (uid {}, groups {})", r.user, r.uid, r.groups.join(",")),
        ),
        ("device", r.device.clone()),
        ("what", r.target.describe()),
    ];
    if let WireTarget::Command {
        sha256, package, ..
    } = &r.target
    {
        facts.push(("sha256", sha256.clone().unwrap_or_else(|| "-".into())));
        facts.push(("package", package.clone().unwrap_or_else(|| "-".into())));
    }
    facts.extend([
        ("reason", r.reason.clone().unwrap_or_else(|| "-".into())),
        ("cwd", r.cwd.clone().unwrap_or_else(|| "-".into())),
        ("asked", format!("{} via {}", r.created_at, r.channel)),
        ("decision", format!("{} ({} mode)", d.outcome, d.mode)),
        ("rule", d.rule.clone().unwrap_or_else(|| "defaults".into())),
        ("why", d.explanation.clone()),
    ]);
    if let Some(a) = &d.approvers {
        facts.push(("approvers", format!("{a} ({} needed)", d.needed)));
    }
    if let Some(m) = &d.message {
        facts.push(("message", m.clone()));
    }
    for a in &r.approvals {
        facts.push((
            "decided",
            format!(
                "{} {} at {}{}",
                a.approver,
                a.verdict,
                a.at,
                a.comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(code) = r.exit_code {
        facts.push(("exit", code.to_string()));
    }
    for (k, v) in facts {
        println!("{k:>9}  {}", terminal_safe(&v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        assert_eq!(terminal_safe("a\u{1b}[2Jb"), "a\\u{001b}[2Jb");
    }
}
