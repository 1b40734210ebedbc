//! Advisory locks on files the agent keeps (the admin-session ledger, a reaper's claim).
//!
//! Must never: wait on a lock while another lock is held in the opposite order.

use std::fs::File;
use std::io;

/// Waits for an exclusive lock on `file` (released when it is closed).
pub fn lock(file: &File) -> io::Result<()> {
    Ok(rustix::fs::flock(
        file,
        rustix::fs::FlockOperation::LockExclusive,
    )?)
}

/// Takes an exclusive lock on `file` if nobody holds one; false when someone does.
pub fn try_lock(file: &File) -> bool {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}
