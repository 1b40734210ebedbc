//! SCIM filters (RFC 7644 §3.4.2.2) and attribute paths, parsed and evaluated over a resource's
//! JSON. Attribute names are case-insensitive; string comparisons are too (the attributes
//! Elevate publishes are all `caseExact: false`).
//!
//! Must never: recurse without a bound (a filter is at most `MAX_FILTER` bytes and
//! `MAX_DEPTH` levels deep) or panic on any input.

use serde_json::Value;

/// Longest filter text taken.
pub const MAX_FILTER: usize = 4096;
/// Deepest nesting of parentheses, `not` and value filters.
const MAX_DEPTH: usize = 16;

/// An attribute path: an optional schema URN, an attribute, an optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN it was prefixed with, if any (lower case).
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, Value),
    /// `emails[type eq "work"]`, optionally followed by a sub-attribute filter.
    Within(AttrPath, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Why a filter or path does not parse (SCIM's `invalidFilter` / `invalidPath`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn err(m: impl Into<String>) -> FilterError {
    FilterError(m.into())
}

/// Splits an attribute path: `urn:...:User:name.givenName`, `emails.value`, `userName`.
pub fn parse_attr_path(text: &str) -> Result<AttrPath, FilterError> {
    let text = text.trim();
    let (urn, rest) = if text.to_ascii_lowercase().starts_with("urn:") {
        match text.rfind(':') {
            Some(at) => (Some(text[..at].to_ascii_lowercase()), &text[at + 1..]),
            None => return Err(err(format!("{text:?} is not an attribute path"))),
        }
    } else {
        (None, text)
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 128
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !name_ok(attr) || sub.is_some_and(|s| !name_ok(s)) {
        return Err(err(format!("{text:?} is not an attribute path")));
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

/// Parses a filter.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    if text.len() > MAX_FILTER {
        return Err(err(format!("a filter may be at most {MAX_FILTER} bytes")));
    }
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let f = p.or(0)?;
    if p.at != p.tokens.len() {
        return Err(err(format!(
            "unexpected {:?} in the filter",
            p.tokens[p.at]
        )));
    }
    Ok(f)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Literal(Value),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1
            }
            '[' => {
                tokens.push(Token::OpenBracket);
                i += 1
            }
            ']' => {
                tokens.push(Token::CloseBracket);
                i += 1
            }
            '"' => {
                // A JSON string literal, escapes and all.
                let mut j = i + 1;
                let mut escaped = false;
                while j < chars.len() {
                    match chars[j] {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(err("a string in the filter is not closed"));
                }
                let literal: String = chars[i..=j].iter().collect();
                let v: Value = serde_json::from_str(&literal)
                    .map_err(|_| err(format!("{literal} is not a string")))?;
                tokens.push(Token::Literal(v));
                i = j + 1;
            }
            _ => {
                let mut j = i;
                while j < chars.len()
                    && !chars[j].is_whitespace()
                    && !matches!(chars[j], '(' | ')' | '[' | ']' | '"')
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                tokens.push(match word.to_ascii_lowercase().as_str() {
                    "true" => Token::Literal(Value::Bool(true)),
                    "false" => Token::Literal(Value::Bool(false)),
                    "null" => Token::Literal(Value::Null),
                    _ => match word.parse::<serde_json::Number>() {
                        Ok(n) if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                            Token::Literal(Value::Number(n))
                        }
                        _ => Token::Word(word),
                    },
                });
                i = j;
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and(depth)?;
        while self.peek_word().as_deref() == Some("or") {
            self.at += 1;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.unary(depth)?;
        while self.peek_word().as_deref() == Some("and") {
            self.at += 1;
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth > MAX_DEPTH {
            return Err(err("the filter is nested too deeply"));
        }
        if self.peek_word().as_deref() == Some("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.unary(depth + 1)?)));
        }
        match self.tokens.get(self.at).cloned() {
            Some(Token::Open) => {
                self.at += 1;
                let f = self.or(depth + 1)?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err(err("a parenthesis in the filter is not closed"));
                }
                self.at += 1;
                Ok(f)
            }
            Some(Token::Word(w)) => {
                self.at += 1;
                let path = parse_attr_path(&w)?;
                if self.tokens.get(self.at) == Some(&Token::OpenBracket) {
                    self.at += 1;
                    let inner = self.or(depth + 1)?;
                    if self.tokens.get(self.at) != Some(&Token::CloseBracket) {
                        return Err(err("a [ in the filter is not closed"));
                    }
                    self.at += 1;
                    return Ok(Filter::Within(path, Box::new(inner)));
                }
                self.comparison(path)
            }
            other => Err(err(format!("expected an attribute, found {other:?}"))),
        }
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let op = self
            .peek_word()
            .ok_or_else(|| err("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"))?;
        self.at += 1;
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(err(format!("{other:?} is not a filter operator"))),
        };
        match self.tokens.get(self.at).cloned() {
            Some(Token::Literal(v)) => {
                self.at += 1;
                Ok(Filter::Compare(path, op, v))
            }
            other => Err(err(format!("expected a value, found {other:?}"))),
        }
    }
}

/// The member of `object` called `name`, whatever its case.
pub fn member<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The values an attribute path names in `resource` (several for a multi-valued attribute).
pub fn values<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let base = match &path.urn {
        Some(urn) if !is_core(urn) => match member(resource, urn) {
            Some(ext) => ext,
            None => return vec![],
        },
        _ => resource,
    };
    let Some(top) = member(base, &path.attr) else {
        return vec![];
    };
    let items: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match &path.sub {
        None => items
            .into_iter()
            .map(|v| member(v, "value").filter(|_| v.is_object()).unwrap_or(v))
            .collect(),
        Some(sub) => items.into_iter().filter_map(|v| member(v, sub)).collect(),
    }
}

/// Core schemas' URNs name the resource itself.
fn is_core(urn: &str) -> bool {
    urn.starts_with("urn:ietf:params:scim:schemas:core:")
}

/// Whether `resource` passes `filter`.
pub fn matches(resource: &Value, filter: &Filter) -> bool {
    match filter {
        Filter::And(a, b) => matches(resource, a) && matches(resource, b),
        Filter::Or(a, b) => matches(resource, a) || matches(resource, b),
        Filter::Not(f) => !matches(resource, f),
        Filter::Present(path) => values(resource, path).iter().any(|v| {
            !v.is_null() && v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
        }),
        Filter::Compare(path, op, want) => values(resource, path)
            .iter()
            .any(|have| compare(have, *op, want)),
        Filter::Within(path, inner) => {
            let whole = AttrPath {
                sub: None,
                ..path.clone()
            };
            let base = match &whole.urn {
                Some(urn) if !is_core(urn) => member(resource, urn),
                _ => Some(resource),
            };
            match base.and_then(|b| member(b, &whole.attr)) {
                Some(Value::Array(items)) => items.iter().any(|i| matches(i, inner)),
                Some(v) => matches(v, inner),
                None => false,
            }
        }
    }
}

fn compare(have: &Value, op: Op, want: &Value) -> bool {
    use std::cmp::Ordering;
    match (have, want) {
        (Value::String(h), Value::String(w)) => {
            let (h, w) = (h.to_lowercase(), w.to_lowercase());
            match op {
                Op::Eq => h == w,
                Op::Ne => h != w,
                Op::Co => h.contains(&w),
                Op::Sw => h.starts_with(&w),
                Op::Ew => h.ends_with(&w),
                Op::Gt => h > w,
                Op::Ge => h >= w,
                Op::Lt => h < w,
                Op::Le => h <= w,
            }
        }
        (Value::Number(h), Value::Number(w)) => {
            let ord = h
                .as_f64()
                .zip(w.as_f64())
                .and_then(|(h, w)| h.partial_cmp(&w));
            match (op, ord) {
                (Op::Eq, Some(o)) => o == Ordering::Equal,
                (Op::Ne, Some(o)) => o != Ordering::Equal,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Ge, Some(o)) => o != Ordering::Less,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
                _ => false,
            }
        }
        (h, w) => match op {
            Op::Eq => h == w,
            Op::Ne => h != w,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({ "userName": "Alice", "active": true,
            "emails": [{ "value": "a@x.test", "type": "work", "primary": true },
                       { "value": "alice@home.test", "type": "home" }],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Finance" } })
    }

    #[test]
    fn filters_read_as_the_rfc_writes_them() {
        let u = user();
        for (f, want) in [
            ("userName eq \"alice\"", true),
            ("USERNAME Eq \"ALICE\"", true),
            ("userName ne \"alice\"", false),
            ("userName sw \"al\" and active eq true", true),
            ("not (active eq true) or userName co \"lic\"", true),
            ("emails[type eq \"work\" and value ew \"x.test\"]", true),
            ("emails[type eq \"other\"]", false),
            ("emails.value eq \"alice@home.test\"", true),
            ("emails pr", true),
            ("title pr", false),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"finance\"", true),
            ("urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"Alice\"", true),
        ] {
            assert_eq!(matches(&u, &parse(f).unwrap()), want, "{f}");
        }
    }

    #[test]
    fn bad_filters_are_errors_not_panics() {
        for f in [
            "",
            "userName",
            "userName eq",
            "userName zz \"a\"",
            "(userName eq \"a\"",
            "emails[type eq \"w\"",
            "userName eq \"open",
            "userName eq \"a\" and",
            &"(".repeat(100),
            &"not ".repeat(100),
            &"x".repeat(MAX_FILTER + 1),
        ] {
            assert!(parse(f).is_err(), "{f:?} parsed");
        }
    }
}
