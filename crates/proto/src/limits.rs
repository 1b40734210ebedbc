//! How large what enters an audit event may be, in one place. The agent bounds every event
//! before it is spooled (`bound_event`): a string a user controls (an argument, a working
//! directory, a terminal name, sudo's message) longer than `MAX_TEXT` is kept as its first bytes
//! with the length and SHA-256 of the whole; a list longer than `MAX_LIST_ITEMS` items or
//! `MAX_LIST_BYTES` bytes keeps its first items with the count and SHA-256 of the whole; and data
//! that is still over `MAX_EVENT_DATA` keeps only its small top-level fields and a digest. The
//! server's limits on what it ingests are derived from the same constants, so an event the agent
//! made always fits, and a batch is split to fit.
//!
//! Must never: let a bounded value lose the fact that it was cut (a cut value is an object where
//! the original was a string or a list, so it cannot be mistaken for, or forged as, text), or
//! give the server limits below what the agent produces.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Longest string kept whole in an event (a path, at most `PATH_MAX` - 1, always fits).
pub const MAX_TEXT: usize = 4096;
/// Most items of one list kept in an event.
pub const MAX_LIST_ITEMS: usize = 256;
/// Most bytes (as JSON) of one list kept in an event: argument lists beyond this are recorded
/// by their first arguments, count and digest.
pub const MAX_LIST_BYTES: usize = 16 * 1024;
/// Largest `data` of one event, as JSON text.
pub const MAX_EVENT_DATA: usize = 64 * 1024;
/// Longest `id`, `actor`, `action` and `subject` of an event.
pub const MAX_EVENT_FIELD: usize = 256;
/// Top-level fields kept (each at most `MAX_EVENT_FIELD` bytes of JSON) when data is oversized.
const KEPT_FIELDS: usize = 32;
/// Largest one event can be, as JSON.
pub const MAX_EVENT: usize = MAX_EVENT_DATA + 4 * MAX_EVENT_FIELD + 256;
/// Most events in one ingest call.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// The agent sends events together up to this many bytes of JSON (one event alone may be up
/// to `MAX_EVENT`).
pub const BATCH_BYTES: usize = 512 * 1024;
/// Largest ingest body the server reads: a batch of `BATCH_BYTES` plus the JSON around it.
pub const MAX_INGEST_BODY: usize = BATCH_BYTES + MAX_BATCH_EVENTS + 64;
/// Longest reason a person may give (core's rule, [`elevate_core::Reason`]).
pub const MAX_REASON: usize = elevate_core::Reason::MAX;

// A lone maximal event always fits in a batch, and so in the body the server reads.
const _: () = assert!(MAX_EVENT <= BATCH_BYTES);

/// Bounds an event's data in place (idempotent: bounding a bounded value changes nothing).
pub fn bound_data(data: &mut Value) {
    bound_value(data);
    let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
    if size <= MAX_EVENT_DATA {
        return;
    }
    let digest = sha256(&serde_json::to_vec(data).unwrap_or_default());
    let mut kept = Map::new();
    if let Value::Object(fields) = data {
        for (name, value) in fields.iter() {
            if kept.len() >= KEPT_FIELDS {
                break;
            }
            let small = serde_json::to_vec(value).is_ok_and(|v| v.len() <= MAX_EVENT_FIELD);
            if small && name.len() <= MAX_EVENT_FIELD && name != "oversized" {
                kept.insert(name.clone(), value.clone());
            }
        }
    }
    kept.insert(
        "oversized".into(),
        json!({ "bytes": size, "sha256": digest }),
    );
    *data = Value::Object(kept);
}

/// Strings and lists cut to their bounds, depth first (items are cut before their list is
/// measured).
fn bound_value(value: &mut Value) {
    match value {
        Value::String(s) if s.len() > MAX_TEXT => *value = cut_text(s),
        Value::Array(items) => {
            for item in items.iter_mut() {
                bound_value(item);
            }
            if let Some(cut) = cut_list(items) {
                *value = cut;
            }
        }
        Value::Object(fields) => {
            for (_, v) in fields.iter_mut() {
                bound_value(v);
            }
        }
        _ => {}
    }
}

/// A string too long to keep: its first bytes (whole characters), its length and digest.
pub fn cut_text(s: &str) -> Value {
    let mut end = MAX_TEXT.min(s.len()).saturating_sub(1024);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    json!({ "prefix": &s[..end], "bytes": s.len(), "sha256": sha256(s.as_bytes()) })
}

/// A list too long to keep (`None` when it fits): its first items, the count and the digest
/// of the whole list's JSON.
fn cut_list(items: &[Value]) -> Option<Value> {
    let sizes: Vec<usize> = items
        .iter()
        .map(|i| serde_json::to_vec(i).map_or(usize::MAX, |v| v.len()) + 1)
        .collect();
    if items.len() <= MAX_LIST_ITEMS && sizes.iter().sum::<usize>() <= MAX_LIST_BYTES {
        return None;
    }
    let mut used = 0;
    let kept: Vec<Value> = items
        .iter()
        .zip(&sizes)
        .take(MAX_LIST_ITEMS)
        .take_while(|(_, size)| {
            used += **size;
            used <= MAX_LIST_BYTES
        })
        .map(|(item, _)| item.clone())
        .collect();
    let whole = serde_json::to_vec(items).unwrap_or_default();
    Some(json!({ "items": kept, "count": items.len(), "sha256": sha256(&whole) }))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(v: &Value) -> usize {
        serde_json::to_vec(v).unwrap().len()
    }

    #[test]
    fn small_data_is_kept_as_it_is() {
        let mut data = json!({ "user": "alice", "argv": ["/usr/bin/id", "-u"], "cwd": "/tmp",
            "n": 3, "nested": { "tty": "/dev/pts/1" } });
        let before = data.clone();
        bound_data(&mut data);
        assert_eq!(data, before);
    }

    #[test]
    fn a_long_string_keeps_a_prefix_its_length_and_digest() {
        let long = "é".repeat(100_000);
        let mut data = json!({ "cwd": long });
        bound_data(&mut data);
        let cut = &data["cwd"];
        assert!(cut.is_object(), "a cut string is no longer a string: {cut}");
        assert_eq!(cut["bytes"], 200_000);
        assert_eq!(cut["sha256"], sha256(long.as_bytes()));
        let prefix = cut["prefix"].as_str().unwrap();
        assert!(long.starts_with(prefix) && !prefix.is_empty() && prefix.len() < MAX_TEXT);
        // Bounding is idempotent: a spool re-read and re-written changes nothing.
        let again = data.clone();
        bound_data(&mut data);
        assert_eq!(data, again);
    }

    #[test]
    fn long_lists_keep_their_first_items_a_count_and_digest() {
        let many: Vec<String> = (0..100_000).map(|i| format!("arg{i}")).collect();
        let big: Vec<String> = (0..40).map(|_| "x".repeat(4000)).collect();
        let mut data = json!({ "argv": many, "risky_env": big });
        bound_data(&mut data);
        assert_eq!(data["argv"]["count"], 100_000);
        assert_eq!(data["argv"]["items"][0], "arg0");
        assert!(data["argv"]["items"].as_array().unwrap().len() <= MAX_LIST_ITEMS);
        assert_eq!(data["risky_env"]["count"], 40);
        assert!(size(&data["risky_env"]["items"]) <= MAX_LIST_BYTES);
        assert!(size(&data) <= MAX_EVENT_DATA);
    }

    #[test]
    fn data_still_too_large_keeps_its_small_fields_and_a_digest() {
        let fields: Map<String, Value> = (0..200)
            .map(|i| (format!("f{i:03}"), json!("y".repeat(3000))))
            .chain([("user".to_string(), json!("alice"))])
            .collect();
        let mut data = Value::Object(fields);
        bound_data(&mut data);
        assert!(size(&data) <= MAX_EVENT_DATA, "{}", size(&data));
        assert_eq!(data["user"], "alice");
        assert!(data["oversized"]["bytes"].as_u64().unwrap() > MAX_EVENT_DATA as u64);
    }

    #[test]
    fn the_largest_event_fits_a_batch_and_the_servers_body_limit() {
        let field = "f".repeat(MAX_EVENT_FIELD);
        // Data at its bound, of the kind that grows most as JSON (escaped characters).
        let mut data = json!({ "a": "\u{1}".repeat(MAX_TEXT), "b": "\u{1}".repeat(MAX_TEXT),
            "c": "\u{1}".repeat(MAX_TEXT), "list": vec!["\u{1}".repeat(MAX_TEXT); 30] });
        bound_data(&mut data);
        let data_size = size(&data);
        assert!(data_size <= MAX_EVENT_DATA, "{data_size}");
        let event = json!({ "id": field, "at": "2026-12-02T18:00:00.000Z", "actor": field,
            "action": field, "subject": field, "data": data });
        assert!(size(&event) <= MAX_EVENT);
        let body = json!({ "events": [event] });
        assert!(size(&body) <= MAX_INGEST_BODY);
    }
}
