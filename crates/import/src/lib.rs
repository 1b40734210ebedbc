//! Importers: logs an organisation already has, read into discovery observations
//! (`elevate_proto::v1::ObservationIn`) so that discovery can start before agents are deployed,
//! or reach back before they were.
//!
//! One module per kind of source (`syslog`, `sudo_json`, `journald`, `linux_audit`, `windows`);
//! each reads a stream and hands every observation to a sink, counting what it read and what it
//! skipped, by reason, in a [`Tally`]. An observation's id is derived from the record itself, so
//! reading the same file again yields the same ids and the server stores nothing twice.
//!
//! Must never: trust text that anyone can write where a source says who wrote it (journald's
//! kernel-attested `_COMM`/`_EXE` decide whether a "sudo" line came from sudo), let a field grow
//! past the bounds the server checks (every text is cut to them here), or stop at a bad record
//! (it is counted and skipped; the rest is read).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use elevate_proto::v1::{is_system, ImportSource, ObservationIn, Outcome, MAX_COMMAND};
use jiff::{tz::TimeZone, Timestamp};
use sha2::{Digest, Sha256};

pub mod journald;
pub mod linux_audit;
pub mod su;
pub mod sudo_json;
pub mod sudo_line;
pub mod syslog;
pub mod windows;

/// What an importer needs to know that a file may not say.
#[derive(Debug, Clone)]
pub struct Options {
    /// The host of lines that name none (a raw `/dev/log` capture) and of sources without hosts.
    pub host: Option<String>,
    /// The year of syslog timestamps that carry none (`Apr 27 15:22:23`).
    pub year: Option<i16>,
    /// When the file was last written: with no `year`, a date after this is the year before.
    pub written: Option<Timestamp>,
    /// The zone of timestamps without an offset.
    pub tz: TimeZone,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: None,
            year: None,
            written: None,
            tz: TimeZone::UTC,
        }
    }
}

/// What one file held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records read (lines, JSON objects, EVTX records).
    pub read: u64,
    /// Observations found and handed on.
    pub found: u64,
    /// Records left out, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Damage that was skipped over (a corrupt EVTX chunk), for the summary.
    pub problems: Vec<String>,
}

impl Tally {
    pub fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
    }

    fn problem(&mut self, what: String) {
        if self.problems.len() < 100 {
            self.problems.push(what);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {0}")]
    Io(String, #[source] std::io::Error),
    #[error("{0}")]
    Format(String),
    /// The sink refused an observation (e.g. the server could not be reached).
    #[error("{0}")]
    Sink(String),
}

/// Where observations go; an error stops the import.
pub type Sink<'a> = dyn FnMut(ObservationIn) -> Result<(), String> + 'a;

/// Reads one file of the given kind (gzip-compressed or not) into the sink.
pub fn import_file(
    path: &Path,
    source: ImportSource,
    options: &Options,
    sink: &mut Sink<'_>,
) -> Result<Tally, Error> {
    let io = |e| Error::Io(path.display().to_string(), e);
    if source == ImportSource::WindowsEvtx {
        return windows::evtx_file(path, options, sink);
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let gzip = reader.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    };
    import_reader(input, source, options, sink)
}

/// Reads a stream of the given kind into the sink (not `windows-evtx`, which needs a file).
pub fn import_reader(
    input: impl BufRead,
    source: ImportSource,
    options: &Options,
    sink: &mut Sink<'_>,
) -> Result<Tally, Error> {
    match source {
        ImportSource::Syslog => syslog::read(input, options, sink),
        ImportSource::SudoJson => sudo_json::read(input, options, sink),
        ImportSource::Journald => journald::read(input, options, sink),
        ImportSource::LinuxAudit => linux_audit::read(input, options, sink),
        ImportSource::WindowsJson => windows::json_lines(input, options, sink),
        ImportSource::WindowsEvtx => Err(Error::Format(
            "windows-evtx reads a file, not a stream; give the .evtx file's path".into(),
        )),
    }
}

/// Guesses a file's kind from its first bytes, for `--source auto`.
pub fn detect(path: &Path) -> Result<ImportSource, Error> {
    let io = |e| Error::Io(path.display().to_string(), e);
    let mut head = vec![0u8; 64 * 1024];
    let mut file = std::fs::File::open(path).map_err(io)?;
    let n = read_up_to(&mut file, &mut head).map_err(io)?;
    head.truncate(n);
    if head.starts_with(b"ElfFile\0") {
        return Ok(ImportSource::WindowsEvtx);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut unpacked = vec![0u8; 64 * 1024];
        let mut gz = flate2::read::MultiGzDecoder::new(&head[..]);
        let n = read_up_to(&mut gz, &mut unpacked).unwrap_or(0);
        unpacked.truncate(n);
        head = unpacked;
    }
    let text = String::from_utf8_lossy(&head);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let kind = if first.contains("__CURSOR") || first.contains("__REALTIME_TIMESTAMP") {
        ImportSource::Journald
    } else if first.starts_with("type=") || first.starts_with("node=") {
        ImportSource::LinuxAudit
    } else if first.trim_start().starts_with('{')
        && (text.contains("\"EventID\"") || text.contains("\"EventId\""))
    {
        ImportSource::WindowsJson
    } else if first.trim_start().starts_with('{') {
        ImportSource::SudoJson
    } else {
        ImportSource::Syslog
    };
    Ok(kind)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An observation's id: the source's name and a digest of what identifies the record.
pub fn id(source: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{source}:{}", &hex::encode(h.finalize())[..40])
}

/// Numbers identical records within one second, so that two identical lines (the same command
/// twice in a second) stay two observations while a file read twice gives the same ids.
#[derive(Debug, Default)]
pub(crate) struct Occurrences {
    second: i64,
    seen: HashMap<String, u32>,
}

impl Occurrences {
    pub(crate) fn next(&mut self, at: Timestamp, record: &str) -> u32 {
        if at.as_second() != self.second {
            self.second = at.as_second();
            self.seen.clear();
        }
        let n = self.seen.entry(record.to_owned()).or_default();
        *n += 1;
        *n
    }
}

pub use elevate_proto::v1::shorten as cut;

/// A name as the server accepts it: control characters made visible, bounded, never empty.
pub fn name(text: &str) -> String {
    let clean: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.is_empty() {
        "unknown".into()
    } else {
        cut(&clean, 256).trim().to_owned()
    }
}

/// The parts every importer fills in; the rest start empty.
pub(crate) struct Seen<'a> {
    pub id: String,
    pub at: Timestamp,
    pub host: &'a str,
    pub user: &'a str,
    pub runas: &'a str,
    pub program: &'a str,
    pub via: &'a str,
    pub outcome: Outcome,
}

impl Seen<'_> {
    pub(crate) fn observation(self) -> ObservationIn {
        ObservationIn {
            id: self.id,
            at: self.at,
            host: name(self.host),
            user: name(self.user),
            uid: None,
            runas: name(self.runas),
            program: cut(self.program.trim(), MAX_COMMAND),
            command_line: String::new(),
            cwd: None,
            tty: None,
            outcome: self.outcome,
            detail: None,
            via: name(self.via),
            system: false,
            elevation: None,
        }
    }
}

/// Fills the optional texts (bounded) and decides `system` from user, uid and terminal.
pub(crate) fn complete(
    mut o: ObservationIn,
    command_line: &str,
    cwd: Option<&str>,
    tty: Option<&str>,
) -> ObservationIn {
    o.command_line = cut(command_line, MAX_COMMAND);
    o.cwd = cwd.filter(|c| !c.is_empty()).map(|c| cut(c, MAX_COMMAND));
    o.tty = tty
        .filter(|t| !t.is_empty() && *t != "unknown" && *t != "(none)" && *t != "?")
        .map(|t| cut(t.strip_prefix("/dev/").unwrap_or(t), 256));
    o.system = is_system(&o.user, o.uid, o.tty.as_deref());
    o
}

#[cfg(test)]
mod tests;
