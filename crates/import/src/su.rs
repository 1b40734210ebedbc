//! `su` lines in the forms util-linux, shadow, BSD and pam_unix write them.
//!
//! Must never: take a line that does not say who became whom for a session.

use elevate_proto::v1::Outcome;

/// What a `su` line says about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Su {
    pub user: String,
    pub uid: Option<u32>,
    pub runas: String,
    pub tty: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

/// The forms of `su` lines: util-linux `(to root) alice on pts/0` and `FAILED SU (to root) …`,
/// BSD `alice to root on /dev/ttyp1` and `BAD SU alice to root on …`, shadow's `failed: ttyq4
/// changing from alice to root`, and pam_unix's `session opened for user root(uid=0) by
/// alice(uid=1000)` and `authentication failure; … ruser=alice … user=root`.
pub fn parse_su(message: &str) -> Option<Su> {
    let su = |user: &str, runas: &str, tty: Option<&str>, outcome| Su {
        user: user.trim().to_owned(),
        uid: None,
        runas: runas.trim().to_owned(),
        tty: tty.map(|t| t.trim().to_owned()),
        outcome,
        detail: (outcome != Outcome::Ran).then(|| message.trim().to_owned()),
    };
    let message = message.trim();
    // util-linux: `(to root) alice on pts/0`, `FAILED SU (to root) alice on pts/0`
    let (failed, body) = match message.strip_prefix("FAILED SU ") {
        Some(b) => (true, b),
        None => (false, message),
    };
    if let Some(b) = body.strip_prefix("(to ") {
        let (runas, b) = b.split_once(") ")?;
        let (user, tty) = b
            .split_once(" on ")
            .map_or((b, None), |(u, t)| (u, Some(t)));
        let outcome = if failed {
            Outcome::Failed
        } else {
            Outcome::Ran
        };
        return Some(su(user, runas, tty, outcome));
    }
    // shadow: `failed: ttyq4 changing from ldap to root`
    if let Some(b) = message.strip_prefix("failed: ") {
        let (tty, b) = b.split_once(" changing from ")?;
        let (user, runas) = b.split_once(" to ")?;
        return Some(su(user, runas, Some(tty), Outcome::Failed));
    }
    // pam_unix, with or without its `pam_unix(su:session): ` prefix.
    let pam = message
        .split_once("): ")
        .filter(|(p, _)| p.starts_with("pam_unix(su"))
        .map_or(message, |(_, m)| m);
    if let Some(b) = pam.strip_prefix("session opened for user ") {
        let (runas, by) = b.split_once(" by ")?;
        let (runas, _) = name_and_uid(runas);
        let (user, uid) = name_and_uid(by);
        let user = match (user.as_str(), uid) {
            ("", Some(0)) => "root".to_owned(),
            ("", Some(u)) => u.to_string(),
            _ => user,
        };
        let mut s = su(&user, &runas, None, Outcome::Ran);
        s.uid = uid;
        return Some(s);
    }
    if let Some(b) = pam.strip_prefix("authentication failure;") {
        let field = |k: &str| {
            b.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .filter(|v| !v.is_empty())
        };
        let user = field("ruser=").or(field("logname="))?;
        let runas = field("user=").unwrap_or("root");
        let mut s = su(user, runas, field("tty="), Outcome::Failed);
        s.uid = field("uid=").and_then(|u| u.parse().ok());
        return Some(s);
    }
    // BSD: `alice to root on /dev/ttyp1`, `BAD SU alice to root on /dev/ttyp1`
    let (failed, body) = match message.strip_prefix("BAD SU ") {
        Some(b) => (true, b),
        None => (false, message),
    };
    let (users, tty) = body.split_once(" on ")?;
    let (user, runas) = users.split_once(" to ")?;
    if user.contains(' ') || runas.contains(' ') || !tty.starts_with("/dev/") {
        return None;
    }
    let outcome = if failed {
        Outcome::Failed
    } else {
        Outcome::Ran
    };
    Some(su(user, runas, Some(tty), outcome))
}

/// `root(uid=0)` → ("root", 0); `(uid=0)` → ("", 0); `alice` → ("alice", None).
fn name_and_uid(text: &str) -> (String, Option<u32>) {
    let text = text.trim();
    match text.split_once("(uid=") {
        Some((name, uid)) => (name.to_owned(), uid.trim_end_matches(')').parse().ok()),
        None => (text.to_owned(), None),
    }
}
