//! Receiving the caller's stdin, stdout and stderr over the Unix socket (`SCM_RIGHTS`).
//!
//! Must never: keep more descriptors than asked for, or accept a truncated control message
//! (`MSG_CTRUNC`) as if it were whole.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};

/// Most descriptors one message may carry.
pub const MAX_FDS: usize = 3;

/// Reads bytes (without blocking) and any descriptors sent with them, received close-on-exec.
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        socket,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    )?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the client sent more descriptors than stdin, stdout and stderr",
        ));
    }
    if fds.len() > MAX_FDS {
        fds.clear();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the client sent more descriptors than stdin, stdout and stderr",
        ));
    }
    Ok(msg.bytes)
}

/// Sends bytes with one descriptor attached (without blocking); returns the bytes sent.
pub fn send_with_fd(socket: BorrowedFd<'_>, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    Ok(sendmsg(
        socket,
        &[std::io::IoSlice::new(bytes)],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )?)
}

/// Whether a descriptor the caller sent could give a root command the caller's terminal: a
/// terminal itself, any terminal or pty device (opened through a path, or the `O_PATH` handle
/// that `/proc/self/fd/N` reopens read-write), or any `O_PATH` handle (it names a file
/// without being a stream; stdio never needs one). Unknown means yes.
pub fn may_reach_a_terminal(fd: BorrowedFd<'_>) -> bool {
    use rustix::fs::{fcntl_getfl, fstat, major, FileType, OFlags};
    if rustix::termios::isatty(fd) {
        return true;
    }
    match fcntl_getfl(fd) {
        Ok(flags) if flags.contains(OFlags::PATH) => return true,
        Ok(_) => {}
        Err(_) => return true,
    }
    let Ok(stat) = fstat(fd) else {
        return true;
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::CharacterDevice {
        return false;
    }
    // Linux's terminal majors: BSD pty masters and slaves (2, 3), virtual consoles and serial
    // lines (4), /dev/tty, /dev/console and /dev/ptmx (5), Unix98 pty slaves (136-143).
    matches!(major(stat.st_rdev), 2..=5 | 136..=143)
}

/// The working directory of process `pid`, held as an `O_PATH` directory handle (a rename or
/// symlink swap after this cannot move what it names).
pub fn open_cwd_of(pid: i32) -> io::Result<OwnedFd> {
    use rustix::fs::{open, Mode, OFlags};
    Ok(open(
        format!("/proc/{pid}/cwd").as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Whether `fd` and the file `path` names now are one file (same device and inode).
pub fn same_file(fd: &OwnedFd, path: &str) -> bool {
    use rustix::fs::{fstat, stat};
    match (fstat(fd), stat(path)) {
        (Ok(held), Ok(named)) => held.st_dev == named.st_dev && held.st_ino == named.st_ino,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn terminals_and_path_handles_are_told_apart_from_plain_streams() {
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(!may_reach_a_terminal(null.as_fd()));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!may_reach_a_terminal(a.as_fd()));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!may_reach_a_terminal(file.as_fd()));
        // A pty slave, opened for reading, and as an O_PATH handle that isatty does not see.
        let master = rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR).unwrap();
        rustix::pty::grantpt(&master).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::File::open(name.to_str().unwrap()).unwrap();
        assert!(may_reach_a_terminal(slave.as_fd()));
        assert!(may_reach_a_terminal(master.as_fd()));
        let path = rustix::fs::open(
            name.as_c_str(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        assert!(!rustix::termios::isatty(&path), "the hole this closes");
        assert!(may_reach_a_terminal(path.as_fd()));
        // Any O_PATH handle, even of a plain file.
        let plain = rustix::fs::open(
            "/proc/self/status",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        assert!(may_reach_a_terminal(plain.as_fd()));
    }
}
