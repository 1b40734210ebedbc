//! sudo's JSON event log (`Defaults log_format=json`): the log file sudo 1.9 writes (one object
//! whose keys `accept`, `reject`, `alert`, `exit` repeat, read entry by entry, never whole) and
//! syslog lines carrying `@cee:{"sudo":{…}}`.
//!
//! Must never: count one attempt twice (sudo writes two `reject` entries with one `uuid` for a
//! wrong password followed by a refusal), or hold the whole file in memory.

use std::collections::HashSet;
use std::fmt;
use std::io::BufRead;

use elevate_proto::v1::Outcome;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::{complete, id, name, Error, Options, Seen, Sink, Tally};

/// Reads sudo's JSON log into observations.
pub fn read(
    mut input: impl BufRead,
    options: &Options,
    sink: &mut Sink<'_>,
) -> Result<Tally, Error> {
    let mut state = State {
        options,
        tally: Tally::default(),
        uuids: HashSet::new(),
        failed: None,
    };
    let starts_with_brace = loop {
        let buf = input
            .fill_buf()
            .map_err(|e| Error::Io("the input".into(), e))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let brace = buf[i] == b'{';
                break brace;
            }
            None if buf.is_empty() => return Ok(state.tally),
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    };
    if starts_with_brace {
        let mut de = serde_json::Deserializer::from_reader(input);
        loop {
            match entries(&mut state, sink, &mut de)? {
                Ok(()) => {}
                Err(e) if e.is_eof() => {
                    // A log still being written has no closing brace yet.
                    if state.tally.read == 0 {
                        state.tally.skip("unreadable JSON");
                    }
                    break;
                }
                Err(e) => {
                    return Err(Error::Format(format!(
                        "sudo's JSON log does not read at line {}, column {}: {e}",
                        e.line(),
                        e.column()
                    )))
                }
            }
            if de.end().is_ok() {
                break;
            }
        }
    } else {
        for line in input.split(b'\n') {
            let line = line.map_err(|e| Error::Io("the input".into(), e))?;
            let text = String::from_utf8_lossy(&line);
            let Some(start) = text.find('{') else {
                if !text.trim().is_empty() {
                    state.tally.read += 1;
                    state.tally.skip("no JSON in the line");
                }
                continue;
            };
            let mut de = serde_json::Deserializer::from_str(&text[start..]);
            if entries(&mut state, sink, &mut de)?.is_err() {
                state.tally.read += 1;
                state.tally.skip("unreadable JSON");
            }
        }
    }
    Ok(state.tally)
}

/// Reads one JSON value's entries into the sink: the sink's error (which stops the read), else
/// how the JSON read.
fn entries<'de, D: Deserializer<'de>>(
    state: &mut State<'_>,
    sink: &mut Sink<'_>,
    de: D,
) -> Result<Result<(), D::Error>, Error> {
    let r = Entries { state, sink }.deserialize(de);
    match state.failed.take() {
        Some(e) => Err(e),
        None => Ok(r),
    }
}

struct State<'o> {
    options: &'o Options,
    tally: Tally,
    /// Attempts already counted (sudo repeats a `uuid` across the entries of one attempt).
    uuids: HashSet<String>,
    /// The sink's error, which stops the read.
    failed: Option<Error>,
}

/// Visits an object's entries one at a time (keys may repeat), descending into `sudo`.
struct Entries<'s, 'o, 'k, 'f> {
    state: &'s mut State<'o>,
    sink: &'k mut Sink<'f>,
}

impl<'de> DeserializeSeed<'de> for Entries<'_, '_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sudo's JSON log: an object of accept, reject, alert and exit entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "sudo" => map.next_value_seed(Entries {
                    state: &mut *self.state,
                    sink: &mut *self.sink,
                })?,
                "accept" | "reject" | "alert" | "exit" => {
                    let value: Value = map.next_value()?;
                    self.state.tally.read += 1;
                    if let Err(e) = entry(self.state, &key, &value, self.sink) {
                        self.state.failed = Some(e);
                        return Err(serde::de::Error::custom("stopped"));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

fn entry(state: &mut State<'_>, kind: &str, v: &Value, sink: &mut Sink<'_>) -> Result<(), Error> {
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    let outcome = match kind {
        "accept" => Outcome::Ran,
        "reject" => {
            let reason = text("reason").unwrap_or("");
            if reason.contains("password") || reason.contains("authentication") {
                Outcome::Failed
            } else {
                Outcome::Refused
            }
        }
        "exit" => {
            state.tally.skip("command end (the accept entry counts)");
            return Ok(());
        }
        _ => {
            state.tally.skip("alert");
            return Ok(());
        }
    };
    let (Some(user), Some(command)) = (text("submituser"), text("command")) else {
        state.tally.skip("entry without user or command");
        return Ok(());
    };
    let time = v.get("submit_time").or(v.get("server_time"));
    let seconds = time.and_then(|t| t.get("seconds")).and_then(Value::as_i64);
    let nanos = time
        .and_then(|t| t.get("nanoseconds"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let Some(at) = seconds.and_then(|s| jiff::Timestamp::new(s, nanos as i32).ok()) else {
        state.tally.skip("entry without a time");
        return Ok(());
    };
    let host = text("submithost")
        .or(state.options.host.as_deref())
        .unwrap_or("unknown");
    let id = match text("uuid") {
        Some(uuid) => {
            if !state.uuids.insert(format!("{host}\0{uuid}")) {
                state.tally.skip("same attempt already counted");
                return Ok(());
            }
            if state.uuids.len() > 100_000 {
                state.uuids.clear();
            }
            id("sudo-json", &[host, uuid])
        }
        None => id("sudo-json", &[host, &v.to_string()]),
    };
    let args: Vec<&str> = v
        .get("runargv")
        .and_then(Value::as_array)
        .map(|a| a.iter().skip(1).filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut command_line = command.to_owned();
    for a in args {
        command_line.push(' ');
        command_line.push_str(a);
    }
    let runas = text("runuser").map(name).unwrap_or_else(|| "root".into());
    let mut o = Seen {
        id,
        at,
        host,
        user,
        runas: &runas,
        program: command,
        via: "sudo",
        outcome,
    }
    .observation();
    o.uid = v
        .get("runenv")
        .and_then(Value::as_array)
        .and_then(|env| {
            env.iter()
                .filter_map(Value::as_str)
                .find_map(|e| e.strip_prefix("SUDO_UID="))
        })
        .and_then(|u| u.parse().ok());
    if outcome != Outcome::Ran {
        o.detail = text("reason").map(str::to_owned);
    }
    let o = complete(
        o,
        &command_line,
        text("submitcwd").or(text("runcwd")),
        text("ttyname"),
    );
    state.tally.found += 1;
    sink(o).map_err(Error::Sink)
}
