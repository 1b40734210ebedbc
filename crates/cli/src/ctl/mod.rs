//! `elevatectl`: sign in, policies (apply, show, list, diff, test), requests (list, show,
//! approve, deny), devices, enrolment tokens, and the audit chain (verify, export).
//!
//! Human output by default, `--json` for scripts. Exit status 0 on success, 1 when the server
//! refused or the audit chain is broken, 2 for usage errors.

mod commands;
mod directory;
mod discovery;
mod fleet;
mod output;
mod report;
mod settings;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "elevatectl",
    version,
    about = "Administer Elevate: policies, requests, devices, audit"
)]
pub struct Cli {
    /// Server URL (default: the one saved by `login`, or ELEVATE_SERVER).
    #[arg(long, global = true, env = "ELEVATE_SERVER")]
    pub server: Option<String>,
    /// API token (default: the one saved by `login`, or ELEVATE_TOKEN).
    #[arg(long, global = true, env = "ELEVATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The certificate authority (PEM) that issued the server's certificate, when it is your
    /// organisation's own (default: the one saved by `login`, or ELEVATE_CA_FILE).
    #[arg(long, global = true, env = "ELEVATE_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in with an account's password and save the token (0600) for later commands.
    Login {
        /// Account name.
        #[arg(long)]
        account: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget the saved token.
    Logout,
    /// Show the account behind the token.
    Whoami,
    /// Policies: apply, show, list, diff, test.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Requests: list, show, approve, deny.
    #[command(subcommand)]
    Requests(RequestsCommand),
    /// Enrolled devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Your API tokens (admins: anyone's): list, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Accounts (admins): disable, enable, remove.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// One-time enrolment tokens for new devices.
    #[command(subcommand, name = "enrol-token")]
    EnrolToken(EnrolTokenCommand),
    /// The people directory: import a CSV file (with a dry run).
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// People in the directory: list, show, remove.
    #[command(subcommand)]
    People(PeopleCommand),
    /// Import existing logs into discovery: sudo and su syslog lines (auth.log, secure),
    /// sudo's JSON log, `journalctl -o json` exports, Linux audit logs, Windows EVTX files
    /// and JSON exports (4688, Sysmon 1). Gzip is read as is. Importing a file again changes
    /// nothing.
    Import(ImportArgs),
    /// Discovery reports: applications, users, departments, system, timing, attempts, risky,
    /// segments; `evidence --who NAME` lists what one person ran.
    Report(ReportArgs),
    /// The audit chain: verify, export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Offline codes for devices that cannot reach the server: show whose a challenge is, and
    /// answer it.
    #[command(subcommand)]
    Offline(OfflineCommand),
}

#[derive(Debug, Subcommand)]
pub enum OfflineCommand {
    /// Which device and user a challenge belongs to (check before answering).
    Show {
        /// The challenge as the caller reads it (quote it if it has spaces).
        challenge: String,
    },
    /// Answer a challenge: prints the response code to read back.
    Respond {
        challenge: String,
        /// `request`: the pending request, once; `session`: an admin session; `break-glass`:
        /// your share of an emergency session (each helpdesk member gives one).
        #[arg(long, default_value = "request")]
        scope: String,
        /// How long, e.g. 30m or 2h (at most 24h).
        #[arg(long, default_value = "30m")]
        duration: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
        /// The device's name, when the challenge fits more than one.
        #[arg(long)]
        device: Option<String>,
        /// For `--scope request`: the command exactly as the caller reads it from their screen
        /// (quote it as one argument: --command '/usr/bin/apt install htop'). The code covers
        /// it; the device refuses it for any other command.
        #[arg(long)]
        command: Option<String>,
        /// The program's SHA-256 (`sha256sum PROGRAM` on the device), when the server has
        /// never seen it.
        #[arg(long)]
        sha256: Option<String>,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Apply a policy file as the new version.
    Apply {
        file: std::path::PathBuf,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Show a version's text (default: the current one).
    Show { version: Option<u64> },
    /// List versions.
    List,
    /// Unified diff between two versions.
    Diff { from: u64, to: u64 },
    /// Explain how the policy decides a request, without creating it.
    Test(PolicyTestArgs),
}

#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// Requesting user.
    #[arg(long)]
    pub user: String,
    #[arg(long, default_value_t = 1000)]
    pub uid: u32,
    /// Comma-separated groups of the user.
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Absolute path of the command (or use --session).
    #[arg(long, conflicts_with = "session")]
    pub path: Option<String>,
    #[arg(long)]
    pub sha256: Option<String>,
    #[arg(long)]
    pub package: Option<String>,
    /// Ask for an admin session of this length instead (e.g. 30m).
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
    /// Device name and tags to evaluate for.
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Evaluate at this time (RFC 3339, e.g. 2026-12-24T20:00:00Z).
    #[arg(long)]
    pub at: Option<String>,
    /// Evaluate this draft file instead of the stored policy.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// Evaluate this stored version instead of the current one.
    #[arg(long)]
    pub version: Option<u64>,
    /// Arguments of the command.
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List requests, newest first.
    List {
        /// Only this state (pending, approved, denied, expired, cancelled, running, finished).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one request.
    Show { id: String },
    /// Approve a request.
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Unexpired API tokens: yours, or (admins) an account's or everyone's.
    List {
        #[arg(long, conflicts_with = "all")]
        account: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by its id (from `tokens list`): refused from now on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Its password, API tokens and portal sign-ins stop working.
    Disable { name: String },
    /// A disabled account works again (it signs in anew).
    Enable { name: String },
    /// Gone, with its tokens and sign-ins; the audit log keeps its history.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List enrolled devices.
    List,
    /// Standing admin rights a device reported as needing a person (grants it cannot take
    /// apart, failed changes, groups old sessions still hold).
    Rights {
        /// The device's name.
        name: String,
    },
    /// Revoke a device (lost, stolen, decommissioned): its credential is refused at once and
    /// its offline codes answer nothing; enrolling it again gives it new ones.
    Revoke {
        /// The device's name.
        name: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The files to import.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// What the files are: auto (recognise each file), syslog, sudo-json, journald,
    /// linux-audit, windows-evtx, windows-json.
    #[arg(long, default_value = "auto")]
    pub source: String,
    /// The year of syslog timestamps that carry none (default: from the file's modification
    /// time; a date after it is the year before).
    #[arg(long)]
    pub year: Option<i16>,
    /// The host of lines that name none.
    #[arg(long)]
    pub host: Option<String>,
    /// The time zone of timestamps without one, e.g. Europe/Berlin (default: this machine's).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Read the files and print what would be imported; send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The report: applications, users, departments, system, timing, attempts, risky,
    /// segments, or evidence (with --who).
    pub name: String,
    /// The first day, e.g. 2026-11-01 (default: 30 days before --until).
    #[arg(long)]
    pub since: Option<String>,
    /// The end, excluded, e.g. 2026-12-01 (default: the end of today, UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this department's people (`none`: people without one).
    #[arg(long)]
    pub department: Option<String>,
    /// The policy calendar that says what "after hours" is (timing).
    #[arg(long)]
    pub calendar: Option<String>,
    /// Segments: elevations per 30 days from which a person is moderate (default 5).
    #[arg(long)]
    pub moderate: Option<u64>,
    /// Segments: elevations per 30 days from which a person is high (default 20).
    #[arg(long)]
    pub high: Option<u64>,
    /// Only what enrolled devices reported (device) or only imports (import).
    #[arg(long)]
    pub origin: Option<String>,
    /// The person (or login) whose evidence to list.
    #[arg(long)]
    pub who: Option<String>,
    /// table, json or csv.
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Import people from a CSV file, all or nothing. The header names the columns:
    /// user_name (required), display_name, email, department, manager, accounts, slack,
    /// logins, groups, active. Lists are separated by `;`; a login is LOGIN (every device),
    /// LOGIN@device:NAME or LOGIN@tag:TAG.
    Import {
        file: std::path::PathBuf,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Remove people the file does not name (never those an identity provider manages).
        #[arg(long)]
        remove_missing: bool,
    },
    /// A SCIM bearer token for an identity provider (Okta, Entra ID, …) to provision people
    /// at /scim/v2; its previous token stops working. Printed once.
    ScimToken { provider: String },
}

#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// Everyone in the directory.
    List,
    /// One person with every account and login.
    Show { user_name: String },
    /// Remove a person from the directory (their accounts stay).
    Remove { user_name: String },
}

#[derive(Debug, Subcommand)]
pub enum EnrolTokenCommand {
    /// Create a one-time enrolment token.
    Create {
        /// Lifetime, e.g. 1h or 2d (default 1h).
        #[arg(long)]
        ttl: Option<String>,
        /// Comma-separated tags for the device.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exits 1 and names the first bad record when it is broken.
    Verify,
    /// Export the chain.
    Export {
        /// jsonl (default) or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("elevatectl: {}", output::terminal_safe(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}
