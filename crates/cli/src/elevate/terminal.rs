//! Relaying an interactive command's pty: our terminal goes raw, keystrokes go to the pty master
//! and its output comes back, and window-size changes are copied across. The terminal settings
//! are restored however the command ends.
//!
//! Must never: leave the user's terminal in raw mode.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize, OptionalActions, Termios};

/// Raw mode on stdin for as long as it lives.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(stdin.as_fd(), OptionalActions::Flush, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(
            std::io::stdin().as_fd(),
            OptionalActions::Flush,
            &self.saved,
        );
    }
}

/// A running relay.
pub struct Relay {
    _raw: Option<RawMode>,
    output: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying between our terminal and `master`.
    pub fn start(master: OwnedFd) -> std::io::Result<Relay> {
        copy_window_size(&master);
        let raw = RawMode::enter();
        let mut to_master = std::fs::File::from(master.try_clone()?);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut from_master = std::fs::File::from(master.try_clone()?);
        let output = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdout = std::io::stdout();
            // Ends with EIO once the command and everything holding the pty are gone.
            while let Ok(n) = from_master.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
        });
        Ok(Relay { _raw: raw, output })
    }

    /// Waits (briefly) for the last output, then restores the terminal.
    pub fn finish(self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !self.output.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Copies our window size to the pty.
pub fn copy_window_size(master: &OwnedFd) {
    if let Ok(size) = tcgetwinsize(std::io::stdin().as_fd()) {
        let _ = tcsetwinsize(master.as_fd(), size);
    }
}
