//! Glob patterns for command paths and arguments, written by hand so the rules are ours.
//!
//! `?` is one character and `*` any run of characters, both never crossing `/`; `**` is any run
//! of characters including `/`, and `/**/` also matches a single `/` (zero directories). There are
//! no character classes or escapes: every other character stands for itself.
//! Matching is linear in pattern × text (no backtracking blow-up on hostile input).
//!
//! Must never: panic, allocate without bound, or treat a pattern character as a regular expression.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**`
    AnyRun,
    /// `**/` after a `/` or at the start: zero or more whole directories.
    AnyDirs,
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    text: String,
    tokens: Vec<Token>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    let run = chars[i..].iter().take_while(|&&c| c == '*').count();
                    i += run;
                    let after_slash = matches!(
                        tokens.last(),
                        None | Some(Token::Char('/') | Token::AnyDirs)
                    );
                    if run == 1 {
                        tokens.push(Token::Star);
                    } else if after_slash && chars.get(i) == Some(&'/') {
                        tokens.push(Token::AnyDirs);
                        i += 1;
                    } else {
                        tokens.push(Token::AnyRun);
                    }
                    continue;
                }
                '?' => tokens.push(Token::One),
                c => tokens.push(Token::Char(c)),
            }
            i += 1;
        }
        Glob {
            text: pattern.to_owned(),
            tokens,
        }
    }

    /// True when the pattern has no wildcard and so matches only itself.
    pub(crate) fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Char(_)))
    }

    /// True when the whole of `text` matches the whole pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let n = text.len();
        // `next[j]`: the tokens after the current one match `text[j..]`.
        let mut next = vec![false; n + 1];
        next[n] = true;
        let mut cur = vec![false; n + 1];
        for token in self.tokens.iter().rev() {
            cur[n] = matches!(token, Token::Star | Token::AnyRun | Token::AnyDirs) && next[n];
            let mut dirs = false; // `text[j..]` = (anything ending in '/') + rest
            for j in (0..n).rev() {
                let c = text[j];
                cur[j] = match token {
                    Token::Char(p) => c == *p && next[j + 1],
                    Token::One => c != '/' && next[j + 1],
                    Token::Star => next[j] || (c != '/' && cur[j + 1]),
                    Token::AnyRun => next[j] || cur[j + 1],
                    Token::AnyDirs => {
                        dirs = (c == '/' && next[j + 1]) || dirs;
                        next[j] || dirs
                    }
                };
            }
            std::mem::swap(&mut cur, &mut next);
        }
        next[0]
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One element of an `args` matcher: a glob for one argument, or `**` for any number of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgPattern {
    One(Glob),
    Rest,
}

impl ArgPattern {
    pub(crate) fn new(pattern: &str) -> ArgPattern {
        if pattern == "**" {
            ArgPattern::Rest
        } else {
            ArgPattern::One(Glob::new(pattern))
        }
    }
}

impl fmt::Display for ArgPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgPattern::One(g) => g.fmt(f),
            ArgPattern::Rest => f.write_str("**"),
        }
    }
}

/// True when `args` (argv[1..]) match `patterns` element by element; `**` takes zero or more
/// whole arguments, so without it the number of arguments must be equal.
pub(crate) fn args_match(patterns: &[ArgPattern], args: &[String]) -> bool {
    let n = args.len();
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut cur = vec![false; n + 1];
    for pattern in patterns.iter().rev() {
        cur[n] = matches!(pattern, ArgPattern::Rest) && next[n];
        for j in (0..n).rev() {
            cur[j] = match pattern {
                ArgPattern::One(glob) => glob.matches(&args[j]) && next[j + 1],
                ArgPattern::Rest => next[j] || cur[j + 1],
            };
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn check(pattern: &str, text: &str, expect: bool) {
        assert_eq!(
            Glob::new(pattern).matches(text),
            expect,
            "{pattern} vs {text}"
        );
    }

    #[test]
    fn paths() {
        check("/usr/bin/apt", "/usr/bin/apt", true);
        check("/usr/bin/apt", "/usr/bin/apt-get", false);
        check("/usr/bin/apt-*", "/usr/bin/apt-get", true);
        check("/usr/bin/apt-*", "/usr/bin/apt-", true);
        check("/usr/bin/apt-*", "/usr/bin/apt-x/y", false);
        check("/usr/bin/?", "/usr/bin/w", true);
        check("/usr/bin/?", "/usr/bin/ww", false);
        check("/usr/?in/ls", "/usr//in/ls", false);
        check("/usr?bin", "/usr/bin", false);
        check("/opt/**", "/opt/a/b/c", true);
        check("/opt/**", "/opt/", true);
        check("/opt/**", "/opt", false);
        check("/usr/**/bin", "/usr/bin", true);
        check("/usr/**/bin", "/usr/local/x/bin", true);
        check("/usr/**/bin", "/usr/localbin", false);
        check("/usr/x**/bin", "/usr/xy/z/bin", true);
        check("/usr/x**/bin", "/usr/xbin", false);
        check("**", "/anything/at/all", true);
        check("*", "/x", false);
        check("/a/*/c", "/a/b/c", true);
        check("/a/*/c", "/a/b/b/c", false);
        check("", "", true);
        check("", "x", false);
        check("/ünï/*", "/ünï/cödé", true);
    }

    #[test]
    fn args() {
        let pats = |ps: &[&str]| ps.iter().map(|p| ArgPattern::new(p)).collect::<Vec<_>>();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], &[&str], bool)] = &[
            (&["install", "**"], &["install"], true),
            (&["install", "**"], &["install", "vim", "git"], true),
            (&["install", "**"], &["remove", "vim"], false),
            (&["install", "*"], &["install", "vim"], true),
            (&["install", "*"], &["install", "vim", "git"], false),
            (&["install", "*"], &["install"], false),
            (&["install", "*"], &["install", "./x.deb"], false),
            (&[], &[], true),
            (&[], &["x"], false),
            (&["**"], &[], true),
            (&["**", "--yes"], &["a", "b", "--yes"], true),
            (&["**", "--yes", "**"], &["a", "--yes", "b"], true),
            (&["-v?"], &["-vv"], true),
        ];
        for (p, a, want) in cases {
            assert_eq!(args_match(&pats(p), &args(a)), *want, "{p:?} vs {a:?}");
        }
    }

    /// A slow backtracking matcher that follows the documented rules literally.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p {
            [] => t.is_empty(),
            ['*', '*', '/', rest @ ..] => {
                (0..=t.len()).any(|k| (k == 0 || t[k - 1] == '/') && reference(rest, &t[k..]))
            }
            ['*', '*', rest @ ..] => (0..=t.len()).any(|k| reference(rest, &t[k..])),
            ['*', rest @ ..] => (0..=t.len())
                .take_while(|&k| k == 0 || t[k - 1] != '/')
                .any(|k| reference(rest, &t[k..])),
            ['?', rest @ ..] => t.first().is_some_and(|&c| c != '/') && reference(rest, &t[1..]),
            [c, rest @ ..] => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(p in "(/|a|b|\\*|\\?){0,8}", t in "(/|a|b){0,8}") {
            // The reference treats every `**/` as zero-or-more directories; the compiled glob does
            // that only after `/` or at the start, so compare on patterns where the two agree.
            let chars: Vec<char> = p.chars().collect();
            prop_assume!(!p.contains("***"));
            prop_assume!(!chars.windows(4).any(|w| w[0] != '/' && w[1..] == ['*', '*', '/']));
            let t_chars: Vec<char> = t.chars().collect();
            let want = reference(&chars, &t_chars);
            prop_assert_eq!(Glob::new(&p).matches(&t), want, "{} vs {}", p, t);
        }
    }
}
