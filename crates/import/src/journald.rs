//! journald exports (`journalctl -o json`, one object a line): sudo's and su's messages, read
//! as the syslog importer reads them, but believed only when the journal's own fields — which
//! the kernel attests and no client can set — say sudo or su wrote them.
//!
//! Must never: believe `SYSLOG_IDENTIFIER` (any program may claim to be sudo: `logger -t sudo`);
//! a message counts only when `_COMM` names the program and `_EXE` is the program's own file.
//! Such messages are counted as forged and skipped.

use std::io::BufRead;

use serde_json::Value;

use crate::syslog::{Line, Reader};
use crate::{Error, Options, Sink, Tally};

/// The files sudo and su run from; `_EXE` must be one of these.
const TRUSTED: &[(&str, &[&str])] = &[
    (
        "sudo",
        &[
            "/usr/bin/sudo",
            "/bin/sudo",
            "/usr/local/bin/sudo",
            "/usr/sbin/sudo",
        ],
    ),
    ("su", &["/usr/bin/su", "/bin/su"]),
];

/// Reads a journald JSON export into observations.
pub fn read(input: impl BufRead, options: &Options, sink: &mut Sink<'_>) -> Result<Tally, Error> {
    let mut reader = Reader::new(options, "journald");
    for line in input.split(b'\n') {
        let line = line.map_err(|e| Error::Io("the input".into(), e))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(entry) = serde_json::from_slice::<Value>(&line) else {
            reader.tally.read += 1;
            reader.tally.skip("unreadable JSON");
            continue;
        };
        entry_of(&mut reader, &entry, sink)?;
    }
    reader.finish(sink)?;
    Ok(reader.tally)
}

fn entry_of(reader: &mut Reader<'_>, entry: &Value, sink: &mut Sink<'_>) -> Result<(), Error> {
    reader.tally.read += 1;
    let field = |k: &str| entry.get(k).and_then(Value::as_str);
    let claimed = field("SYSLOG_IDENTIFIER").or(field("_COMM")).unwrap_or("");
    let Some((program, files)) = TRUSTED.iter().find(|(p, _)| *p == claimed) else {
        reader.tally.skip("not sudo or su");
        return Ok(());
    };
    let attested =
        field("_COMM") == Some(program) && field("_EXE").is_some_and(|exe| files.contains(&exe));
    if !attested {
        reader
            .tally
            .skip("forged: written by another program than it names");
        return Ok(());
    }
    let Some(micros) = field("__REALTIME_TIMESTAMP").and_then(|t| t.parse::<i64>().ok()) else {
        reader.tally.skip("entry without a time");
        return Ok(());
    };
    let Ok(at) = jiff::Timestamp::from_microsecond(micros) else {
        reader.tally.skip("entry without a time");
        return Ok(());
    };
    let message = match entry.get("MESSAGE") {
        Some(Value::String(s)) => s.clone(),
        // Not UTF-8: journald gives the bytes.
        Some(Value::Array(bytes)) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().map(|b| b as u8))
                .collect();
            String::from_utf8_lossy(&raw).into_owned()
        }
        _ => {
            reader.tally.skip("entry without a message");
            return Ok(());
        }
    };
    // A command started by a service or timer is the system's, whatever its terminal.
    let unit = field("_SYSTEMD_UNIT").unwrap_or("");
    reader.system_unit = unit.ends_with(".service") && !unit.starts_with("user@");
    let cursor = field("__CURSOR").unwrap_or("");
    let line = Line {
        at,
        host: field("_HOSTNAME"),
        program,
        pid: field("_PID"),
        message: &message,
    };
    // The cursor names the entry; without one, the entry itself does.
    let record = if cursor.is_empty() {
        entry.to_string()
    } else {
        cursor.to_owned()
    };
    reader.message(&line, &record, sink)
}
