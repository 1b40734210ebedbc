//! Discovery: elevated actions observed on devices or imported from logs an organisation
//! already has (`POST /v1/imports`), one normalised shape for both.
//!
//! Must never: accept an observation without a bound (every text is bounded and names hold no
//! control characters, checked by `ImportIn::check` before anything is stored), or let an import
//! pass for what an enrolled device reported (imports carry an `import:` source and their own ids).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::check_name;

/// The most observations one import call carries.
pub const MAX_IMPORT_EVENTS: usize = 5_000;
/// Largest import body the server reads.
pub const MAX_IMPORT_EVENTS_BODY: usize = 16 * 1024 * 1024;
/// Longest command line, working directory or detail kept (longer ones are cut by the importer,
/// which says so with `…` at the end).
pub const MAX_COMMAND: usize = 4096;
/// Longest observation id.
pub const MAX_OBSERVATION_ID: usize = 128;

/// How an elevation attempt ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran elevated.
    Ran,
    /// Authentication failed (a wrong password, a bad `su`).
    Failed,
    /// The rules refused it (not in sudoers, command not allowed, a policy's deny).
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "ran" => Outcome::Ran,
            "failed" => Outcome::Failed,
            "refused" => Outcome::Refused,
            _ => return None,
        })
    }
}

/// Where imported observations come from (`elevatectl import --source`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ImportSource {
    /// Classic syslog files (auth.log, secure, messages): sudo and su lines.
    Syslog,
    /// sudo's own JSON event log (`log_format=json`).
    SudoJson,
    /// `journalctl -o json`.
    Journald,
    /// Linux audit's `audit.log`.
    LinuxAudit,
    /// Windows event logs (`.evtx`): Security 4688 and Sysmon 1.
    WindowsEvtx,
    /// Windows events exported one JSON object a line (Security 4688 and Sysmon 1).
    WindowsJson,
}

impl ImportSource {
    pub const ALL: [ImportSource; 6] = [
        ImportSource::Syslog,
        ImportSource::SudoJson,
        ImportSource::Journald,
        ImportSource::LinuxAudit,
        ImportSource::WindowsEvtx,
        ImportSource::WindowsJson,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImportSource::Syslog => "syslog",
            ImportSource::SudoJson => "sudo-json",
            ImportSource::Journald => "journald",
            ImportSource::LinuxAudit => "linux-audit",
            ImportSource::WindowsEvtx => "windows-evtx",
            ImportSource::WindowsJson => "windows-json",
        }
    }

    pub fn parse(s: &str) -> Option<ImportSource> {
        ImportSource::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One elevated action (or attempt) as an importer read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationIn {
    /// Stable for the same record read again (so an import is idempotent), unique otherwise.
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The machine it happened on, as the log names it.
    pub host: String,
    /// The login name that asked (on Windows `DOMAIN\user`).
    pub user: String,
    #[serde(default)]
    pub uid: Option<u32>,
    /// Whom it ran as (`root`, `SYSTEM`, …).
    pub runas: String,
    /// The program: an absolute path or a Windows image path; `su` for a `su` session.
    pub program: String,
    /// The whole command line as the log gives it.
    #[serde(default)]
    pub command_line: String,
    #[serde(default)]
    pub cwd: Option<String>,
    /// The terminal; none for a command with no terminal (a script, cron, a service).
    #[serde(default)]
    pub tty: Option<String>,
    pub outcome: Outcome,
    /// Why it failed or was refused, in the log's words.
    #[serde(default)]
    pub detail: Option<String>,
    /// The front door: `sudo`, `su`, `pkexec`, `exec` (Linux audit), `uac` (Windows).
    pub via: String,
    /// A service, timer or cron job rather than a person at a terminal.
    #[serde(default)]
    pub system: bool,
    /// Windows: the token's elevation (`full`, `limited`, `default`) or integrity level.
    #[serde(default)]
    pub elevation: Option<String>,
}

/// A batch of observations from one file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    pub source: ImportSource,
    /// The file's name, kept with the import's audit event.
    #[serde(default)]
    pub file: Option<String>,
    pub events: Vec<ObservationIn>,
}

/// What one import call stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportOut {
    /// Observations new to the server.
    pub imported: u64,
    /// Observations it already had (the same record imported before).
    pub duplicates: u64,
}

/// Whether an action belongs to the system (a service account, a job with no terminal) rather
/// than to a person at a terminal: no terminal, root itself, or an account below uid 1000.
pub fn is_system(user: &str, uid: Option<u32>, tty: Option<&str>) -> bool {
    tty.is_none() || user == "root" || uid.is_some_and(|u| u < 1000)
}

/// Text cut to `max` bytes at a character boundary, marked with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn check_text(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{what} is {} bytes; at most {max}", value.len()));
    }
    if value.contains('\0') {
        return Err(format!("{what} holds a NUL byte"));
    }
    Ok(())
}

impl ObservationIn {
    /// Every field bounded; names hold no control characters.
    pub fn check(&self) -> Result<(), String> {
        check_name("id", &self.id)?;
        if self.id.len() > MAX_OBSERVATION_ID {
            return Err(format!("id is over {MAX_OBSERVATION_ID} bytes"));
        }
        check_name("host", &self.host)?;
        check_name("user", &self.user)?;
        check_name("runas", &self.runas)?;
        check_name("via", &self.via)?;
        check_text("program", &self.program, MAX_COMMAND)?;
        if self.program.trim().is_empty() {
            return Err("program is blank".into());
        }
        check_text("command_line", &self.command_line, MAX_COMMAND)?;
        for (what, v) in [
            ("cwd", &self.cwd),
            ("tty", &self.tty),
            ("detail", &self.detail),
        ] {
            if let Some(v) = v {
                check_text(what, v, MAX_COMMAND)?;
            }
        }
        if let Some(e) = &self.elevation {
            check_name("elevation", e)?;
        }
        Ok(())
    }
}

impl ImportIn {
    /// The batch's size and every observation in it.
    pub fn check(&self) -> Result<(), String> {
        if self.events.len() > MAX_IMPORT_EVENTS {
            return Err(format!(
                "an import call carries at most {MAX_IMPORT_EVENTS} events; this one has {} \
                 (send them in several calls)",
                self.events.len()
            ));
        }
        if let Some(f) = &self.file {
            check_text("file", f, MAX_COMMAND)?;
        }
        for (i, e) in self.events.iter().enumerate() {
            e.check()
                .map_err(|m| format!("event {} ({}): {m}", i + 1, e.id))?;
        }
        Ok(())
    }
}

/// The reports over discovery (`GET /v1/reports/{name}`).
pub const REPORTS: [(&str, &str); 8] = [
    ("applications", "Applications run elevated"),
    ("users", "Heaviest users"),
    ("departments", "Departments by how varied their use is"),
    ("system", "System dependencies"),
    ("timing", "When elevation happens"),
    ("attempts", "Failed and refused attempts"),
    ("risky", "Risky programs run elevated"),
    ("segments", "Segments: low, moderate and high frequency"),
];

/// A report's column: the key of its value in each row, and a heading for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReportColumn {
    pub key: String,
    pub label: String,
}

/// A report: rows of values under named columns, and the facts around them (totals,
/// thresholds, the heatmap).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub name: String,
    pub title: String,
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub until: Timestamp,
    /// Days in the period.
    pub days: u64,
    /// Only this department's people, when asked.
    pub department: Option<String>,
    pub columns: Vec<ReportColumn>,
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    #[schema(value_type = Object)]
    pub facts: serde_json::Map<String, serde_json::Value>,
}

/// One stored observation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ObservationView {
    pub id: String,
    /// `device` (an enrolled device reported it) or `import`.
    pub origin: String,
    pub source: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub host: String,
    pub user: String,
    pub runas: String,
    pub program: String,
    pub command_line: String,
    pub cwd: Option<String>,
    pub tty: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub via: String,
    pub system: bool,
    pub elevation: Option<String>,
    pub package: Option<String>,
}

/// What a person (or an unknown login) ran elevated in a period: the evidence behind their
/// numbers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidenceView {
    pub who: String,
    /// The logins that are theirs (the directory's), or the login itself.
    pub logins: Vec<String>,
    pub department: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub until: Timestamp,
    /// Newest first, at most 500.
    pub observations: Vec<ObservationView>,
}
