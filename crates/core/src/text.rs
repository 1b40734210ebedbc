//! Untrusted text made safe to show: control characters, escape sequences and bidirectional
//! overrides become visible `\u{..}` escapes, so an approver sees exactly what will run.
//!
//! Must never: drop characters silently (an approver must see that something odd is there).

/// Returns `text` with every control, format or bidi-override character written as `\u{XXXX}`
/// and `\` itself doubled, so that a literal `\u{001b}` typed by someone never looks like an
/// escaped character.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_hidden(c) {
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
            0x00AD              // soft hyphen
            | 0x034F            // combining grapheme joiner
            | 0x061C            // Arabic letter mark (bidi)
            | 0x115F | 0x1160 | 0x3164 | 0xFFA0 // Hangul fillers (blank, yet letters)
            | 0x180E            // Mongolian vowel separator
            | 0x200B..=0x200F   // zero-width spaces and marks
            | 0x2028 | 0x2029   // line and paragraph separators
            | 0x202A..=0x202E   // bidi embeddings and overrides
            | 0x2060..=0x206F   // word joiner, invisible operators, bidi isolates
            | 0xFEFF            // byte order mark
            | 0xFFF9..=0xFFFB   // interlinear annotations
            | 0xE0000..=0xE007F) // tag characters
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
            // A literal escape and an escaped character never look the same.
            ("\\u{001b}", "\\\\u{001b}"),
            ("a\\b", "a\\\\b"),
            ("\u{61c}x", "\\u{061c}x"),
            ("line\u{2028}para\u{2029}", "line\\u{2028}para\\u{2029}"),
            ("tag\u{e0041}\u{e007f}", "tag\\u{e0041}\\u{e007f}"),
            (
                "\u{3164}\u{115f}\u{1160}\u{ffa0}",
                "\\u{3164}\\u{115f}\\u{1160}\\u{ffa0}",
            ),
            ("soft\u{ad}hyphen", "soft\\u{00ad}hyphen"),
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
