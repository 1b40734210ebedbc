//! Turning byte offsets in a policy text into what a person can find: line, column, field path.
//!
//! Field paths name tables the way an admin counts them: `rule[3]` is the third `[[rule]]`,
//! `paths[1]` the first element of `paths` (indexes are 1-based everywhere).
//!
//! Must never: panic on any offset or text (offsets past the end clamp to the end).

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Best-effort field path for an error that toml reported at `offset`: the enclosing table header
/// (counting array-of-tables entries) plus the key on that line, and the key at `offset` when it
/// sits inside an inline table, e.g. `rule[2].what.pathz`.
pub(super) fn field_at(text: &str, offset: usize) -> String {
    let (line_no, _) = line_column(text, offset);
    let mut header = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut key_on_line = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(name) = array_header(trimmed) {
            let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((name.clone(), 1));
                    1
                }
            };
            header = format!("{name}[{n}]");
        } else if let Some(name) = table_header(trimmed) {
            header = qualify_subtable(&name, &counts);
        } else if i + 1 == line_no {
            key_on_line = line_key(trimmed);
        }
        if i + 1 >= line_no {
            break;
        }
    }
    let mut path = header;
    for key in key_on_line.into_iter().chain(key_at(text, offset)) {
        if path.rsplit('.').next() == Some(key.as_str()) {
            continue;
        }
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&key);
    }
    if path.is_empty() {
        "policy".to_owned()
    } else {
        path
    }
}

/// Offset of the line that sets `key` (`key = ..`, `key.x = ..` or a `[...key]` header) in the
/// array-of-tables entry that contains byte `near` (e.g. a rule's name); `near` when not found,
/// as for an entry written inline on one line.
pub(super) fn key_offset(text: &str, near: usize, key: &str) -> usize {
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > near {
            break;
        }
        if line.trim_start().starts_with("[[") {
            start = offset;
        }
        offset += line.len();
    }
    let mut offset = start;
    for (i, line) in text[start..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        if i > 0 && trimmed.starts_with("[[") {
            break;
        }
        let found = match table_header(trimmed) {
            Some(header) => header.rsplit('.').next() == Some(key),
            None => line_key(trimmed).is_some_and(|k| k.split('.').next() == Some(key)),
        };
        if found {
            return offset + (line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    near
}

fn array_header(line: &str) -> Option<String> {
    header_name(line.strip_prefix("[[")?.split("]]").next()?)
}

fn table_header(line: &str) -> Option<String> {
    header_name(line.strip_prefix('[')?.split(']').next()?)
}

/// A table name made of key characters (so `["a", "b"]` in a multi-line array is not a header).
fn header_name(inner: &str) -> Option<String> {
    let name = inner.trim();
    let is_key = |c: char| c.is_ascii_alphanumeric() || "_-.\" ".contains(c);
    (!name.is_empty() && name.chars().all(is_key)).then(|| name.replace('"', ""))
}

/// `[rule.action]` after the second `[[rule]]` is `rule[2].action`.
fn qualify_subtable(name: &str, counts: &[(String, usize)]) -> String {
    for (array, n) in counts {
        if let Some(rest) = name.strip_prefix(array.as_str()) {
            if rest.starts_with('.') {
                return format!("{array}[{n}]{rest}");
            }
        }
    }
    name.to_owned()
}

/// The key of a `key = value` line, without quotes.
fn line_key(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('#')).then(|| key.to_owned())
}

/// The bare key that starts at `offset`, if a `=` follows it (an inline-table key).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let rest = text.get(offset..)?;
    let key: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let after = rest[key.len()..].trim_start_matches([' ', '\t']);
    (!key.is_empty() && after.starts_with('=')).then_some(key)
}
