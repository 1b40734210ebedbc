//! Risky programs: those that hand whoever runs them elevated a way to run anything else — a
//! shell, an editor or pager with a shell escape, an interpreter, a program that runs other
//! programs — and programs in places their users can write to.
//!
//! Must never: call a program safe because its path looks unusual (only names and places are
//! judged here; a program not named is simply not flagged).

/// Why a program is risky to run elevated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Risk {
    Shell,
    ShellEscape,
    Interpreter,
    RunsOtherPrograms,
    UserWritablePlace,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Shell => "shell",
            Risk::ShellEscape => "editor or pager with a shell escape",
            Risk::Interpreter => "interpreter",
            Risk::RunsOtherPrograms => "runs other programs",
            Risk::UserWritablePlace => "in a place users can write to",
        }
    }
}

const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "fish",
    "csh",
    "tcsh",
    "ash",
    "busybox",
    "su",
    "cmd.exe",
    "powershell.exe",
    "pwsh.exe",
    "pwsh",
];
const SHELL_ESCAPES: &[&str] = &[
    "vi",
    "vim",
    "nvim",
    "view",
    "vimdiff",
    "rvim",
    "ex",
    "ed",
    "emacs",
    "nano",
    "pico",
    "joe",
    "mcedit",
    "less",
    "more",
    "most",
    "pg",
    "man",
    "mc",
    "notepad.exe",
];
const INTERPRETERS: &[&str] = &[
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "tclsh",
    "wish",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "irb",
    "jshell",
    "wscript.exe",
    "cscript.exe",
    "mshta.exe",
];
const RUNNERS: &[&str] = &[
    "env",
    "find",
    "xargs",
    "nice",
    "nohup",
    "timeout",
    "strace",
    "ltrace",
    "gdb",
    "script",
    "tmux",
    "screen",
    "sudo",
    "runuser",
    "setsid",
    "stdbuf",
    "flock",
    "watch",
    "chroot",
    "unshare",
    "nsenter",
    "rundll32.exe",
    "regsvr32.exe",
];
const WRITABLE: &[&str] = &["/home/", "/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/"];
const WINDOWS_WRITABLE: &[&str] = &[
    "c:\\users\\",
    "\\appdata\\",
    "\\temp\\",
    "c:\\programdata\\",
];

/// Why `program` is risky to run elevated, if it is.
pub fn risk_of(program: &str) -> Option<Risk> {
    let lower = program.to_ascii_lowercase();
    let name = lower.rsplit(['/', '\\']).next().unwrap_or(&lower);
    if SHELLS.contains(&name) {
        return Some(Risk::Shell);
    }
    if SHELL_ESCAPES.contains(&name) {
        return Some(Risk::ShellEscape);
    }
    let versioned = |base: &str| {
        name.strip_prefix(base)
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    if INTERPRETERS.contains(&name)
        || ["python", "perl", "ruby", "php", "lua"]
            .iter()
            .any(|b| versioned(b))
    {
        return Some(Risk::Interpreter);
    }
    if RUNNERS.contains(&name) {
        return Some(Risk::RunsOtherPrograms);
    }
    let relative = !program.starts_with('/') && !program.contains(":\\");
    if relative
        || WRITABLE.iter().any(|w| program.starts_with(w))
        || WINDOWS_WRITABLE.iter().any(|w| lower.contains(w))
    {
        return Some(Risk::UserWritablePlace);
    }
    None
}
