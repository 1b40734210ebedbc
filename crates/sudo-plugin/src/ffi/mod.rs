//! The C face of the plugin: sudo_plugin.h's `approval_plugin` and `audit_plugin` structs
//! (plugin API 1.21), exported as `elevate_approval` and `elevate_audit` and named in
//! `/etc/sudo.conf`:
//!
//! ```text
//! Plugin elevate_audit /usr/libexec/elevate/libelevate_sudo.so socket=/run/elevate/agent.sock
//! Plugin elevate_approval /usr/libexec/elevate/libelevate_sudo.so socket=/run/elevate/agent.sock
//! ```
//!
//! The approval plugin asks the agent before sudo runs anything; the audit plugin reports how
//! the command ended, and what sudo refused on its own (sudoers, authentication).
//!
//! Must never: return 0 from `open` (sudo then drops the plugin and carries on without it: a
//! silent fail-open), let a panic cross into sudo (every entry point catches it and answers -1),
//! or export the struct as a plain `static` (sudo may write to plugin structs it loads; they must
//! be writable memory).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::{Ask, Conversation, Verdict, DEFAULT_SOCKET};

mod audit;
use audit::*;

const SUDO_API_VERSION_MAJOR: c_uint = 1;
const SUDO_API_VERSION: c_uint = (SUDO_API_VERSION_MAJOR << 16) | 21;
const SUDO_APPROVAL_PLUGIN: c_uint = 4;
const SUDO_AUDIT_PLUGIN: c_uint = 3;
const SUDO_PLUGIN_WAIT_STATUS: c_int = 1;
const SUDO_PLUGIN_EXEC_ERROR: c_int = 2;
const SUDO_PLUGIN_SUDO_ERROR: c_int = 3;
/// `SUDO_CONV_PROMPT_ECHO_OFF`: asked as sudo asks for a password (terminal, `-S`, askpass).
const SUDO_CONV_PROMPT_ECHO_OFF: c_int = 0x0001;
const SUDO_CONV_PROMPT_ECHO_ON: c_int = 0x0002;
const SUDO_CONV_ERROR_MSG: c_int = 0x0003;
const SUDO_CONV_INFO_MSG: c_int = 0x0004;
const SUDO_CONV_PREFER_TTY: c_int = 0x2000;

#[repr(C)]
struct ConvMessage {
    msg_type: c_int,
    timeout: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct ConvReply {
    reply: *mut c_char,
}

type ConvFn = unsafe extern "C" fn(c_int, *const ConvMessage, *mut ConvReply, *mut c_void) -> c_int;
type PrintfFn = unsafe extern "C" fn(c_int, *const c_char, ...) -> c_int;
type List = *const *const c_char;
type OpenFn = unsafe extern "C" fn(
    c_uint,
    Option<ConvFn>,
    Option<PrintfFn>,
    List,
    List,
    c_int,
    List,
    List,
    List,
    *mut *const c_char,
) -> c_int;
type CheckFn = unsafe extern "C" fn(List, List, List, *mut *const c_char) -> c_int;

/// `struct approval_plugin` from sudo_plugin.h.
#[repr(C)]
#[derive(Debug)]
pub struct ApprovalPlugin {
    kind: c_uint,
    version: c_uint,
    open: Option<OpenFn>,
    close: Option<unsafe extern "C" fn()>,
    check: Option<CheckFn>,
    show_version: Option<unsafe extern "C" fn(c_int) -> c_int>,
}

/// The approval plugin sudo loads by this symbol name.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut elevate_approval: ApprovalPlugin = ApprovalPlugin {
    kind: SUDO_APPROVAL_PLUGIN,
    version: SUDO_API_VERSION,
    open: Some(approval_open),
    close: Some(approval_close),
    check: Some(approval_check),
    show_version: Some(approval_show_version),
};

type AuditEventFn =
    unsafe extern "C" fn(*const c_char, c_uint, *const c_char, List, *mut *const c_char) -> c_int;

/// `struct audit_plugin` from sudo_plugin.h.
#[repr(C)]
#[derive(Debug)]
pub struct AuditPlugin {
    kind: c_uint,
    version: c_uint,
    open: Option<OpenFn>,
    close: Option<unsafe extern "C" fn(c_int, c_int)>,
    accept: Option<
        unsafe extern "C" fn(*const c_char, c_uint, List, List, List, *mut *const c_char) -> c_int,
    >,
    reject: Option<AuditEventFn>,
    error: Option<AuditEventFn>,
    show_version: Option<unsafe extern "C" fn(c_int) -> c_int>,
    register_hooks: Option<unsafe extern "C" fn(c_int, *mut c_void)>,
    deregister_hooks: Option<unsafe extern "C" fn(c_int, *mut c_void)>,
    /// Filled in by sudo when it loads the plugin (so this struct must be writable memory).
    event_alloc: Option<unsafe extern "C" fn() -> *mut c_void>,
}

/// The audit plugin sudo loads by this symbol name.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut elevate_audit: AuditPlugin = AuditPlugin {
    kind: SUDO_AUDIT_PLUGIN,
    version: SUDO_API_VERSION,
    open: Some(audit_open),
    close: Some(audit_close),
    accept: Some(audit_accept),
    reject: Some(audit_reject),
    error: Some(audit_error),
    show_version: Some(audit_show_version),
    register_hooks: None,
    deregister_hooks: None,
    event_alloc: None,
};

/// What `open` learnt, for `check`.
struct State {
    conv: Option<ConvFn>,
    printf: Option<PrintfFn>,
    user_info: Vec<String>,
    settings: Vec<String>,
    socket: PathBuf,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// The last error message handed to sudo through `errstr` (kept alive until the next one).
static ERRSTR: Mutex<Option<CString>> = Mutex::new(None);

/// A NULL-terminated array of C strings, copied.
///
/// # Safety
/// `list` is null or points to a NULL-terminated array of valid C strings.
unsafe fn strings(list: List) -> Vec<String> {
    let mut out = Vec::new();
    if list.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: the caller guarantees a NULL-terminated array; we stop at the NULL.
        let item = unsafe { *list.add(i) };
        if item.is_null() {
            return out;
        }
        // SAFETY: every non-null entry is a valid NUL-terminated C string.
        out.push(
            unsafe { CStr::from_ptr(item) }
                .to_string_lossy()
                .into_owned(),
        );
        i += 1;
    }
}

/// Stores `message` for sudo's `errstr` (if sudo gave one) and returns -1.
///
/// # Safety
/// `errstr` is null or valid for one pointer write.
unsafe fn error(errstr: *mut *const c_char, message: &str) -> c_int {
    if !errstr.is_null() {
        let text = CString::new(message.replace('\0', "")).unwrap_or_default();
        let mut kept = ERRSTR.lock().unwrap_or_else(|p| p.into_inner());
        let ptr = kept.insert(text).as_ptr();
        // SAFETY: `errstr` is valid for a write (checked non-null; sudo passes its own slot),
        // and the string stays alive in ERRSTR until the next error replaces it.
        unsafe { *errstr = ptr };
    }
    -1
}

unsafe extern "C" fn approval_open(
    version: c_uint,
    conversation: Option<ConvFn>,
    sudo_printf: Option<PrintfFn>,
    settings: List,
    user_info: List,
    _submit_optind: c_int,
    _submit_argv: List,
    _submit_envp: List,
    plugin_options: List,
    errstr: *mut *const c_char,
) -> c_int {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        supported(version)?;
        // SAFETY: sudo passes NULL-terminated arrays of C strings (or NULL) for these lists.
        let (settings, user_info, options) = unsafe {
            (
                strings(settings),
                strings(user_info),
                strings(plugin_options),
            )
        };
        let socket = crate::lookup(&options, "socket")
            .unwrap_or(DEFAULT_SOCKET)
            .into();
        *STATE.lock().unwrap_or_else(|p| p.into_inner()) = Some(State {
            conv: conversation,
            printf: sudo_printf,
            user_info,
            settings,
            socket,
        });
        Ok(())
    }));
    // SAFETY: `errstr` comes from sudo, valid for a write or null.
    unsafe { open_answer(opened, sudo_printf, errstr) }
}

unsafe extern "C" fn approval_close() {
    let _ = catch_unwind(|| {
        *STATE.lock().unwrap_or_else(|p| p.into_inner()) = None;
    });
}

unsafe extern "C" fn approval_check(
    command_info: List,
    run_argv: List,
    run_envp: List,
    errstr: *mut *const c_char,
) -> c_int {
    let checked = catch_unwind(AssertUnwindSafe(|| {
        let state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = state.as_ref() else {
            return (
                None,
                Verdict::Error("elevate: the plugin was not opened".into()),
            );
        };
        // SAFETY: sudo passes NULL-terminated arrays of C strings for these lists.
        let (info, argv, envp) =
            unsafe { (strings(command_info), strings(run_argv), strings(run_envp)) };
        let mut conv = SudoConversation {
            conv: state.conv,
            printf: state.printf,
        };
        let verdict = match Ask::from_sudo(&info, &argv, &envp, &state.user_info, &state.settings) {
            Ok(ask) => {
                let withdraw = WithdrawOnSignal::install();
                let verdict = crate::check(&state.socket, &ask, &mut conv);
                // Ctrl-C after the last wait (while the approval was being read): still withdrawn.
                let late = crate::WITHDRAW.load(std::sync::atomic::Ordering::SeqCst);
                drop(withdraw);
                if late && verdict == Verdict::Allow {
                    conv.error("elevate: request withdrawn; nothing ran");
                    Verdict::Deny
                } else {
                    verdict
                }
            }
            Err(e) => Verdict::Error(format!("elevate: {e}")),
        };
        (state.printf, verdict)
    }));
    match checked {
        Ok((printf, Verdict::Error(message))) => {
            print(printf, SUDO_CONV_ERROR_MSG, &message);
            // SAFETY: `errstr` comes from sudo, valid for a write or null.
            unsafe { error(errstr, &message) }
        }
        Ok((_, verdict)) => verdict.code(),
        // SAFETY: as above.
        Err(_) => unsafe { error(errstr, "elevate: internal error in the sudo plugin") },
    }
}

/// sudo's printf as either plugin's `open` received it.
fn any_printf() -> Option<PrintfFn> {
    let approval = STATE
        .lock()
        .ok()
        .and_then(|s| s.as_ref().and_then(|s| s.printf));
    approval.or_else(|| {
        AUDIT
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(|s| s.printf))
    })
}

unsafe extern "C" fn approval_show_version(_verbose: c_int) -> c_int {
    print(
        any_printf(),
        SUDO_CONV_INFO_MSG,
        concat!(
            "Elevate approval plugin version ",
            env!("CARGO_PKG_VERSION")
        ),
    );
    1
}

/// Signals that withdraw a waiting request.
const WITHDRAW_SIGNALS: [c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn on_withdraw_signal(_signo: c_int) {
    crate::WITHDRAW.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// While the agent is asked: Ctrl-C and friends interrupt the wait (no SA_RESTART, so the
/// blocked read returns) and withdraw the request. sudo's own handlers (which only note the
/// signal and restart the read) are put back when this is dropped.
struct WithdrawOnSignal {
    previous: Vec<(c_int, libc::sigaction)>,
}

impl WithdrawOnSignal {
    fn install() -> WithdrawOnSignal {
        crate::WITHDRAW.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut previous = Vec::new();
        for sig in WITHDRAW_SIGNALS {
            // SAFETY: sigaction with a zeroed struct (empty mask, no flags) naming a handler
            // that only stores to an atomic, and valid out-pointers for the old action.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                // An ignored signal (`nohup sudo …`) stays ignored, as sudo itself leaves it.
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_withdraw_signal as *const () as usize;
                if libc::sigaction(sig, &action, &mut old) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        WithdrawOnSignal { previous }
    }
}

impl Drop for WithdrawOnSignal {
    fn drop(&mut self) {
        crate::WITHDRAW.store(false, std::sync::atomic::Ordering::SeqCst);
        for (sig, old) in &self.previous {
            // SAFETY: restores the action sigaction handed back, unchanged.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// One line through sudo's printf.
fn print(printf: Option<PrintfFn>, kind: c_int, message: &str) {
    let Some(printf) = printf else {
        return;
    };
    let text = CString::new(message.replace('\0', "")).unwrap_or_default();
    // SAFETY: sudo's printf takes a format and its arguments; "%s\n" with one valid C string.
    unsafe {
        printf(kind, c"%s\n".as_ptr(), text.as_ptr());
    }
}

/// sudo's conversation and printf functions as the plugin logic's `Conversation`.
struct SudoConversation {
    conv: Option<ConvFn>,
    printf: Option<PrintfFn>,
}

impl Conversation for SudoConversation {
    fn info(&mut self, message: &str) {
        // Status lines go to stderr (sudo's INFO channel is stdout, which belongs to the
        // command: `sudo cat x > y` must not capture "waiting for approval").
        print(self.printf, SUDO_CONV_ERROR_MSG, message);
    }

    fn error(&mut self, message: &str) {
        print(self.printf, SUDO_CONV_ERROR_MSG, message);
    }

    fn prompt(&mut self, message: &str) -> Option<String> {
        self.ask(message, SUDO_CONV_PROMPT_ECHO_ON | SUDO_CONV_PREFER_TTY)
    }

    /// As sudo asks for a password: the terminal, `sudo -S`'s standard input, or askpass.
    fn prompt_code(&mut self, message: &str) -> Option<String> {
        self.ask(message, SUDO_CONV_PROMPT_ECHO_OFF)
    }
}

impl SudoConversation {
    fn ask(&mut self, message: &str, msg_type: c_int) -> Option<String> {
        let conv = self.conv?;
        let text = CString::new(message.replace('\0', "")).ok()?;
        let msg = ConvMessage {
            msg_type,
            timeout: 0,
            msg: text.as_ptr(),
        };
        let mut reply = ConvReply {
            reply: std::ptr::null_mut(),
        };
        // SAFETY: one message and one reply slot, both valid for the call; no callback.
        let status = unsafe { conv(1, &msg, &mut reply, std::ptr::null_mut()) };
        if status != 0 || reply.reply.is_null() {
            return None;
        }
        // SAFETY: sudo filled `reply` with a malloc'd NUL-terminated string that the plugin owns
        // and must free; it is read once and freed once.
        let answer = unsafe {
            let answer = CStr::from_ptr(reply.reply).to_string_lossy().into_owned();
            libc::free(reply.reply.cast());
            answer
        };
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sudo drops an approval plugin whose `open` returns 0 and carries on without it: `open`
    /// answers 1 or -1, never 0.
    #[test]
    fn open_never_answers_zero() {
        let empty: [*const c_char; 1] = [std::ptr::null()];
        let mut errstr: *const c_char = std::ptr::null();
        let open = |version: c_uint, errstr: &mut *const c_char| {
            // SAFETY: empty NULL-terminated lists, no printf or conversation, and a valid slot
            // for `errstr`, as sudo would pass.
            unsafe {
                approval_open(
                    version,
                    None,
                    None,
                    empty.as_ptr(),
                    empty.as_ptr(),
                    0,
                    empty.as_ptr(),
                    empty.as_ptr(),
                    empty.as_ptr(),
                    errstr,
                )
            }
        };
        assert_eq!(
            open(2 << 16, &mut errstr),
            -1,
            "an unknown major API version"
        );
        assert!(!errstr.is_null());
        // SAFETY: `error` stored a NUL-terminated string kept alive in ERRSTR.
        let said = unsafe { CStr::from_ptr(errstr) }
            .to_string_lossy()
            .into_owned();
        assert!(said.contains("not supported"), "{said}");
        assert_eq!(open(SUDO_API_VERSION, &mut errstr), 1);
    }
}
