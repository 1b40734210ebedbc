//! Windows, for mixed fleets: process creations with their elevation, from Security 4688
//! (`TokenElevationType`, `MandatoryLabel`) and Sysmon 1 (`IntegrityLevel`), read from `.evtx`
//! files (the `evtx` crate) or from JSON exports, one event a line. Kept: processes that ran
//! with high or system integrity, or a full (UAC-elevated) token.
//!
//! Must never: count a process twice when both Security and Sysmon saw it (a 4688 and a
//! Sysmon 1 for the same host, image and command line within a few seconds are one process), or
//! stop at a corrupt EVTX chunk (it is reported and the other chunks are read).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use elevate_proto::v1::Outcome;
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::{complete, id, Error, Options, Seen, Sink, Tally};

/// A 4688 and a Sysmon 1 this close together (and alike) are the same process.
const SAME_PROCESS_SECONDS: i64 = 3;

/// One process-creation event, whatever it was read from.
struct Event<'a> {
    event_id: u64,
    channel: &'a str,
    host: &'a str,
    at: Timestamp,
    /// The log's own record number, when known.
    record: Option<u64>,
    data: &'a Map<String, Value>,
}

/// Reads Windows events exported as one JSON object a line.
pub fn json_lines(
    input: impl BufRead,
    options: &Options,
    sink: &mut Sink<'_>,
) -> Result<Tally, Error> {
    let mut state = State::default();
    for line in input.split(b'\n') {
        let line = line.map_err(|e| Error::Io("the input".into(), e))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        state.tally.read += 1;
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&line) else {
            state.tally.skip("unreadable JSON");
            continue;
        };
        let text = |k: &str| o.get(k).and_then(Value::as_str);
        let event_id = o
            .get("EventID")
            .or(o.get("EventId"))
            .and_then(number)
            .unwrap_or(0);
        let host = text("Hostname")
            .or(text("Computer"))
            .or(options.host.as_deref())
            .unwrap_or("unknown");
        let at = ["TimeCreated", "UtcTime", "@timestamp", "EventTime"]
            .iter()
            .find_map(|k| text(k).and_then(|t| time(t, options)));
        let Some(at) = at else {
            state.tally.skip("event without a time");
            continue;
        };
        let event = Event {
            event_id,
            channel: text("Channel").unwrap_or(""),
            host,
            at,
            record: o.get("EventRecordID").and_then(number),
            data: &o,
        };
        state.event(&event, sink)?;
    }
    Ok(state.tally)
}

/// Reads an `.evtx` file; a chunk that cannot be read is reported and skipped.
pub fn evtx_file(path: &Path, options: &Options, sink: &mut Sink<'_>) -> Result<Tally, Error> {
    let settings = evtx::ParserSettings::new().num_threads(1);
    let mut parser = evtx::EvtxParser::from_path(path)
        .map_err(|e| Error::Format(format!("{} is not an EVTX file: {e}", path.display())))?
        .with_configuration(settings);
    let mut state = State::default();
    for record in parser.records_json_value() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                state.tally.read += 1;
                state.tally.skip("corrupt EVTX record or chunk");
                state
                    .tally
                    .problem(format!("{}: {}", path.display(), chain(&e)));
                continue;
            }
        };
        state.tally.read += 1;
        let system = &record.data["Event"]["System"];
        let empty = Map::new();
        let data = record.data["Event"]["EventData"]
            .as_object()
            .unwrap_or(&empty);
        let event_id = number(&system["EventID"])
            .or_else(|| number(&system["EventID"]["#text"]))
            .unwrap_or(0);
        let host = system["Computer"]
            .as_str()
            .or(options.host.as_deref())
            .unwrap_or("unknown");
        let event = Event {
            event_id,
            channel: system["Channel"].as_str().unwrap_or(""),
            host,
            at: record.timestamp,
            record: Some(record.event_record_id),
            data,
        };
        state.event(&event, sink)?;
    }
    Ok(state.tally)
}

/// An error and its causes, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// `2020-06-10T02:51:05.723Z`, or `2020-10-18 10:56:14.283` in the options' zone.
fn time(text: &str, options: &Options) -> Option<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    let civil: jiff::civil::DateTime = text.trim().replace(' ', "T").parse().ok()?;
    civil
        .to_zoned(options.tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

#[derive(Default)]
struct State {
    tally: Tally,
    /// Processes seen lately: (host, image, command line) → when, and whether Sysmon saw it.
    recent: HashMap<(String, String, String), Vec<(Timestamp, bool)>>,
}

impl State {
    fn event(&mut self, e: &Event<'_>, sink: &mut Sink<'_>) -> Result<(), Error> {
        let sysmon = match e.event_id {
            1 if e.channel.contains("Sysmon") || e.data.contains_key("IntegrityLevel") => true,
            4688 => false,
            _ => {
                self.tally.skip("not a process creation (4688 or Sysmon 1)");
                return Ok(());
            }
        };
        let text = |k: &str| {
            e.data
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && *v != "-")
        };
        let (image, user, elevation) = if sysmon {
            let level = text("IntegrityLevel").unwrap_or("").to_ascii_lowercase();
            (text("Image"), text("User").map(str::to_owned), level)
        } else {
            let label = match text("MandatoryLabel").unwrap_or("") {
                "S-1-16-16384" => "system",
                "S-1-16-12288" => "high",
                "S-1-16-8192" => "medium",
                "S-1-16-4096" => "low",
                "S-1-16-0" => "untrusted",
                _ => "",
            };
            let full = text("TokenElevationType") == Some("%%1937");
            let level = if full && label.is_empty() {
                "high"
            } else {
                label
            };
            let user = match text("TargetUserName") {
                Some(u) => text("TargetDomainName").map_or(u.to_owned(), |d| format!("{d}\\{u}")),
                None => text("SubjectUserName").map_or(String::new(), |u| {
                    text("SubjectDomainName").map_or(u.to_owned(), |d| format!("{d}\\{u}"))
                }),
            };
            (text("NewProcessName"), Some(user), level.to_owned())
        };
        let Some(image) = image else {
            self.tally.skip("process creation without an image");
            return Ok(());
        };
        if elevation != "high" && elevation != "system" {
            self.tally.skip("not elevated (medium integrity or lower)");
            return Ok(());
        }
        let command_line = text("CommandLine").unwrap_or("");
        if self.seen_by_the_other_log(e, image, command_line, sysmon) {
            self.tally
                .skip("same process already counted (4688 and Sysmon 1)");
            return Ok(());
        }
        let user = user
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let record_key = match e.record {
            Some(r) => r.to_string(),
            None => format!(
                "{}|{}|{}|{image}|{command_line}",
                e.event_id, e.channel, e.at
            ),
        };
        let mut o = Seen {
            id: id("windows", &[e.host, e.channel, &record_key]),
            at: e.at,
            host: e.host,
            user: &user,
            runas: &user,
            program: image,
            via: "uac",
            outcome: Outcome::Ran,
        }
        .observation();
        o.elevation = Some(elevation);
        let mut o = complete(o, command_line, text("CurrentDirectory"), None);
        o.system = system_account(&user, text("LogonId").or(text("SubjectLogonId")));
        self.tally.found += 1;
        sink(o).map_err(Error::Sink)
    }

    /// Whether the other log (Security for Sysmon, Sysmon for Security) reported this process
    /// moments ago; each report is matched at most once.
    fn seen_by_the_other_log(
        &mut self,
        e: &Event<'_>,
        image: &str,
        command_line: &str,
        sysmon: bool,
    ) -> bool {
        let key = (
            e.host.to_ascii_lowercase(),
            image.to_ascii_lowercase(),
            command_line.trim().to_owned(),
        );
        let near = |t: &Timestamp| (t.as_second() - e.at.as_second()).abs() <= SAME_PROCESS_SECONDS;
        if let Some(seen) = self.recent.get_mut(&key) {
            if let Some(i) = seen.iter().position(|(t, s)| *s != sysmon && near(t)) {
                seen.remove(i);
                return true;
            }
        }
        if self.recent.len() > 20_000 {
            let now = e.at.as_second();
            self.recent.retain(|_, seen| {
                seen.retain(|(t, _)| (t.as_second() - now).abs() <= 60);
                !seen.is_empty()
            });
        }
        self.recent.entry(key).or_default().push((e.at, sysmon));
        false
    }
}

/// Windows' own accounts: SYSTEM, LOCAL and NETWORK SERVICE (also by their logon ids), and a
/// computer's account (`HOST$`).
fn system_account(user: &str, logon_id: Option<&str>) -> bool {
    let name = user
        .rsplit('\\')
        .next()
        .unwrap_or(user)
        .to_ascii_uppercase();
    name.ends_with('$')
        || matches!(
            name.as_str(),
            "SYSTEM" | "LOCAL SERVICE" | "NETWORK SERVICE"
        )
        || matches!(logon_id, Some("0x3e7" | "0x3e4" | "0x3e5"))
}
