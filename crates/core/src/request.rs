//! What a person asks for: who asks, for what, why, and through which front door.
//!
//! These are domain values, not wire types: `elevate-proto` owns the JSON shape and converts.
//! Must never: read the file system to fill in a field (the agent resolves paths and hashes).

use jiff::SignedDuration;

/// The person (and the machine) asking for elevation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Login name on the endpoint.
    pub user: String,
    /// Numeric uid on the endpoint, as seen by the kernel (`SO_PEERCRED`), never as claimed.
    pub uid: u32,
    /// Names of the groups the user belongs to on the endpoint.
    pub groups: Vec<String>,
    /// Name of the enrolled device the request comes from.
    pub device: String,
    /// Tags given to the device at enrolment (e.g. `laptop`, `finance`).
    pub device_tags: Vec<String>,
}

/// A command, as resolved by the agent: absolute path, hash of the opened file, owning package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Absolute, resolved path of the binary.
    pub path: String,
    /// The name the program will see as `argv[0]` (the path as typed, after the PATH lookup),
    /// when it is not `path` itself: `/usr/sbin/reboot` for `/usr/bin/systemctl`. Programs that
    /// do several things decide by this name, so rules and approvers see it too.
    pub invoked: Option<String>,
    /// Lower-case hex SHA-256 of the file that will run, if known.
    pub sha256: Option<String>,
    /// Owning Debian package, if the file belongs to one.
    pub package: Option<String>,
    /// Arguments after the program name (argv[1..]).
    pub args: Vec<String>,
}

impl CommandSpec {
    /// Whether the program sees the name of its own file: no other name, or one with the same
    /// last component (`/bin/bash` for `/usr/bin/bash`).
    pub fn keeps_its_name(&self) -> bool {
        self.invoked
            .as_deref()
            .is_none_or(|invoked| base_name(invoked) == base_name(&self.path))
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What the request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Run exactly this command as root.
    Command(CommandSpec),
    /// A time-limited admin session of this length.
    Session { duration: SignedDuration },
}

/// The front door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Through `sudo` and the Elevate sudo plugin.
    Sudo,
    /// Through the `elevate` command and the agent.
    Native,
    /// Decided on the endpoint with a helpdesk response code.
    Offline,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sudo => "sudo",
            Channel::Native => "native",
            Channel::Offline => "offline",
        }
    }
}

/// A request for elevation, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub subject: Subject,
    pub target: Target,
    /// Free-text reason given by the requester (untrusted text).
    pub reason: Option<String>,
    pub channel: Channel,
}

impl AccessRequest {
    /// True when the requester gave a reason that is more than whitespace.
    pub fn has_reason(&self) -> bool {
        self.reason.as_deref().is_some_and(|r| !r.trim().is_empty())
    }
}
