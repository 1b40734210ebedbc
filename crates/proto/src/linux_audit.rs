//! Linux audit records as the kernel sends them (to the agent's netlink socket, or as `auditd`
//! writes them to `audit.log`), read and put back together into executions: the
//! record's text (`audit(…): key=value …`), its fields (quoted as written, or hex-encoded by the
//! kernel), and the records of one event (`SYSCALL`, `EXECVE`, `CWD`, … until `EOE`), which may
//! interleave with other CPUs' events and split long arguments.
//!
//! Must never: trust a field's text as anything but what the kernel wrote, or keep more than
//! `MAX_PENDING` events half put together.

/// Record types (`linux/audit.h`).
pub const SYSCALL: u16 = 1300;
pub const CWD: u16 = 1307;
pub const EXECVE: u16 = 1309;
pub const EOE: u16 = 1320;
/// An id the kernel has not set (`auid` of a process outside any login).
pub const UNSET: u32 = u32::MAX;
/// The most events held half put together.
pub const MAX_PENDING: usize = 64;

/// A record type's number from its name in `audit.log` (`type=SYSCALL`).
pub fn kind_named(name: &str) -> Option<u16> {
    Some(match name {
        "SYSCALL" => SYSCALL,
        "CWD" => CWD,
        "EXECVE" => EXECVE,
        "EOE" => EOE,
        _ => return None,
    })
}

/// One audit record: its type, the event it belongs to and the text of its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u16,
    pub serial: u64,
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    pub body: String,
}

/// Reads `audit(1795761518.292:4): arch=…` (a netlink payload, the record type beside it).
pub fn parse_record(kind: u16, payload: &[u8]) -> Option<Record> {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim_end_matches(['\0', '\n']);
    let rest = text.strip_prefix("audit(")?;
    let (stamp, body) = rest.split_once("):")?;
    let (time, serial) = stamp.split_once(':')?;
    let (secs, millis) = time.split_once('.')?;
    let at_ms = secs.parse::<i64>().ok()? * 1000 + millis.parse::<i64>().ok()?;
    Some(Record {
        kind,
        serial: serial.parse().ok()?,
        at_ms,
        body: body.trim_start().to_owned(),
    })
}

/// `key=value` pairs, values as written (quotes kept: see [`text`]).
pub fn fields(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_owned();
        let end = if let Some(quoted) = after.strip_prefix('"') {
            quoted.find('"').map_or(after.len(), |e| e + 2)
        } else {
            after.find(' ').unwrap_or(after.len())
        };
        out.push((key, after[..end].to_owned()));
        rest = after[end..].trim_start();
    }
    out
}

/// A text field's value: quoted, it is as written; unquoted, the kernel hex-encoded it (it held
/// a space, a quote or a control character); `(null)` and `(none)` are nothing.
pub fn text(value: &str) -> Option<String> {
    if let Some(inner) = value.strip_prefix('"') {
        return Some(inner.strip_suffix('"').unwrap_or(inner).to_owned());
    }
    if value == "(null)" || value == "(none)" {
        return None;
    }
    Some(decode_hex(value).unwrap_or_else(|| value.to_owned()))
}

fn decode_hex(raw: &str) -> Option<String> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || !raw.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&raw[i..i + 2], 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// One execution, as the kernel recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exec {
    pub serial: u64,
    /// `execve`/`execveat` on the record's architecture.
    pub is_exec: bool,
    pub at_ms: i64,
    pub success: bool,
    pub pid: i32,
    pub ppid: i32,
    pub auid: u32,
    pub uid: u32,
    pub euid: u32,
    pub tty: Option<String>,
    pub session: Option<u32>,
    pub comm: String,
    pub exe: String,
    pub key: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
}

/// Puts events' records back together: they arrive one by one, ended by `EOE`, and records of
/// events on different CPUs may interleave. Long arguments come split (`a1_len=`, `a1[0]=`…).
#[derive(Debug, Default)]
pub struct Assembler {
    pending: Vec<(Exec, std::collections::BTreeMap<usize, String>)>,
}

/// Whether `(arch, syscall)` is an execution: x86_64, i386 and aarch64.
pub fn is_exec_syscall(arch: &str, syscall: u64) -> bool {
    match arch {
        "c000003e" => matches!(syscall, 59 | 322),
        "40000003" => matches!(syscall, 11 | 358),
        "c00000b7" => matches!(syscall, 221 | 281),
        _ => false,
    }
}

impl Assembler {
    /// Adds a record; returns an execution when one is complete.
    pub fn push(&mut self, r: &Record) -> Option<Exec> {
        match r.kind {
            SYSCALL => {
                let f = fields(&r.body);
                let raw = |k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
                let get = |k: &str| raw(k).and_then(text);
                let num = |k: &str| raw(k).and_then(|v| v.parse::<u64>().ok());
                let is_exec =
                    is_exec_syscall(raw("arch").unwrap_or(""), num("syscall").unwrap_or(0));
                if !is_exec {
                    return None;
                }
                let exec = Exec {
                    serial: r.serial,
                    is_exec,
                    at_ms: r.at_ms,
                    success: raw("success") == Some("yes"),
                    pid: num("pid").unwrap_or(0) as i32,
                    ppid: num("ppid").unwrap_or(0) as i32,
                    auid: num("auid").map_or(UNSET, |v| v as u32),
                    uid: num("uid").map_or(UNSET, |v| v as u32),
                    euid: num("euid").map_or(UNSET, |v| v as u32),
                    tty: get("tty"),
                    session: num("ses").map(|v| v as u32).filter(|s| *s != UNSET),
                    comm: get("comm").unwrap_or_default(),
                    exe: get("exe").unwrap_or_default(),
                    key: get("key"),
                    argv: Vec::new(),
                    cwd: None,
                };
                // An event whose end never came is given up when too many are open.
                let evicted = (self.pending.len() >= MAX_PENDING).then(|| self.pending.remove(0));
                self.pending.push((exec, Default::default()));
                evicted.map(|(e, args)| finish(e, args))
            }
            EXECVE => {
                let (_, args) = self
                    .pending
                    .iter_mut()
                    .find(|(e, _)| e.serial == r.serial)?;
                for (k, v) in fields(&r.body) {
                    let Some(rest) = k.strip_prefix('a') else {
                        continue;
                    };
                    // `a1` whole, or `a1[0]`, `a1[1]`… in order; `a1_len` and `argc` are sizes.
                    let index = rest.split('[').next().unwrap_or("");
                    if index.is_empty()
                        || !index.bytes().all(|b| b.is_ascii_digit())
                        || rest.contains('_')
                    {
                        continue;
                    }
                    if let Ok(i) = index.parse::<usize>() {
                        args.entry(i)
                            .or_default()
                            .push_str(&text(&v).unwrap_or_default());
                    }
                }
                None
            }
            CWD => {
                let (e, _) = self
                    .pending
                    .iter_mut()
                    .find(|(e, _)| e.serial == r.serial)?;
                e.cwd = fields(&r.body)
                    .into_iter()
                    .find(|(k, _)| k == "cwd")
                    .and_then(|(_, v)| text(&v));
                None
            }
            EOE => {
                let at = self
                    .pending
                    .iter()
                    .position(|(e, _)| e.serial == r.serial)?;
                let (e, args) = self.pending.remove(at);
                Some(finish(e, args))
            }
            _ => None,
        }
    }
}

fn finish(mut e: Exec, args: std::collections::BTreeMap<usize, String>) -> Exec {
    e.argv = args.into_values().collect();
    e
}
