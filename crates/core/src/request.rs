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

/// The one rule for a reason a person types, wherever it enters (the agent's socket, the
/// server's API, the helpdesk's offline code): blank means none, and it is at most
/// [`Reason::MAX`] bytes. Whether a request needs one is the policy's word
/// ([`crate::Decision::missing_reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

/// Why a typed reason is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("a reason may be at most {} bytes", Reason::MAX)]
    TooLong,
    #[error("a reason is required")]
    Missing,
}

impl Reason {
    /// Longest reason a person may give, in bytes.
    pub const MAX: usize = 4096;

    /// A reason that may be left out: blank is none.
    pub fn optional(text: Option<String>) -> Result<Option<Reason>, ReasonError> {
        match text {
            Some(t) if !t.trim().is_empty() => Self::checked(t).map(Some),
            _ => Ok(None),
        }
    }

    /// A reason that must be given (break glass, a helpdesk's offline code).
    pub fn required(text: String) -> Result<Reason, ReasonError> {
        Self::optional(Some(text))?.ok_or(ReasonError::Missing)
    }

    fn checked(text: String) -> Result<Reason, ReasonError> {
        if text.len() > Self::MAX {
            return Err(ReasonError::TooLong);
        }
        Ok(Reason(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod reason_tests {
    use super::*;

    #[test]
    fn a_reason_is_blank_given_or_too_long() {
        assert_eq!(Reason::optional(None), Ok(None));
        assert_eq!(Reason::optional(Some(" \t\n".into())), Ok(None));
        let given = Reason::optional(Some(" ticket 42 ".into()))
            .unwrap()
            .unwrap();
        assert_eq!(given.as_str(), " ticket 42 ");
        let at_limit = "é".repeat(Reason::MAX / 2);
        assert!(Reason::optional(Some(at_limit)).unwrap().is_some());
        let over = "a".repeat(Reason::MAX + 1);
        assert_eq!(
            Reason::optional(Some(over.clone())),
            Err(ReasonError::TooLong)
        );
        assert_eq!(Reason::required(over), Err(ReasonError::TooLong));
        assert_eq!(Reason::required("  ".into()), Err(ReasonError::Missing));
        assert_eq!(
            ReasonError::TooLong.to_string(),
            "a reason may be at most 4096 bytes"
        );
    }
}
