//! Classic syslog files (`auth.log`, `secure`, `messages`): sudo's lines (accepted, failed and
//! refused, `(command continued)` lines joined, `#ooo` escapes decoded, `TSID=`, `ENV=`,
//! `CHROOT=` read) and `su` sessions in the forms util-linux, shadow, BSD and pam_unix write.
//! Timestamps may be BSD (`Apr 27 15:22:23`, the year from options), RFC 3339 or RFC 5424.
//!
//! Must never: count one `su` session twice (its `(to root)` line and its pam line share the
//! process id), or take a line it cannot read for an observation.

use std::collections::HashMap;
use std::io::BufRead;

use elevate_proto::v1::Outcome;
use jiff::{civil, Timestamp};

use crate::{complete, id, Error, Occurrences, Options, Seen, Sink, Tally};

/// One syslog line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub at: Timestamp,
    pub host: Option<&'a str>,
    /// The tag's program (`sudo`, `su`), without `[pid]` or `(pam_unix)`.
    pub program: &'a str,
    /// What the tag said in parentheses (`su(pam_unix)` → `pam_unix`).
    pub facility: Option<&'a str>,
    pub pid: Option<&'a str>,
    pub message: &'a str,
}

/// Reads syslog lines into observations.
pub fn read(input: impl BufRead, options: &Options, sink: &mut Sink<'_>) -> Result<Tally, Error> {
    let mut reader = Reader::new(options, "syslog");
    for line in input.split(b'\n') {
        let line = line.map_err(|e| Error::Io("the input".into(), e))?;
        let text = String::from_utf8_lossy(&line);
        reader.line(text.trim_end_matches('\r'), sink)?;
    }
    reader.finish(sink)?;
    Ok(reader.tally)
}

/// The state of a read: the year, the sudo line waiting for its continuations, recent `su`s.
pub(crate) struct Reader<'o> {
    options: &'o Options,
    /// The source's name, the first part of ids.
    source: &'static str,
    /// The message at hand came from a service: what it reports is the system's.
    pub(crate) system_unit: bool,
    pub(crate) tally: Tally,
    year: Year,
    pending: Option<Pending>,
    occurrences: Occurrences,
    /// `su` processes seen lately: (host, pid) → when.
    su_seen: HashMap<(String, String), Timestamp>,
}

struct Pending {
    at: Timestamp,
    system: bool,
    host: String,
    record: String,
    sudo: Sudo,
}

enum Year {
    /// Given: rolls over when the month goes back (December, then January).
    Fixed {
        year: i16,
        last_month: i8,
    },
    /// From when the file was written: a later date is the year before.
    Before(civil::Date),
    Unknown,
}

impl<'o> Reader<'o> {
    pub(crate) fn new(options: &'o Options, source: &'static str) -> Self {
        let year = match (options.year, options.written) {
            (Some(year), _) => Year::Fixed {
                year,
                last_month: 0,
            },
            (None, Some(w)) => Year::Before(w.to_zoned(options.tz.clone()).date()),
            (None, None) => Year::Unknown,
        };
        Reader {
            options,
            source,
            system_unit: false,
            tally: Tally::default(),
            year,
            pending: None,
            occurrences: Occurrences::default(),
            su_seen: HashMap::new(),
        }
    }

    pub(crate) fn line(&mut self, text: &str, sink: &mut Sink<'_>) -> Result<(), Error> {
        if text.trim().is_empty() {
            return Ok(());
        }
        self.tally.read += 1;
        let Some(line) = self.parse(text)? else {
            self.tally.skip("unreadable line");
            return Ok(());
        };
        self.message(&line, text, sink)
    }

    /// One already-parsed line (journald gives the parts separately).
    pub(crate) fn message(
        &mut self,
        line: &Line<'_>,
        record: &str,
        sink: &mut Sink<'_>,
    ) -> Result<(), Error> {
        let host = line
            .host
            .or(self.options.host.as_deref())
            .unwrap_or("unknown")
            .to_owned();
        match line.program {
            "sudo" => self.sudo(line, host, record, sink),
            "su" => {
                self.flush(sink)?;
                self.su(line, &host, record, sink)
            }
            _ => {
                self.flush(sink)?;
                self.tally.skip("not sudo or su");
                Ok(())
            }
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), Error> {
        self.flush(sink)
    }

    fn parse<'t>(&mut self, text: &'t str) -> Result<Option<Line<'t>>, Error> {
        let mut rest = text;
        // `<85>`: a priority, as in a raw capture.
        if let Some(r) = rest.strip_prefix('<') {
            match r.find('>') {
                Some(end) if end <= 3 && r[..end].bytes().all(|b| b.is_ascii_digit()) => {
                    rest = &r[end + 1..]
                }
                _ => return Ok(None),
            }
        }
        // RFC 5424: `1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
        if let Some(r) = rest.strip_prefix("1 ") {
            return Ok(rfc5424(r));
        }
        let (at, rest) = if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let Some((stamp, rest)) = rest.split_once(' ') else {
                return Ok(None);
            };
            let Ok(at) = stamp.parse::<Timestamp>() else {
                return Ok(None);
            };
            (at, rest)
        } else {
            if rest.len() < 16 || !rest.is_char_boundary(15) {
                return Ok(None);
            }
            let Some(at) = self.bsd_time(&rest[..15])? else {
                return Ok(None);
            };
            (at, &rest[16..])
        };
        Ok(tagged(at, rest.trim_start()))
    }

    /// `Apr 27 15:22:23` (the day may be space-padded) in the options' zone and year.
    fn bsd_time(&mut self, stamp: &str) -> Result<Option<Timestamp>, Error> {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let Some(month) = MONTHS.iter().position(|m| stamp.starts_with(m)) else {
            return Ok(None);
        };
        let month = month as i8 + 1;
        let day: Option<i8> = stamp[4..6].trim().parse().ok();
        let clock: Vec<Option<i8>> = stamp[7..].split(':').map(|p| p.parse().ok()).collect();
        let (Some(day), [Some(h), Some(m), Some(s)]) = (day, clock.as_slice()) else {
            return Ok(None);
        };
        let year = match &mut self.year {
            Year::Fixed { year, last_month } => {
                if month < *last_month && *last_month - month > 6 {
                    *year += 1;
                }
                *last_month = month;
                *year
            }
            Year::Before(written) => {
                let y = written.year();
                if (month, day) > (written.month(), written.day()) {
                    y - 1
                } else {
                    y
                }
            }
            Year::Unknown => {
                return Err(Error::Format(
                    "syslog timestamps carry no year: give it with --year (or keep the file's \
                     modification time)"
                        .into(),
                ))
            }
        };
        let Ok(date) = civil::Date::new(year, month, day) else {
            return Ok(None);
        };
        let Ok(time) = civil::Time::new(*h, *m, *s, 0) else {
            return Ok(None);
        };
        Ok(date
            .to_datetime(time)
            .to_zoned(self.options.tz.clone())
            .ok()
            .map(|z| z.timestamp()))
    }

    /// Sends the sudo line that was waiting for continuations.
    fn flush(&mut self, sink: &mut Sink<'_>) -> Result<(), Error> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let n = self.occurrences.next(p.at, &p.record);
        let id = id(self.source, &[&p.host, &p.record, &n.to_string()]);
        let mut o = p.sudo.observation(id, p.at, &p.host);
        o.system |= p.system;
        self.tally.found += 1;
        sink(o).map_err(Error::Sink)
    }

    fn sudo(
        &mut self,
        line: &Line<'_>,
        host: String,
        record: &str,
        sink: &mut Sink<'_>,
    ) -> Result<(), Error> {
        let message = line.message;
        // `user : (command continued) rest`
        if let Some((_, rest)) = message.split_once(" : (command continued) ") {
            match &mut self.pending {
                Some(p) if p.host == host => {
                    p.sudo.command.push(' ');
                    p.sudo.command.push_str(&unescape(rest));
                    p.record.push('\n');
                    p.record.push_str(record);
                }
                _ => self.tally.skip("continuation without its sudo line"),
            }
            return Ok(());
        }
        self.flush(sink)?;
        match parse_sudo(message) {
            Some(sudo) => {
                self.pending = Some(Pending {
                    at: line.at,
                    system: self.system_unit,
                    host,
                    record: record.to_owned(),
                    sudo,
                });
            }
            None if message.starts_with("pam_") => self.tally.skip("pam (the sudo line counts)"),
            None => self.tally.skip("sudo message without a command"),
        }
        Ok(())
    }

    fn su(
        &mut self,
        line: &Line<'_>,
        host: &str,
        record: &str,
        sink: &mut Sink<'_>,
    ) -> Result<(), Error> {
        let Some(su) = parse_su(line.message) else {
            let reason = if line.message.contains("session closed") {
                "su session end"
            } else {
                "su message without a session"
            };
            self.tally.skip(reason);
            return Ok(());
        };
        // One su process writes `(to root) …` and pam's `session opened …`: count it once.
        if let Some(pid) = line.pid {
            let key = (host.to_owned(), pid.to_owned());
            if let Some(seen) = self.su_seen.get(&key) {
                if line.at.as_second().abs_diff(seen.as_second()) <= 10 {
                    self.tally.skip("su session already counted");
                    return Ok(());
                }
            }
            if self.su_seen.len() > 4096 {
                let now = line.at.as_second();
                self.su_seen
                    .retain(|_, t| now.abs_diff(t.as_second()) <= 10);
            }
            self.su_seen.insert(key, line.at);
        }
        let n = self.occurrences.next(line.at, record);
        let mut o = Seen {
            id: id(self.source, &[host, record, &n.to_string()]),
            at: line.at,
            host,
            user: &su.user,
            runas: &su.runas,
            program: "su",
            via: "su",
            outcome: su.outcome,
        }
        .observation();
        o.uid = su.uid;
        o.detail = su.detail.clone();
        let command = format!("su {}", su.runas);
        let mut o = complete(o, &command, None, su.tty.as_deref());
        o.system |= self.system_unit;
        self.tally.found += 1;
        sink(o).map_err(Error::Sink)
    }
}

/// The tag and message after the timestamp: `[host] prog[pid]: message`.
fn tagged(at: Timestamp, rest: &str) -> Option<Line<'_>> {
    let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let (host, tag_and_message) = if first.ends_with(':') {
        (None, rest)
    } else {
        (Some(first), after.trim_start())
    };
    let (tag, message) = tag_and_message.split_once(':')?;
    if tag.contains(' ') || tag.is_empty() {
        return None;
    }
    let (tag, pid) = match tag.split_once('[') {
        Some((t, p)) => (t, Some(p.trim_end_matches(']'))),
        None => (tag, None),
    };
    let (program, facility) = match tag.split_once('(') {
        Some((p, f)) => (p, Some(f.trim_end_matches(')'))),
        None => (tag, None),
    };
    Some(Line {
        at,
        host,
        program,
        facility,
        pid,
        message: message.strip_prefix(' ').unwrap_or(message),
    })
}

/// `TIMESTAMP HOST APP PROCID MSGID SD MSG` (after `<pri>1 `).
fn rfc5424(rest: &str) -> Option<Line<'_>> {
    let mut parts = rest.splitn(6, ' ');
    let at = parts.next()?.parse::<Timestamp>().ok()?;
    let host = parts.next().filter(|h| *h != "-");
    let program = parts.next()?;
    let pid = parts.next().filter(|p| *p != "-");
    let _msgid = parts.next()?;
    let rest = parts.next().unwrap_or("");
    // Structured data: `-` or `[...]` groups (a `]` inside values is escaped as `\]`).
    let message = if let Some(m) = rest.strip_prefix('-') {
        m
    } else {
        let mut end = None;
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut inside = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 1,
                b'[' if !inside => inside = true,
                b']' if inside => {
                    inside = false;
                    if bytes.get(i + 1) != Some(&b'[') {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        &rest[end?..]
    };
    let message = message.strip_prefix(' ').unwrap_or(message);
    Some(Line {
        at,
        host,
        program,
        facility: None,
        pid,
        message: message.strip_prefix('\u{feff}').unwrap_or(message),
    })
}

/// A sudo line's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sudo {
    pub user: String,
    pub tty: Option<String>,
    pub cwd: Option<String>,
    pub runas: String,
    pub group: Option<String>,
    pub tsid: Option<String>,
    pub env: Option<String>,
    pub chroot: Option<String>,
    pub command: String,
    /// Why it failed or was refused (the text before `TTY=`/`PWD=`).
    pub detail: Option<String>,
    pub outcome: Option<Outcome>,
}

impl Sudo {
    fn observation(
        self,
        id: String,
        at: Timestamp,
        host: &str,
    ) -> elevate_proto::v1::ObservationIn {
        let program = program_of(&self.command);
        let mut o = Seen {
            id,
            at,
            host,
            user: &self.user,
            runas: &self.runas,
            program: &program,
            via: "sudo",
            outcome: self.outcome.unwrap_or(Outcome::Ran),
        }
        .observation();
        o.detail = self.detail.clone();
        complete(o, &self.command, self.cwd.as_deref(), self.tty.as_deref())
    }
}

/// `user : [detail ;] TTY=.. ; PWD=.. ; USER=.. ; [GROUP=..;] [TSID=..;] [ENV=..;] [CHROOT=..;] COMMAND=..`
pub fn parse_sudo(message: &str) -> Option<Sudo> {
    let (user, mut rest) = message.split_once(" : ")?;
    let mut s = Sudo {
        user: user.trim().to_owned(),
        runas: "root".into(),
        ..Sudo::default()
    };
    let mut details = Vec::new();
    loop {
        if let Some(command) = rest.strip_prefix("COMMAND=") {
            s.command = unescape(command);
            break;
        }
        let (field, after) = rest.split_once(" ; ")?;
        match field.split_once('=') {
            Some(("TTY", v)) => s.tty = Some(v.to_owned()),
            Some(("PWD", v)) => s.cwd = Some(unescape(v)),
            Some(("USER", v)) => s.runas = v.to_owned(),
            Some(("GROUP", v)) => s.group = Some(v.to_owned()),
            Some(("TSID", v)) => s.tsid = Some(v.to_owned()),
            Some(("ENV", v)) => s.env = Some(unescape(v)),
            Some(("CHROOT", v)) => s.chroot = Some(v.to_owned()),
            _ => details.push(field.trim().to_owned()),
        }
        rest = after;
    }
    if s.user.is_empty() || s.command.trim().is_empty() {
        return None;
    }
    if !details.is_empty() {
        let detail = details.join("; ");
        let failed = [
            "incorrect password",
            "password is required",
            "authentication",
        ]
        .iter()
        .any(|w| detail.contains(w));
        s.outcome = Some(if failed {
            Outcome::Failed
        } else {
            Outcome::Refused
        });
        s.detail = Some(detail);
    }
    Some(s)
}

/// The program of a command line: its first word (`\ ` is an escaped space in sudo's log).
pub fn program_of(command: &str) -> String {
    let mut program = String::new();
    let mut chars = command.trim_start().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => program.push(n),
                None => program.push('\\'),
            },
            ' ' => break,
            c => program.push(c),
        }
    }
    program
}

/// Decodes sudo's `#ooo` escapes of control characters (a NUL stays escaped).
pub fn unescape(text: &str) -> String {
    if !text.contains('#') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            let octal = digits[0] <= b'3' && digits.iter().all(|d| (b'0'..=b'7').contains(d));
            if octal {
                let value = (digits[0] - b'0') * 64 + (digits[1] - b'0') * 8 + (digits[2] - b'0');
                if value != 0 {
                    out.push(value);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
