//! Classic syslog files (`auth.log`, `secure`, `messages`): sudo's lines (accepted, failed and
//! refused, `(command continued)` lines joined, `#ooo` escapes decoded, `TSID=`, `ENV=`,
//! `CHROOT=` read) and `su` sessions in the forms util-linux, shadow, BSD and pam_unix write.
//! Timestamps may be BSD (`Apr 27 15:22:23`, the year from options), RFC 3339 or RFC 5424.
//!
//! Must never: count one `su` session twice (its `(to root)` line and its pam line share the
//! process id), or take a line it cannot read for an observation.

use std::collections::HashMap;
use std::io::BufRead;

use jiff::{civil, Timestamp};

use crate::su::parse_su;
use crate::sudo_line::{parse_sudo, unescape, Sudo};
use crate::{complete, id, Error, Occurrences, Options, Seen, Sink, Tally};

/// One syslog line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub at: Timestamp,
    pub host: Option<&'a str>,
    /// The tag's program (`sudo`, `su`), without `[pid]` or `(pam_unix)`.
    pub program: &'a str,
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
    // `su(pam_unix)`: the program is `su`.
    let program = tag.split_once('(').map_or(tag, |(p, _)| p);
    Some(Line {
        at,
        host,
        program,
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
        pid,
        message: message.strip_prefix('\u{feff}').unwrap_or(message),
    })
}
