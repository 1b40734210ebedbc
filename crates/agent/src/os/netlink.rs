//! The kernel's audit records, read from the read-only multicast group
//! (`AUDIT_NLGRP_READLOG`) of the audit netlink socket.
//!
//! Must never: write to the audit socket (the agent only listens, beside any audit daemon), or
//! hand its descriptor to a child (it is close-on-exec).

use std::io;
use std::os::fd::OwnedFd;

/// `AUDIT_NLGRP_READLOG`: the multicast group that carries every audit record, read-only.
const READLOG_GROUP: u32 = 1;

/// Why an audit socket could not be had.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the audit socket: {0}")]
    Socket(io::Error),
    #[error("cannot read audit records (CAP_AUDIT_READ; Linux 3.16+): {0}")]
    Bind(io::Error),
}

/// An audit netlink socket bound to the read-only group, close-on-exec.
pub fn audit_readlog() -> Result<OwnedFd, OpenError> {
    use rustix::net::{bind, netlink, socket_with, AddressFamily, SocketFlags, SocketType};
    let socket = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(netlink::AUDIT),
    )
    .map_err(|e| OpenError::Socket(e.into()))?;
    bind(&socket, &netlink::SocketAddrNetlink::new(0, READLOG_GROUP))
        .map_err(|e| OpenError::Bind(e.into()))?;
    Ok(socket)
}

/// What one read of the socket gave.
#[derive(Debug)]
pub enum Received {
    /// This many bytes of records.
    Bytes(usize),
    /// The kernel dropped records while the reader was slow.
    Lost,
    /// Interrupted: read again.
    Interrupted,
}

/// Reads the next datagram of records into `buf`.
pub fn recv(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<Received> {
    match rustix::net::recv(socket, buf, rustix::net::RecvFlags::empty()) {
        Ok((n, _)) => Ok(Received::Bytes(n)),
        Err(rustix::io::Errno::NOBUFS) => Ok(Received::Lost),
        Err(rustix::io::Errno::INTR) => Ok(Received::Interrupted),
        Err(e) => Err(e.into()),
    }
}
