//! Runs exactly the hashed file: the binary was opened once by the agent, its bytes hashed from
//! that descriptor, and the child executes that descriptor with `execveat(fd, "", …,
//! AT_EMPTY_PATH)`, so a path swapped after the decision changes nothing.
//!
//! The child starts a new session (`setsid`), gets the requester's login uid (so Linux audit
//! attributes the action), default signal dispositions and an empty signal mask, the caller's
//! stdio and nothing else of the caller: every other descriptor, the agent's own and any it
//! inherited, closes at the exec (`close_range` with `CLOSE_RANGE_CLOEXEC`).
//!
//! The child is made with `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, as glibc's `posix_spawn`
//! does: no copy of the agent's page tables, the agent's thread waits until the exec, and the
//! pidfd comes from the clone itself (no window for pid reuse). A plain `fork` of the
//! multi-threaded agent was the largest single cost of a pre-approved command.
//!
//! Must never: allocate, take a lock or touch Rust state in the child. `child_main` runs on
//! borrowed memory shared with the suspended agent thread and makes only system calls on values
//! prepared before the clone; it reports a failure through an atomic in that shared memory.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Everything the child needs, prepared by the caller.
#[derive(Debug)]
pub struct ExactCommand<'a> {
    /// The opened, checked and hashed binary.
    pub binary: &'a OwnedFd,
    /// argv, argv[0] included.
    pub argv: &'a [String],
    /// The complete environment.
    pub env: &'a [(String, String)],
    /// The working directory, held open; `None` is `/`.
    pub cwd: Option<&'a OwnedFd>,
    /// stdin, stdout, stderr.
    pub stdio: [OwnedFd; 3],
    /// Written to `/proc/self/loginuid` in the child.
    pub loginuid: u32,
    /// A `#!` script: the interpreter opens `/dev/fd/N`, so the descriptor must survive exec.
    pub script: bool,
    /// stdin is a fresh pty slave that becomes the command's controlling terminal.
    pub controlling_tty: bool,
}

/// A started child: not yet reaped, so its pid is still its own.
#[derive(Debug)]
pub struct Spawned {
    pub pid: u32,
    /// From `CLONE_PIDFD`: signals and the exit go through this, never through the bare pid.
    pub pidfd: OwnedFd,
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

/// Addresses of the strings, NUL-terminated.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The steps of the child, named in the error the agent reports.
const STEPS: [&str; 9] = [
    "",
    "setsid",
    "moving the standard descriptors",
    "taking the terminal",
    "changing directory",
    "keeping the script's descriptor",
    "execveat",
    "resetting signals",
    "closing every other descriptor",
];

/// Read by the child only; `failed_step`/`errno` written by the child, read by the parent after
/// the child has exec'd or exited (vfork semantics: the parent thread is suspended until then).
struct ChildArgs {
    binary: RawFd,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdio: [RawFd; 3],
    cwd: RawFd,
    loginuid: *const u8,
    loginuid_len: usize,
    script: bool,
    controlling_tty: bool,
    /// Highest signal number, read in the parent (glibc computes it).
    sigrtmax: c_int,
    failed_step: AtomicI32,
    errno: AtomicI32,
}

/// Starts the binary descriptor in a new child. Errors of the child's set-up or of the exec
/// itself come back as `Err`, with the child already reaped.
pub fn spawn(cmd: ExactCommand<'_>) -> io::Result<Spawned> {
    let argv = c_strings(cmd.argv.iter().cloned())?;
    let envp = c_strings(cmd.env.iter().map(|(k, v)| format!("{k}={v}")))?;
    let argv_ptrs = pointers(&argv);
    let envp_ptrs = pointers(&envp);
    let loginuid = cmd.loginuid.to_string().into_bytes();
    let args = ChildArgs {
        binary: cmd.binary.as_raw_fd(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        stdio: cmd.stdio.each_ref().map(|fd| fd.as_raw_fd()),
        cwd: cmd.cwd.map_or(-1, |fd| fd.as_raw_fd()),
        loginuid: loginuid.as_ptr(),
        loginuid_len: loginuid.len(),
        script: cmd.script,
        controlling_tty: cmd.controlling_tty,
        sigrtmax: libc::SIGRTMAX(),
        failed_step: AtomicI32::new(0),
        errno: AtomicI32::new(0),
    };
    // The child's stack: it only calls a handful of libc system-call wrappers.
    let mut stack = vec![0u8; 64 * 1024];
    let mut pidfd: c_int = -1;
    // SAFETY: `sigfillset`/`pthread_sigmask` take valid pointers to local sigsets. `clone` gets
    // a function that only makes system calls, the 16-byte-aligned top of a stack that outlives
    // the child's use of it (with CLONE_VFORK the call returns only after the child exec'd or
    // exited, and `stack` is dropped after that), a pointer to `args` (alive until the end of
    // this function, and only read by the child apart from its two atomics) and a pointer to
    // `pidfd` for CLONE_PIDFD. Every signal is blocked around the clone so that no handler of
    // the agent runs in the child before `child_main` has reset the dispositions.
    let (pid, clone_errno) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            std::ptr::addr_of!(args) as *mut c_void,
            &mut pidfd as *mut c_int,
        );
        let clone_errno = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        (pid, clone_errno)
    };
    drop(stack);
    if pid < 0 {
        return Err(clone_errno);
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let step = args.failed_step.load(Ordering::Acquire);
    if step != 0 {
        let errno = args.errno.load(Ordering::Acquire);
        // The child has exited without running anything: reap it so no zombie stays.
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(std::os::fd::AsFd::as_fd(&pidfd)),
            rustix::process::WaitIdOptions::EXITED,
        );
        let what = STEPS.get(step as usize).copied().unwrap_or("set-up");
        let e = io::Error::from_raw_os_error(errno);
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    drop((argv, envp, argv_ptrs, envp_ptrs, loginuid));
    Ok(Spawned {
        pid: pid as u32,
        pidfd,
    })
}

/// The child, from the clone to the exec. Only system calls; see the module's rules.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` points to the `ChildArgs` of `spawn`, alive and unchanged while the parent
    // thread is suspended by CLONE_VFORK.
    let a = unsafe { &*(arg as *const ChildArgs) };
    let fail = |step: i32| -> c_int {
        a.errno.store(
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
            Ordering::Release,
        );
        a.failed_step.store(step, Ordering::Release);
        // SAFETY: `_exit` ends the child without running the parent's exit handlers or
        // touching its shared memory.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: each call below is an async-signal-safe libc system-call wrapper on plain values,
    // descriptors or pointers prepared by `spawn` (NUL-terminated strings, arrays ending in a
    // null pointer, a byte buffer of the given length); none allocates or locks.
    unsafe {
        // Default dispositions: the agent's handlers must not run in the command, and ignored
        // signals (SIGPIPE) must not stay ignored across the exec.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=a.sigrtmax {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                // glibc refuses its two internal signals; they cannot reach this child anyway.
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if libc::setsid() < 0 {
            return fail(1);
        }
        // Move the three sources above 2 first, so that none is overwritten before it is
        // copied; dup2 then leaves 0, 1 and 2 open across the exec.
        let mut high = [-1; 3];
        for (i, fd) in a.stdio.iter().enumerate() {
            high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3);
            if high[i] < 0 {
                return fail(2);
            }
        }
        for (i, fd) in high.iter().enumerate() {
            if libc::dup2(*fd, i as c_int) < 0 {
                return fail(2);
            }
        }
        // Every descriptor above stdio closes at the exec, whatever the agent inherited from
        // whoever started it (CLOSE_RANGE_CLOEXEC keeps the binary's descriptor usable for
        // execveat; a script's is kept below). Without close_range, nothing runs.
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) < 0
        {
            return fail(8);
        }
        if a.controlling_tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            return fail(3);
        }
        let moved = if a.cwd >= 0 {
            libc::fchdir(a.cwd)
        } else {
            libc::chdir(c"/".as_ptr())
        };
        if moved < 0 {
            return fail(4);
        }
        let login = libc::open(
            c"/proc/self/loginuid".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if login >= 0 {
            // Best effort: kernels without audit support have no loginuid to set.
            libc::write(login, a.loginuid.cast(), a.loginuid_len);
            libc::close(login);
        }
        if a.script && libc::fcntl(a.binary, libc::F_SETFD, 0) < 0 {
            return fail(5);
        }
        let empty: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) < 0 {
            return fail(7);
        }
        libc::syscall(
            libc::SYS_execveat,
            a.binary,
            c"".as_ptr(),
            a.argv,
            a.envp,
            libc::AT_EMPTY_PATH,
        );
        fail(6)
    }
}

/// Makes sure descriptors 0, 1 and 2 are open (on `/dev/null` if the agent was started without
/// them), so that no descriptor the agent opens later is taken for a standard stream.
pub fn ensure_standard_fds() -> io::Result<()> {
    loop {
        let fd = rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDWR,
            rustix::fs::Mode::empty(),
        )?;
        if fd.as_raw_fd() > 2 {
            return Ok(());
        }
        // Deliberately kept open as a standard descriptor.
        std::mem::forget(fd);
    }
}
