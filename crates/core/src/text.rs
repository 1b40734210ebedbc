//! Untrusted text made safe to show: control characters, escape sequences and bidirectional
//! overrides become visible `\u{..}` escapes, so an approver sees exactly what will run.
//!
//! Must never: drop characters silently (an approver must see that something odd is there).

/// Returns `text` with every control, format or bidi-override character written as `\u{XXXX}`
/// (and `\` itself doubled when it would make an escape ambiguous).
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x200B..=0x200F     // zero-width spaces and marks
            | 0x202A..=0x202E   // bidi embeddings and overrides
            | 0x2060..=0x2069   // word joiner, bidi isolates
            | 0xFEFF            // byte order mark
            | 0xFFF9..=0xFFFB) // interlinear annotations
}

/// A command line as a person reads it: each argument shell-quoted when needed, all visible.
pub fn command_line(path: &str, args: &[String]) -> String {
    std::iter::once(path)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let shown = visible(arg);
    let plain = !shown.is_empty()
        && shown
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        shown
    } else {
        format!("'{}'", shown.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_become_visible() {
        for (input, expect) in [
            ("plain", "plain"),
            ("\u{1b}[31mred", "\\u{001b}[31mred"),
            ("a\nb", "a\\u{000a}b"),
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            ("zero\u{200b}width", "zero\\u{200b}width"),
            ("tab\there", "tab\\u{0009}here"),
            ("ünïcödé", "ünïcödé"),
        ] {
            assert_eq!(visible(input), expect, "{input:?}");
        }
    }

    #[test]
    fn command_lines_quote_what_needs_it() {
        let args = vec![
            "install".to_string(),
            "a b".to_string(),
            "it's".to_string(),
            String::new(),
            "\u{1b}]0;x".to_string(),
        ];
        assert_eq!(
            command_line("/usr/bin/apt", &args),
            "/usr/bin/apt install 'a b' 'it'\\''s' '' '\\u{001b}]0;x'"
        );
    }
}
