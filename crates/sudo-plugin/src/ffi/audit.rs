//! The audit plugin's entry points (`elevate_audit`): how a command sudo ran ended, and what
//! sudo refused or failed on by itself, reported to the agent.
//!
//! Must never: let a panic cross into sudo, or block sudo for long on an agent that does not
//! answer.

#![allow(unsafe_code)]

use super::*;

/// What the audit plugin's `open` learnt.
pub(super) struct AuditState {
    pub(super) printf: Option<PrintfFn>,
    socket: PathBuf,
    /// What the user typed after `sudo`, for refusals (sudo gives them no argv).
    submit_argv: Vec<String>,
}

pub(super) static AUDIT: Mutex<Option<AuditState>> = Mutex::new(None);

/// Both plugins speak plugin API 1.x.
pub(super) fn supported(version: c_uint) -> Result<(), String> {
    if version >> 16 != SUDO_API_VERSION_MAJOR {
        return Err(format!(
            "elevate: sudo's plugin API {}.{} is not supported",
            version >> 16,
            version & 0xffff
        ));
    }
    Ok(())
}

/// What an `open` returns to sudo: 1, or -1 with the reason printed and in `errstr` (never 0,
/// which would make sudo drop the plugin and carry on without it).
///
/// # Safety
/// `errstr` is null or valid for one pointer write.
pub(super) unsafe fn open_answer(
    opened: std::thread::Result<Result<(), String>>,
    printf: Option<PrintfFn>,
    errstr: *mut *const c_char,
) -> c_int {
    match opened {
        Ok(Ok(())) => 1,
        Ok(Err(message)) => {
            print(printf, SUDO_CONV_ERROR_MSG, &message);
            // SAFETY: the caller's contract on `errstr`.
            unsafe { error(errstr, &message) }
        }
        // SAFETY: as above.
        Err(_) => unsafe { error(errstr, "elevate: internal error in the sudo plugin") },
    }
}

pub(super) unsafe extern "C" fn audit_open(
    version: c_uint,
    _conversation: Option<ConvFn>,
    sudo_printf: Option<PrintfFn>,
    _settings: List,
    _user_info: List,
    submit_optind: c_int,
    submit_argv: List,
    _submit_envp: List,
    plugin_options: List,
    errstr: *mut *const c_char,
) -> c_int {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        supported(version)?;
        // SAFETY: sudo passes NULL-terminated arrays of C strings (or NULL) for these lists.
        let (argv, options) = unsafe { (strings(submit_argv), strings(plugin_options)) };
        let skip = usize::try_from(submit_optind).unwrap_or(0).min(argv.len());
        *AUDIT.lock().unwrap_or_else(|p| p.into_inner()) = Some(AuditState {
            printf: sudo_printf,
            socket: crate::lookup(&options, "socket")
                .unwrap_or(DEFAULT_SOCKET)
                .into(),
            submit_argv: argv[skip..].to_vec(),
        });
        Ok(())
    }));
    // SAFETY: `errstr` comes from sudo, valid for a write or null.
    unsafe { open_answer(opened, sudo_printf, errstr) }
}

/// The end of the command sudo ran: reported under the request the approval plugin was allowed.
pub(super) unsafe extern "C" fn audit_close(status_type: c_int, status: c_int) {
    let _ = catch_unwind(|| {
        let Some(request_id) = crate::take_allowed() else {
            return;
        };
        let end = match status_type {
            SUDO_PLUGIN_WAIT_STATUS => crate::End::from_wait_status(status),
            SUDO_PLUGIN_EXEC_ERROR => crate::End::Failed(format!(
                "sudo could not run it: {}",
                std::io::Error::from_raw_os_error(status)
            )),
            SUDO_PLUGIN_SUDO_ERROR => crate::End::Failed(format!(
                "sudo failed while it ran: {}",
                std::io::Error::from_raw_os_error(status)
            )),
            _ => return,
        };
        let state = AUDIT.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = state.as_ref() else {
            return;
        };
        if let Err(e) = crate::report_end(&state.socket, request_id, end) {
            print(
                state.printf,
                SUDO_CONV_ERROR_MSG,
                &format!("elevate: the command's end was not recorded: {e}"),
            );
        }
    });
}

pub(super) unsafe extern "C" fn audit_accept(
    _plugin_name: *const c_char,
    _plugin_type: c_uint,
    _command_info: List,
    _run_argv: List,
    _run_envp: List,
    _errstr: *mut *const c_char,
) -> c_int {
    // The approval plugin's question already recorded the acceptance with the agent.
    1
}

/// A refusal or failure of sudo's own (sudoers, authentication), reported to the agent.
/// Refusals by our approval plugin are the agent's own decisions, already recorded.
///
/// # Safety
/// Arguments as sudo passes them: valid C strings or null, a NULL-terminated list or null.
pub(super) unsafe fn audit_refusal(
    plugin_type: c_uint,
    audit_msg: *const c_char,
    command_info: List,
    failure: bool,
) -> c_int {
    if plugin_type == SUDO_APPROVAL_PLUGIN {
        return 1;
    }
    let message = if audit_msg.is_null() {
        String::from("(no message)")
    } else {
        // SAFETY: a non-null audit message is a valid C string (the caller's contract).
        unsafe { CStr::from_ptr(audit_msg) }
            .to_string_lossy()
            .into_owned()
    };
    // SAFETY: as above for the list.
    let info = unsafe { strings(command_info) };
    let reported = catch_unwind(AssertUnwindSafe(|| {
        let state = AUDIT.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = state.as_ref() else {
            return;
        };
        let command = crate::lookup(&info, "command").map(str::to_owned);
        // Best effort: sudo refuses either way; an unrecorded refusal is lost, not allowed.
        let _ = crate::report_rejection(
            &state.socket,
            command,
            state.submit_argv.clone(),
            message,
            failure,
        );
    }));
    let _ = reported;
    1
}

pub(super) unsafe extern "C" fn audit_reject(
    _plugin_name: *const c_char,
    plugin_type: c_uint,
    audit_msg: *const c_char,
    command_info: List,
    _errstr: *mut *const c_char,
) -> c_int {
    // SAFETY: the arguments come from sudo as documented for `reject`.
    unsafe { audit_refusal(plugin_type, audit_msg, command_info, false) }
}

pub(super) unsafe extern "C" fn audit_error(
    _plugin_name: *const c_char,
    plugin_type: c_uint,
    audit_msg: *const c_char,
    command_info: List,
    _errstr: *mut *const c_char,
) -> c_int {
    // SAFETY: the arguments come from sudo as documented for `error`.
    unsafe { audit_refusal(plugin_type, audit_msg, command_info, true) }
}

pub(super) unsafe extern "C" fn audit_show_version(_verbose: c_int) -> c_int {
    print(
        any_printf(),
        SUDO_CONV_INFO_MSG,
        concat!("Elevate audit plugin version ", env!("CARGO_PKG_VERSION")),
    );
    1
}
