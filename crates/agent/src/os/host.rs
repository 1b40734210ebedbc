//! Facts about this host and this process: its node name, whether the agent runs as root.
//!
//! Must never: change anything (these only read).

/// The host's node name (`uname -n`).
pub fn node_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Whether this process runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}
