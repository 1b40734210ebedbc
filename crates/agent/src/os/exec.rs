//! Runs exactly the hashed file: the binary was opened once by the agent, its bytes hashed from
//! that descriptor, and the child executes that descriptor with `execveat(fd, "", …,
//! AT_EMPTY_PATH)`, so a path swapped after the decision changes nothing.
//!
//! The child starts a new session (`setsid`), gets the requester's login uid (so Linux audit
//! attributes the action), the caller's stdio and nothing else of the caller.
//! Must never: allocate or take a lock between `fork` and `exec` (the closure below only makes
//! system calls on memory prepared before the fork).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Everything the child needs, prepared by the caller.
#[derive(Debug)]
pub struct ExactCommand<'a> {
    /// The opened, checked and hashed binary.
    pub binary: &'a OwnedFd,
    /// argv, argv[0] included.
    pub argv: &'a [String],
    /// The complete environment.
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    /// stdin, stdout, stderr.
    pub stdio: [OwnedFd; 3],
    /// Written to `/proc/self/loginuid` in the child.
    pub loginuid: u32,
    /// A `#!` script: the interpreter opens `/dev/fd/N`, so the descriptor must survive exec.
    pub script: bool,
    /// stdin is a fresh pty slave that becomes the command's controlling terminal.
    pub controlling_tty: bool,
}

fn c_strings(items: impl Iterator<Item = String>) -> io::Result<Vec<CString>> {
    items
        .map(|s| {
            CString::new(s).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an argument or variable holds a NUL byte",
                )
            })
        })
        .collect()
}

/// Addresses of the strings, NUL-terminated, as plain integers so the closure stays `Send`.
fn pointers(strings: &[CString]) -> Vec<usize> {
    strings
        .iter()
        .map(|c| c.as_ptr() as usize)
        .chain(std::iter::once(0))
        .collect()
}

/// Forks and executes the binary descriptor. Errors of the exec itself come back as `Err`.
pub fn spawn(cmd: ExactCommand<'_>) -> io::Result<Child> {
    let argv = c_strings(cmd.argv.iter().cloned())?;
    let envp = c_strings(cmd.env.iter().map(|(k, v)| format!("{k}={v}")))?;
    let argv_ptrs = pointers(&argv);
    let envp_ptrs = pointers(&envp);
    let loginuid = cmd.loginuid.to_string().into_bytes();
    let fd = cmd.binary.as_raw_fd();
    let script = cmd.script;
    let controlling_tty = cmd.controlling_tty;
    let [stdin, stdout, stderr] = cmd.stdio;
    // The program name is never used: the closure replaces the process image before std would.
    let mut command = Command::new("/nonexistent/elevate-execveat");
    command
        .env_clear()
        .current_dir(cmd.cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // SAFETY: the closure runs in the child between fork and exec. It makes only
    // async-signal-safe system calls (setsid, ioctl, open, write, close, fcntl, execveat), reads only
    // memory prepared before the fork (`loginuid`, and the argv/envp arrays whose strings
    // `argv`/`envp` keep alive until `spawn` returns), and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if controlling_tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            let login = libc::open(
                c"/proc/self/loginuid".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if login >= 0 {
                // Best effort: kernels without audit support have no loginuid to set.
                libc::write(login, loginuid.as_ptr().cast(), loginuid.len());
                libc::close(login);
            }
            if script && libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::syscall(
                libc::SYS_execveat,
                fd,
                c"".as_ptr(),
                argv_ptrs.as_ptr(),
                envp_ptrs.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            Err(io::Error::last_os_error())
        });
    }
    let child = command.spawn();
    drop((argv, envp));
    child
}
