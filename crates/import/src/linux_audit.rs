//! Linux audit logs (`/var/log/audit/audit.log`, raw or enriched): the records of one event
//! (`SYSCALL`, `EXECVE`, `CWD` … `EOE`) joined, and an execution kept when it ran as root
//! (`euid=0`) for a person who logged in (`auid` ≥ 1000), as the agent's own collector does.
//!
//! Must never: keep an execution whose login uid is unset or below 1000 (a service's), or one
//! that failed.

use std::collections::HashMap;
use std::io::BufRead;

use elevate_proto::linux_audit::{
    fields, is_exec_syscall, kind_named, parse_record, Assembler, Exec, SYSCALL, UNSET,
};
use elevate_proto::v1::Outcome;

use crate::{complete, id, Error, Options, Seen, Sink, Tally};

/// The first uid of a person (below it: system accounts).
const FIRST_PERSON_UID: u32 = 1000;

/// What an enriched SYSCALL record names, and its node: (login user, effective user, node).
type Names = (Option<String>, Option<String>, Option<String>);

/// Reads audit.log lines into observations.
pub fn read(input: impl BufRead, options: &Options, sink: &mut Sink<'_>) -> Result<Tally, Error> {
    let mut tally = Tally::default();
    let mut assembler = Assembler::default();
    // Enriched logs name the ids (`AUID="alice"`): kept per event until it is complete.
    let mut names: HashMap<u64, Names> = HashMap::new();
    for line in input.split(b'\n') {
        let line = line.map_err(|e| Error::Io("the input".into(), e))?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        let (node, rest) = match text.strip_prefix("node=") {
            Some(r) => match r.split_once(' ') {
                Some((n, rest)) => (Some(n), rest),
                None => (None, r),
            },
            None => (None, text),
        };
        let (raw, enriched) = rest.split_once('\u{1d}').unwrap_or((rest, ""));
        let parsed = raw.strip_prefix("type=").and_then(|r| {
            let (kind, msg) = r.split_once(" msg=")?;
            Some((kind, msg))
        });
        let Some((kind_name, msg)) = parsed else {
            tally.read += 1;
            tally.skip("unreadable line");
            continue;
        };
        let Some(kind) = kind_named(kind_name) else {
            continue;
        };
        let Some(record) = parse_record(kind, msg.as_bytes()) else {
            tally.read += 1;
            tally.skip("unreadable line");
            continue;
        };
        if kind == SYSCALL {
            tally.read += 1;
            let f = fields(&record.body);
            let raw = |k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            let syscall = raw("syscall").and_then(|s| s.parse().ok()).unwrap_or(0);
            if !is_exec_syscall(raw("arch").unwrap_or(""), syscall) {
                tally.skip("not an execution");
                continue;
            }
            let e = fields(enriched);
            let named = |k: &str| {
                e.iter()
                    .find(|(key, _)| key == k)
                    .and_then(|(_, v)| elevate_proto::linux_audit::text(v))
            };
            if names.len() > 1024 {
                names.clear();
            }
            names.insert(
                record.serial,
                (named("AUID"), named("EUID"), node.map(str::to_owned)),
            );
        }
        if let Some(exec) = assembler.push(&record) {
            let (user, runas, node) = names.remove(&exec.serial).unwrap_or_default();
            observe(exec, user, runas, node, options, &mut tally, sink)?;
        }
    }
    Ok(tally)
}

fn observe(
    exec: Exec,
    user: Option<String>,
    runas: Option<String>,
    node: Option<String>,
    options: &Options,
    tally: &mut Tally,
    sink: &mut Sink<'_>,
) -> Result<(), Error> {
    if !exec.success {
        tally.skip("failed execution");
        return Ok(());
    }
    if exec.euid != 0 || exec.auid == UNSET || exec.auid < FIRST_PERSON_UID {
        tally.skip("not as root for a person who logged in");
        return Ok(());
    }
    let host = node
        .or(options.host.clone())
        .unwrap_or_else(|| "unknown".into());
    let Ok(at) = jiff::Timestamp::from_millisecond(exec.at_ms) else {
        tally.skip("unreadable line");
        return Ok(());
    };
    let user = user.unwrap_or_else(|| exec.auid.to_string());
    let runas = runas.unwrap_or_else(|| "root".into());
    let program = if exec.exe.is_empty() {
        exec.argv.first().cloned().unwrap_or_default()
    } else {
        exec.exe.clone()
    };
    if program.is_empty() {
        tally.skip("execution without a program");
        return Ok(());
    }
    let mut o = Seen {
        id: id(
            "linux-audit",
            &[&host, &exec.serial.to_string(), &exec.at_ms.to_string()],
        ),
        at,
        host: &host,
        user: &user,
        runas: &runas,
        program: &program,
        via: "exec",
        outcome: Outcome::Ran,
    }
    .observation();
    o.uid = Some(exec.auid);
    let command_line = exec.argv.join(" ");
    let o = complete(o, &command_line, exec.cwd.as_deref(), exec.tty.as_deref());
    tally.found += 1;
    sink(o).map_err(Error::Sink)
}
