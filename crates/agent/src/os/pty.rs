//! Fresh pseudo-terminals for interactive commands: the root command gets its own terminal
//! (relayed by the client, as run0 and sudo's use_pty do) and never the user's, so nothing in the
//! user's session can push keystrokes into it through the shared terminal (TIOCSTI).
//!
//! Must never: hand the command the caller's terminal when the caller is interactive.

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{open, Mode, OFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

/// A new pty: (master for the client, slave for the command), both close-on-exec.
pub fn open_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((master, slave))
}
