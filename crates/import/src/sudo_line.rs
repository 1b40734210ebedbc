//! sudo's classic log line: `user : [detail ;] TTY=.. ; PWD=.. ; USER=.. ; … COMMAND=..`, its
//! `#ooo` escapes, and the program of a command line.
//!
//! Must never: read a field out of the command (`COMMAND=` is last and takes the rest of the
//! line, ` ; ` and all).

use elevate_proto::v1::Outcome;
use jiff::Timestamp;

use crate::{complete, Seen};

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
    pub(crate) fn observation(
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
