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

/// The master side, non-blocking and registered with the runtime, for an agent that drains a
/// command's output after its client went away.
pub fn readable_master(master: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    rustix::io::ioctl_fionbio(&master, true)?;
    // SAFETY: an `OwnedFd` is a valid open descriptor that stays open, and refers to the same
    // file description, for as long as it is owned; the `AsyncFd` owns it from here until it is
    // dropped, and `OwnedFd::as_raw_fd` always returns that same descriptor.
    #[allow(unsafe_code)]
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(master, tokio::io::Interest::READABLE)
    };
    registered.map_err(|e| e.into())
}

/// Reads and throws away what is waiting on a non-blocking master; `Ok(0)` once the command
/// has closed its side.
pub fn discard(master: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(master, buf)?)
}
