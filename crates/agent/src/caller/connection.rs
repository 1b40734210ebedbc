//! A caller's connection: the socket, its frame buffer and the descriptors that come with
//! frames, and who is at the other end as the kernel says (`SO_PEERCRED`, a pidfd).
//!
//! Must never: take identity from a frame, or wait on a client that trickles (its first byte and
//! its first frame have short deadlines).

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use elevate_core::Reason;
use elevate_proto::ipc::{AgentFrame, ClientFrame, FrameError, FrameReader, Refusal, VERSION};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::os;

/// How long a client may take to send the first byte of its first frame.
const FIRST_BYTE: Duration = Duration::from_secs(3);
/// How long a client may take to send its whole first frame (at most `ipc::MAX_FRAME`).
const FIRST_FRAME: Duration = Duration::from_secs(5);

/// The process at the other end, as the kernel knows it.
pub(super) struct Peer {
    /// Its effective uid when it connected (`SO_PEERCRED`).
    pub uid: u32,
    pub pid: Option<i32>,
    /// The process itself (SO_PEERPIDFD), where the kernel has it: proves that `pid` still
    /// names the process that connected.
    pub process: os::process::PeerProcess,
}

impl Peer {
    /// The user who ran the sudo process at the other end: its real uid as the kernel keeps
    /// it, read while a pidfd proves the process is the one that connected.
    pub fn sudo_user(&self) -> Option<u32> {
        self.pid
            .and_then(|pid| os::process::real_uid(pid).ok())
            .filter(|_| self.process.still_there())
    }
}

/// The socket with a frame buffer.
pub(super) struct Connection {
    stream: UnixStream,
    reader: FrameReader,
}

impl Connection {
    /// The connection and who is at its other end; `None` when the kernel cannot say.
    pub fn accept(stream: UnixStream) -> Option<(Connection, Peer)> {
        let cred = stream.peer_cred().ok()?;
        let peer = Peer {
            uid: cred.uid(),
            pid: cred.pid(),
            process: os::process::peer_process(stream.as_fd()),
        };
        let conn = Connection {
            stream,
            reader: FrameReader::new(),
        };
        Some((conn, peer))
    }

    /// The first frame, and the descriptors that came with it, within `FIRST_BYTE` and
    /// `FIRST_FRAME` (a connection that trickles, or a sudo stopped half-way, must not hold a
    /// slot). `None` when there is none: the client was told why, or went away.
    pub async fn first_frame(&mut self, fds: &mut Vec<OwnedFd>) -> Option<ClientFrame> {
        let started = tokio::time::timeout(FIRST_BYTE, self.stream.readable()).await;
        if !matches!(started, Ok(Ok(()))) {
            self.refuse(Refusal::Timeout, "no request arrived in time")
                .await;
            return None;
        }
        match tokio::time::timeout(FIRST_FRAME, self.read(fds)).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                self.refuse(Refusal::BadFrame, e.to_string()).await;
                None
            }
            Err(_) => {
                self.refuse(Refusal::Timeout, "no request arrived in time")
                    .await;
                None
            }
        }
    }

    /// The next frame and any descriptors that came with it; `None` at a clean end of stream.
    pub async fn read(
        &mut self,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Option<ClientFrame>, FrameError> {
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                return Ok(Some(frame));
            }
            let mut buf = [0u8; 8192];
            let n = loop {
                if self.stream.readable().await.is_err() {
                    return Err(FrameError::Truncated);
                }
                match self.stream.try_io(Interest::READABLE, || {
                    os::fds::recv_with_fds(self.stream.as_fd(), &mut buf, fds)
                }) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(FrameError::Malformed(e.to_string())),
                }
            };
            if n == 0 {
                self.reader.finish()?;
                return Ok(None);
            }
            self.reader.push(&buf[..n]);
        }
    }

    pub async fn send(&mut self, frame: &AgentFrame) {
        // A caller that went away cannot be told anything; the connection ends at its next read.
        let _ = self
            .stream
            .write_all(&elevate_proto::ipc::encode(frame))
            .await;
    }

    /// Sends a frame with a descriptor attached.
    pub async fn send_with_fd(&mut self, frame: &AgentFrame, fd: &OwnedFd) -> std::io::Result<()> {
        let bytes = elevate_proto::ipc::encode(frame);
        loop {
            self.stream.writable().await?;
            match self.stream.try_io(Interest::WRITABLE, || {
                os::fds::send_with_fd(self.stream.as_fd(), &bytes, fd.as_fd())
            }) {
                Ok(n) => return self.stream.write_all(&bytes[n..]).await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The reason as given under core's rule (blank is none); `None` when it is refused (the
    /// client was told why).
    pub async fn reason(&mut self, typed: Option<String>) -> Option<Option<String>> {
        match Reason::optional(typed) {
            Ok(reason) => Some(reason.map(Reason::into_string)),
            Err(e) => {
                self.refuse(Refusal::ReasonTooLong, e.to_string()).await;
                None
            }
        }
    }

    /// Refuses a frame of another protocol version (`who` sent it); true when it did.
    pub async fn other_version(&mut self, version: u32, who: &str) -> bool {
        if version == VERSION {
            return false;
        }
        self.refuse(
            Refusal::Version,
            format!("this agent speaks protocol {VERSION}, {who} {version}; update {who}"),
        )
        .await;
        true
    }

    /// Nothing runs: tells the client why.
    pub async fn refuse(&mut self, code: Refusal, message: impl Into<String>) {
        self.send(&AgentFrame::Error {
            code,
            message: message.into(),
        })
        .await;
    }
}
