//! Reading sudoers as sudo reads it, to find every grant that makes a person root: the main
//! file and all it includes (`@include`, `#include`, `@includedir`, `#includedir`, nested,
//! relative to the including file), entries continued with `\`, `User_Alias` and `Cmnd_Alias`
//! expanded, and commands that are root in disguise (a shell, an editor, a pager, an
//! interpreter, a program that runs another: each starts a root shell on request). Also
//! whether sudoers come from elsewhere too (`sudoers:` in nsswitch.conf naming sss or ldap).
//!
//! Must never: skip a grant it cannot take apart (it is returned, for the caller to report),
//! or read outside the files sudo itself would read (plus the sudoers folder).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::sudoers::safe_user_name;

/// How deep includes are followed (sudo allows 128 nested includes; real configurations use
/// two or three).
const MAX_DEPTH: usize = 16;
/// How deep aliases are followed (each alias once per entry, so this bounds only the stack).
const MAX_ALIAS_DEPTH: usize = 128;

/// One sudoers entry: the physical lines it spans (continued with `\`) and their joined text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub file: PathBuf,
    /// 1-based number of its first line.
    pub at_line: usize,
    pub lines: Vec<String>,
    pub text: String,
}

/// Who a sudoers entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Grantee {
    User(String),
    Uid(u32),
    Group(String),
    Gid(u32),
    /// A `User_Alias` the files do not define, a `%:nonunix` group or a `+netgroup`: nobody
    /// the agent can tell.
    Alias(String),
}

/// A grant that makes its grantees root, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    pub grantees: Vec<Grantee>,
    /// Some of the grantees came from a `User_Alias`: the entry cannot be taken from one of
    /// them alone.
    pub via_alias: bool,
    /// `ALL`, `Cmnd_Alias EVERYTHING`, `/usr/bin/vim (an editor)`, …
    pub why: String,
}

/// Everything sudoers says, from every file it reads.
#[derive(Debug, Default)]
pub(super) struct Sudoers {
    pub entries: Vec<Entry>,
    users: HashMap<String, Vec<String>>,
    commands: HashMap<String, Vec<String>>,
}

impl Sudoers {
    /// Reads `main` and what it includes, and every file of `dir` that sudo would read (even
    /// if `main` does not include it), leaving out those `skip` names.
    pub fn read(main: &Path, dir: &Path, skip: &dyn Fn(&str) -> bool) -> Sudoers {
        let mut files = Vec::new();
        let mut seen = BTreeSet::new();
        collect(main, 0, &mut seen, &mut files);
        for file in included_dir(dir) {
            collect(&file, 0, &mut seen, &mut files);
        }
        let mut sudoers = Sudoers::default();
        for file in files {
            let in_dir = file.parent() == Some(dir);
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            if in_dir && name.as_deref().is_some_and(skip) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            sudoers.entries.extend(entries(&file, &text));
        }
        for entry in &sudoers.entries {
            for (kind, name, values) in alias_definitions(&entry.text) {
                let table = match kind {
                    "User_Alias" => &mut sudoers.users,
                    "Cmnd_Alias" | "Cmd_Alias" => &mut sudoers.commands,
                    _ => continue,
                };
                table.insert(name, values);
            }
        }
        sudoers
    }

    /// The grant an entry makes, if it makes its grantees root.
    pub fn grant(&self, entry: &Entry) -> Option<Grant> {
        let (users, commands) = user_spec(&entry.text)?;
        // Each alias is expanded once per entry: aliases that name each other (or one alias
        // many times) cannot make this take longer than the entry and its definitions.
        let mut seen = std::collections::HashSet::new();
        let why = commands
            .split([',', ':'])
            .find_map(|item| self.root_command(command_of(item)?, 0, &mut seen))?;
        let mut via_alias = false;
        let mut grantees = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for u in users.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            self.expand_user(u, 0, &mut seen, &mut via_alias, &mut grantees);
        }
        (!grantees.is_empty()).then_some(Grant {
            grantees,
            via_alias,
            why,
        })
    }

    fn expand_user(
        &self,
        u: &str,
        depth: usize,
        seen: &mut std::collections::HashSet<String>,
        via_alias: &mut bool,
        out: &mut Vec<Grantee>,
    ) {
        match grantee(u) {
            Grantee::Alias(name) if depth < MAX_ALIAS_DEPTH => match self.users.get(&name) {
                Some(members) => {
                    *via_alias = true;
                    if !seen.insert(name) {
                        return;
                    }
                    for m in members {
                        self.expand_user(m, depth + 1, seen, via_alias, out);
                    }
                }
                None => out.push(Grantee::Alias(name)),
            },
            g => out.push(g),
        }
    }

    /// Why `command` (one item of a command list, tags and options removed) makes its user
    /// root, if it does.
    fn root_command(
        &self,
        command: &str,
        depth: usize,
        seen: &mut std::collections::HashSet<String>,
    ) -> Option<String> {
        if command == "ALL" {
            return Some("ALL".into());
        }
        if let Some(values) = self.commands.get(command) {
            if depth >= MAX_ALIAS_DEPTH {
                // Deeper than anyone writes by hand: counted as a grant (fail closed).
                return Some(format!("Cmnd_Alias {command} (nested too deep to follow)"));
            }
            if !seen.insert(command.to_owned()) {
                return None;
            }
            let inner = values
                .iter()
                .find_map(|v| self.root_command(command_of(v)?, depth + 1, seen))?;
            return Some(format!("Cmnd_Alias {command} ({inner})"));
        }
        let program = command.split_whitespace().next()?;
        starts_anything(program).map(|kind| format!("{program} ({kind})"))
    }
}

/// The files of a sudoers folder that sudo reads: names without a `.` and not ending in `~`,
/// in order.
fn included_dir(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains('.') && !n.ends_with('~'))
        .collect();
    names.sort();
    names.into_iter().map(|n| dir.join(n)).collect()
}

/// `file` and, depth first, the files it includes.
fn collect(file: &Path, depth: usize, seen: &mut BTreeSet<PathBuf>, out: &mut Vec<PathBuf>) {
    let key = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    if depth > MAX_DEPTH || !seen.insert(key) {
        return;
    }
    out.push(file.to_path_buf());
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let here = file.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let Some((dir_wide, target)) = include_directive(line) else {
            continue;
        };
        let target = target.replace("%h", &short_host_name());
        let target = here.join(target);
        if dir_wide {
            for f in included_dir(&target) {
                collect(&f, depth + 1, seen, out);
            }
        } else {
            collect(&target, depth + 1, seen, out);
        }
    }
}

/// `@include FILE`, `#include FILE` (false, FILE) or `@includedir DIR`, `#includedir DIR`
/// (true, DIR).
fn include_directive(line: &str) -> Option<(bool, &str)> {
    let line = line.trim();
    for (word, dir_wide) in [
        ("@includedir", true),
        ("#includedir", true),
        ("@include", false),
        ("#include", false),
    ] {
        if let Some(rest) = line.strip_prefix(word) {
            if rest.starts_with([' ', '\t']) {
                let target = rest.trim().trim_matches('"');
                return (!target.is_empty()).then_some((dir_wide, target));
            }
        }
    }
    None
}

fn short_host_name() -> String {
    crate::os::host::node_name()
        .split('.')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A file's entries: physical lines joined where they end in `\`.
fn entries(file: &Path, text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    for (i, line) in text.lines().enumerate() {
        let continues = line.trim_end().ends_with('\\');
        let part = line.trim_end().trim_end_matches('\\');
        let entry = current.get_or_insert_with(|| Entry {
            file: file.to_path_buf(),
            at_line: i + 1,
            lines: Vec::new(),
            text: String::new(),
        });
        entry.lines.push(line.to_owned());
        if !entry.text.is_empty() {
            entry.text.push(' ');
        }
        entry.text.push_str(part.trim());
        if !continues {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// The entry without its comment: a `#` that does not begin a uid (`#1001`) or a gid (`%#27`).
fn without_comment(line: &str) -> &str {
    let comment = line.match_indices('#').map(|(i, _)| i).find(|&i| {
        let number = line[i + 1..].starts_with(|c: char| c.is_ascii_digit());
        let token_start = i == 0 || line[..i].ends_with([' ', '\t', ',', '%', '=']);
        !(number && token_start)
    });
    match comment {
        Some(at) => line[..at].trim(),
        None => line.trim(),
    }
}

/// `User_Alias A = x, y : B = z` and the like: (kind, name, values) for each definition.
fn alias_definitions(text: &str) -> Vec<(&str, String, Vec<String>)> {
    let line = without_comment(text);
    let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
        return Vec::new();
    };
    if !kind.ends_with("_Alias") {
        return Vec::new();
    }
    rest.split(':')
        .filter_map(|def| {
            let (name, values) = def.split_once('=')?;
            let values = values
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            Some((kind, name.trim().to_owned(), values))
        })
        .collect()
}

/// A user specification's user list and command part (after the first `=`); `None` for
/// `Defaults`, alias definitions, includes and comments.
fn user_spec(text: &str) -> Option<(String, &str)> {
    let line = without_comment(text);
    if line.is_empty() || line.starts_with('@') || line.starts_with("Defaults") {
        return None;
    }
    let (left, commands) = line.split_once('=')?;
    let words: Vec<&str> = left.split_whitespace().collect();
    if words.len() < 2 || words[0].ends_with("_Alias") {
        return None;
    }
    // The last word is the host list; everything before it, the user list.
    Some((words[..words.len() - 1].join(" "), commands))
}

/// The command of one item of a command list: run-as lists, options (`NOTAFTER=…`) and tags
/// (`NOPASSWD`) removed; `None` for an exception (`!/usr/bin/passwd`) or nothing.
fn command_of(item: &str) -> Option<&str> {
    let mut rest = item.trim();
    loop {
        let word = rest.split_whitespace().next()?;
        let tag = word.chars().all(|c| c.is_ascii_uppercase() || c == '_') && word != "ALL";
        let skip = word.starts_with('(') || word.ends_with(')') || word.contains('=');
        // An alias name is upper case too: it stands alone (or before arguments nowhere).
        if skip || (tag && rest.split_whitespace().nth(1).is_some()) {
            rest = rest[word.len()..].trim_start();
            continue;
        }
        if tag && word.len() > 1 && is_tag(word) {
            return None;
        }
        return (!rest.starts_with('!')).then_some(rest);
    }
}

/// sudoers' command tags (written before a `:`).
fn is_tag(word: &str) -> bool {
    matches!(
        word,
        "NOPASSWD"
            | "PASSWD"
            | "NOEXEC"
            | "EXEC"
            | "SETENV"
            | "NOSETENV"
            | "LOG_INPUT"
            | "NOLOG_INPUT"
            | "LOG_OUTPUT"
            | "NOLOG_OUTPUT"
            | "MAIL"
            | "NOMAIL"
            | "FOLLOW"
            | "NOFOLLOW"
            | "INTERCEPT"
            | "NOINTERCEPT"
    )
}

fn grantee(u: &str) -> Grantee {
    if let Some(gid) = u.strip_prefix("%#") {
        gid.parse().map_or(Grantee::Alias(u.into()), Grantee::Gid)
    } else if u.starts_with("%:") || u.starts_with('+') {
        Grantee::Alias(u.into())
    } else if let Some(group) = u.strip_prefix('%') {
        Grantee::Group(group.into())
    } else if let Some(uid) = u.strip_prefix('#') {
        uid.parse().map_or(Grantee::Alias(u.into()), Grantee::Uid)
    } else if u
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        || !safe_user_name(u)
    {
        Grantee::Alias(u.into())
    } else {
        Grantee::User(u.into())
    }
}

/// Programs that start any other program (a shell) for whoever runs them, by the last
/// component of their path (version suffixes ignored: `python3.11` is `python`): what kind of
/// program it is, or `None`. Documented in ARCHITECTURE.md ("root-equivalent rights").
pub(super) fn starts_anything(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let bare = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let kind = match bare {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "csh" | "tcsh" | "fish" | "ash"
        | "rbash" | "busybox" => "a shell",
        "vi" | "vim" | "vim.basic" | "vim.tiny" | "nvim" | "view" | "vimdiff" | "rvim" | "ex"
        | "ed" | "emacs" | "emacs-nox" | "nano" | "pico" | "joe" | "mcedit" | "editor"
        | "sensible-editor" | "sudoedit" => "an editor",
        "less" | "more" | "most" | "pg" | "man" | "pager" | "sensible-pager" => "a pager",
        "python" | "perl" | "ruby" | "irb" | "node" | "nodejs" | "lua" | "luajit" | "php"
        | "tclsh" | "wish" | "expect" | "awk" | "gawk" | "mawk" | "nawk" | "Rscript" | "R"
        | "guile" | "gdb" => "an interpreter",
        "env" | "find" | "xargs" | "nice" | "nohup" | "timeout" | "stdbuf" | "setsid"
        | "chroot" | "taskset" | "ionice" | "strace" | "ltrace" | "script" | "su" | "sudo"
        | "runuser" | "setpriv" | "unshare" | "nsenter" | "flock" | "watch" | "time"
        | "xdg-open" => "a program that runs another",
        _ => return None,
    };
    // `sudoedit` edits files as the user, not as root: sudo's own safe editor.
    (bare != "sudoedit").then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::Grantee::*;
    use super::*;

    fn read(text: &str) -> Sudoers {
        let file = PathBuf::from("/etc/sudoers");
        let mut s = Sudoers {
            entries: entries(&file, text),
            ..Sudoers::default()
        };
        for entry in s.entries.clone() {
            for (kind, name, values) in alias_definitions(&entry.text) {
                match kind {
                    "User_Alias" => s.users.insert(name, values),
                    _ => s.commands.insert(name, values),
                };
            }
        }
        s
    }

    fn grantees(text: &str) -> Vec<Grantee> {
        let s = read(text);
        let Some(last) = s.entries.last() else {
            return Vec::new();
        };
        s.grant(last).map(|g| g.grantees).unwrap_or_default()
    }

    #[test]
    fn sudoers_lines_that_grant_everything_are_found() {
        let user = |u: &str| vec![User(u.to_owned())];
        for (line, who) in [
            ("alice ALL=(ALL:ALL) ALL", user("alice")),
            ("alice ALL=(ALL) NOPASSWD: ALL", user("alice")),
            ("  bob   ALL = (root) NOPASSWD:SETENV: ALL", user("bob")),
            ("bob ALL=(ALL) NOPASSWD: ALL, !/usr/bin/passwd", user("bob")),
            ("carol ALL=ALL", user("carol")),
            ("carol ALL=(ALL) ALL # the on-call admin", user("carol")),
            (
                "dora ALL=(ALL) NOTAFTER=20301231000000Z CWD=* ALL",
                user("dora"),
            ),
            ("#1001 ALL=(ALL) ALL", vec![Uid(1001)]),
            ("%ops ALL=(ALL:ALL) ALL", vec![Group("ops".into())]),
            ("%#27 ALL=(ALL) ALL", vec![Gid(27)]),
            (
                "alice, bob ALL=(ALL) ALL",
                vec![User("alice".into()), User("bob".into())],
            ),
            ("ADMINS ALL=(ALL) ALL", vec![Alias("ADMINS".into())]),
            ("+admins ALL=(ALL) ALL", vec![Alias("+admins".into())]),
            ("dave ALL=(ALL) /usr/bin/apt, /usr/bin/systemctl", vec![]),
            ("erin ALL=(ALL) NOPASSWD: /usr/bin/ALL", vec![]),
            ("erin ALL=(ALL) NOPASSWD: sudoedit /etc/hosts", vec![]),
            ("# alice ALL=(ALL) ALL", vec![]),
            ("Defaults env_reset", vec![]),
            ("Defaults:alice !requiretty", vec![]),
            ("User_Alias ADMINS = alice, bob", vec![]),
            ("Cmnd_Alias EVERYTHING = ALL", vec![]),
            ("@includedir /etc/sudoers.d", vec![]),
            ("#includedir /etc/sudoers.d", vec![]),
            ("", vec![]),
            // Root in disguise: a shell, an editor, an interpreter, a pager, with or
            // without a password.
            ("frank ALL=(ALL) NOPASSWD: /bin/bash", user("frank")),
            ("frank ALL=(root) /usr/bin/vim /etc/hosts", user("frank")),
            (
                "frank ALL=(ALL) NOPASSWD: /usr/bin/apt, /usr/bin/python3.11",
                user("frank"),
            ),
            (
                "frank ALL=(ALL) NOPASSWD: /usr/bin/less /var/log/syslog",
                user("frank"),
            ),
            ("frank ALL=(ALL) NOPASSWD: /usr/bin/env", user("frank")),
            ("frank ALL=(ALL) NOPASSWD: !/bin/bash, /usr/bin/id", vec![]),
        ] {
            assert_eq!(grantees(line), who, "{line:?}");
        }
    }

    #[test]
    fn aliases_and_continued_lines_are_read_through() {
        let text = "User_Alias ADMINS = alice, %ops, NESTED\n\
                    User_Alias NESTED = bob\n\
                    Cmnd_Alias EVERYTHING = ALL\n\
                    Cmnd_Alias EDITORS = /usr/bin/nano, /usr/bin/vim.basic\n\
                    Cmnd_Alias SAFE = /usr/bin/id\n\
                    ADMINS ALL=(ALL) NOPASSWD: EVERYTHING\n\
                    carol ALL=(ALL) EDITORS\n\
                    dave ALL=(ALL) SAFE\n\
                    erin ALL=(ALL) \\\n    NOPASSWD: \\\n    ALL\n";
        let s = read(text);
        let grants: Vec<(usize, Grant)> = s
            .entries
            .iter()
            .filter_map(|e| Some((e.at_line, s.grant(e)?)))
            .collect();
        assert_eq!(grants.len(), 3, "{grants:?}");
        let (line, admins) = &grants[0];
        assert_eq!(*line, 6);
        assert_eq!(
            admins.grantees,
            [
                User("alice".into()),
                Group("ops".into()),
                User("bob".into())
            ]
        );
        assert!(admins.via_alias);
        assert_eq!(admins.why, "Cmnd_Alias EVERYTHING (ALL)");
        assert_eq!(grants[1].1.grantees, [User("carol".into())]);
        assert!(grants[1].1.why.contains("an editor"), "{}", grants[1].1.why);
        // A continued entry is read whole, and named by its first line.
        let (line, erin) = &grants[2];
        assert_eq!(*line, 9);
        assert_eq!(erin.grantees, [User("erin".into())]);
        let entry = s.entries.iter().find(|e| e.at_line == 9).unwrap();
        assert_eq!(entry.lines.len(), 3);
    }

    #[test]
    fn includes_are_followed_as_sudo_follows_them() {
        let root = std::env::temp_dir().join(format!("elevate-sudoers-{}", uuid::Uuid::now_v7()));
        let d = root.join("sudoers.d");
        let extra = root.join("extra.d");
        for dir in [&d, &extra] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(
            root.join("sudoers"),
            "@includedir sudoers.d\n#include more\n#includedir /nonexistent\n@includedir extra.d\n",
        )
        .unwrap();
        std::fs::write(root.join("more"), "gina ALL=(ALL) ALL\n@include more\n").unwrap();
        std::fs::write(d.join("team"), "hank ALL=(ALL) ALL\n").unwrap();
        std::fs::write(d.join("skipped.bak"), "ivan ALL=(ALL) ALL\n").unwrap();
        std::fs::write(d.join("elevate-managed"), "#1001 ALL=(ALL) ALL\n").unwrap();
        std::fs::write(extra.join("ops"), "judy ALL=(ALL) /bin/sh\n").unwrap();
        let s = Sudoers::read(&root.join("sudoers"), &d, &|n| n == "elevate-managed");
        let mut named: Vec<String> = s
            .entries
            .iter()
            .filter_map(|e| s.grant(e))
            .flat_map(|g| g.grantees)
            .map(|g| format!("{g:?}"))
            .collect();
        named.sort();
        assert_eq!(
            named,
            ["User(\"gina\")", "User(\"hank\")", "User(\"judy\")"]
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn aliases_that_name_each_other_end() {
        // 40 aliases, each naming the next twice, and a cycle at the end: expanded naively
        // that is 2^40 steps.
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("Cmnd_Alias C{i} = C{n}, C{n}\n", n = i + 1));
            text.push_str(&format!("User_Alias U{i} = U{n}, U{n}\n", n = i + 1));
        }
        text.push_str("Cmnd_Alias C40 = C0\nUser_Alias U40 = U0, alice\nU0 ALL=(ALL) C0\n");
        assert_eq!(
            grantees(&text),
            Vec::<Grantee>::new(),
            "C0 never reaches ALL"
        );
        let text = text.replace("C40 = C0", "C40 = C0, /bin/sh");
        assert_eq!(grantees(&text), [User("alice".into())]);
    }

    #[test]
    fn nothing_panics_on_odd_lines() {
        for line in [
            "=",
            "a=",
            " = ALL",
            "a b =",
            "User_Alias",
            "User_Alias =",
            "#",
            "%",
            "a b = (",
            "a b = !",
        ] {
            let _ = grantees(line);
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Any text, read as sudoers: no panic, and every grant names someone.
        #[test]
        fn any_sudoers_text_is_read_without_panic(text in crate::fuzz::sudoers_text()) {
            let s = read(&text);
            for entry in &s.entries {
                if let Some(g) = s.grant(entry) {
                    proptest::prop_assert!(!g.grantees.is_empty());
                }
            }
        }
    }
}
