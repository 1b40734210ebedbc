//! The tamper-evident audit chain: every state change becomes an [`AuditEvent`], each record
//! carries the hash of the record before it, and [`verify`] finds and names the first place where
//! the stored chain was edited, cut, extended, reordered or renumbered (security invariant 7).
//!
//! Must never: touch storage, read a clock or re-serialise `data` before hashing. The server and
//! the agent store the records; this module only computes hashes and checks them.
//!
//! # Hash encoding (version 1)
//!
//! [`event_hash`] is the lower-case hex SHA-256 of the concatenation of these eight fields, in
//! this order. A *string* is written as its length in bytes, an unsigned 64-bit big-endian
//! integer (8 bytes), followed by its bytes (UTF-8, no terminator, no normalisation):
//!
//! 1. tag: the string `elevate-audit-v1`, i.e. `00 00 00 00 00 00 00 10` then those 16 ASCII bytes;
//! 2. `prev_hash`: string, the previous hash as stored text (64 lower-case hex characters,
//!    [`GENESIS`] for the first record), not decoded;
//! 3. `id`: string;
//! 4. `at`: `at.as_millisecond()` as a signed 64-bit big-endian integer, 8 bytes, no length
//!    (sub-millisecond digits are not hashed);
//! 5. `actor`: string;
//! 6. `action`: string;
//! 7. `subject`: string;
//! 8. `data`: string, the JSON text exactly as stored.
//!
//! `seq` is not hashed: a record's position is carried by the links. The length prefixes make
//! field boundaries unambiguous (`actor = "ab", action = "c"` hashes differently from
//! `actor = "a", action = "bc"`). The test vector in the tests pins this encoding.
//!
//! # How a break is classified
//!
//! [`verify`] walks the records in the order given (the store returns them by `seq`) and stops
//! at the first record that fails one of these checks, asked in this order:
//!
//! 1. **Edited** — the hash recomputed from the record's own `prev_hash` and event differs from
//!    its stored `hash`: the record was changed (content, `prev_hash` or `hash`). Because the
//!    hash covers the record's *own* stored link, a record moved intact still hashes correctly,
//!    so moving rows is never reported as an edit. (This is why the hash is checked before the
//!    link: the link check alone cannot tell a moved record from an altered one.) A forged
//!    record whose hash was not computed with [`event_hash`] is reported here too.
//! 2. **Inserted** (copy) — the record repeats the stored hash or the event id of an earlier
//!    record. The later one is named.
//! 3. The link: `prev_hash` must equal the stored hash of the record just before it (for the first
//!    record, the hash of the starting head, [`GENESIS`] for a whole log). When it does not, the
//!    record it links to decides:
//!    - **Reordered** — it links to a record stored *after* it.
//!    - **Inserted** — it links to a record (or the start) further back than the one just before:
//!      the records in between are not part of the chain. The first of them is named.
//!    - **Deleted** — it links to no record present: one or more records before it were removed.
//!      The record whose link dangles is named. A record replaced by a forgery with a recomputed
//!      hash also ends here, at the record after the forgery: the original it linked to is gone.
//! 4. **Renumbered** — links and hashes are sound but `seq` is not the previous `seq` + 1 (the
//!    first record must be the starting head's `count` + 1).
//!
//! When every record passes and an expected head is given (the server keeps it beside the table,
//! updated in the same transaction), the computed head must equal it:
//!
//! - fewer records than the head counts: **Truncated**, naming the first missing `seq`;
//! - more records, and the record at the head's `count` has the head's hash: **Inserted**, naming
//!   the first record appended after the head;
//! - anything else (same count but another hash, or a different history): **Truncated**, naming
//!   the last record: the log was cut back and rewritten, or the head itself was altered.
//!
//! Removing records from the end cannot be detected without the expected head.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(test)]
mod tests;

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain-separation tag, the first field of every hashed encoding.
const TAG: &str = "elevate-audit-v1";

/// One state change, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Globally unique (UUID text); the idempotency key when the server ingests events.
    pub id: String,
    /// When it happened. Only millisecond precision is hashed.
    pub at: jiff::Timestamp,
    /// Who did it: `user:alice`, `approver:bob`, `device:web-01`, `system`.
    pub actor: String,
    /// What happened: `request.created`, `request.approved`.
    pub action: String,
    /// What it happened to: `request:0193…`, `policy:3`.
    pub subject: String,
    /// JSON text exactly as stored; hashed as bytes.
    pub data: String,
}

/// An event in its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedRecord {
    /// Position in the log, from 1. Not hashed.
    pub seq: u64,
    /// Hash of the record before ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// [`event_hash`] of `prev_hash` and `event`.
    pub hash: String,
    pub event: AuditEvent,
}

/// The end of a chain: how many records it has and the hash of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Number of records (the `seq` of the last one).
    pub count: u64,
    /// Hash of the last record, or [`GENESIS`] when there is none.
    pub hash: String,
}

impl Head {
    /// The head of an empty log.
    pub fn genesis() -> Head {
        Head {
            count: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

impl ChainedRecord {
    /// The head of a chain that ends with this record.
    pub fn head(&self) -> Head {
        Head {
            count: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// Lower-case hex SHA-256 of the version 1 encoding of `prev_hash` and `event` (see the module
/// documentation for the exact bytes).
pub fn event_hash(prev_hash: &str, event: &AuditEvent) -> String {
    let mut hasher = Sha256::new();
    put_string(&mut hasher, TAG);
    put_string(&mut hasher, prev_hash);
    put_string(&mut hasher, &event.id);
    hasher.update(event.at.as_millisecond().to_be_bytes());
    put_string(&mut hasher, &event.actor);
    put_string(&mut hasher, &event.action);
    put_string(&mut hasher, &event.subject);
    put_string(&mut hasher, &event.data);
    hex::encode(hasher.finalize())
}

/// A string field: its length in bytes (u64, big-endian), then its bytes.
fn put_string(hasher: &mut Sha256, s: &str) {
    hasher.update((s.len() as u64).to_be_bytes());
    hasher.update(s.as_bytes());
}

/// Chains `event` after `head`: `seq` is `head.count + 1`, `prev_hash` is `head.hash`.
#[must_use = "the record must be stored, and the head moved to it"]
pub fn append(head: &Head, event: AuditEvent) -> ChainedRecord {
    ChainedRecord {
        seq: head.count + 1,
        prev_hash: head.hash.clone(),
        hash: event_hash(&head.hash, &event),
        event,
    }
}

/// How a chain was found to be broken. See the module documentation for the exact rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A record's content no longer matches its hash.
    Edited,
    /// Records are missing between two records still present.
    Deleted,
    /// A record is not part of the chain around it, or was added after the recorded head.
    Inserted,
    /// A record links to a record stored after it.
    Reordered,
    /// Links and hashes are sound but the `seq` numbers are not consecutive.
    Renumbered,
    /// The chain is sound but ends before, or differently from, the recorded head.
    Truncated,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::Edited => "edited",
            BreakKind::Deleted => "deleted",
            BreakKind::Inserted => "inserted",
            BreakKind::Reordered => "reordered",
            BreakKind::Renumbered => "renumbered",
            BreakKind::Truncated => "truncated",
        }
    }
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first place a chain is broken, with a sentence for an auditor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct ChainBreak {
    /// The stored `seq` of the record named in the message (for `Truncated` when records are
    /// missing from the end: the first missing `seq`).
    pub seq: u64,
    /// The event id of that record, when it is present.
    pub event_id: Option<String>,
    pub kind: BreakKind,
    pub message: String,
}

/// Verifies a whole log, from [`GENESIS`]. Returns its head, or the first break.
pub fn verify(records: &[ChainedRecord], expected_head: Option<&Head>) -> Result<Head, ChainBreak> {
    verify_from(&Head::genesis(), records, expected_head)
}

/// Verifies records that continue the chain ending at `start` (a head verified before), so a
/// long log can be checked piece by piece. Returns the new head, or the first break.
///
/// Each piece is classified on its own: a record that links into a later piece is reported as
/// `Deleted` rather than `Reordered`. Verify the whole slice when the kind matters.
pub fn verify_from(
    start: &Head,
    records: &[ChainedRecord],
    expected_head: Option<&Head>,
) -> Result<Head, ChainBreak> {
    let walk = Walk::new(start, records);
    for i in 0..records.len() {
        walk.check_record(i)?;
    }
    let head = records
        .last()
        .map_or_else(|| start.clone(), ChainedRecord::head);
    if let Some(expected) = expected_head {
        walk.check_head(&head, expected)?;
    }
    Ok(head)
}

/// One verification pass over a slice, with the indexes it needs to classify breaks.
struct Walk<'a> {
    start: &'a Head,
    records: &'a [ChainedRecord],
    /// First position of each stored hash.
    by_hash: HashMap<&'a str, usize>,
    /// First position of each event id.
    by_id: HashMap<&'a str, usize>,
}

impl<'a> Walk<'a> {
    fn new(start: &'a Head, records: &'a [ChainedRecord]) -> Walk<'a> {
        let mut by_hash = HashMap::with_capacity(records.len());
        let mut by_id = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            by_hash.entry(r.hash.as_str()).or_insert(i);
            by_id.entry(r.event.id.as_str()).or_insert(i);
        }
        Walk {
            start,
            records,
            by_hash,
            by_id,
        }
    }

    /// Checks record `i`, given that every record before it passed.
    fn check_record(&self, i: usize) -> Result<(), ChainBreak> {
        let record = &self.records[i];
        if event_hash(&record.prev_hash, &record.event) != record.hash {
            let message = format!(
                "{} was edited: its content no longer matches its hash",
                describe(record)
            );
            return Err(found(BreakKind::Edited, record, message));
        }
        if let Some(original) = self.earlier_copy_of(i) {
            let message = format!(
                "{} was inserted: it repeats {}",
                describe(record),
                describe(original)
            );
            return Err(found(BreakKind::Inserted, record, message));
        }
        let (prev_seq, prev_hash) = match i.checked_sub(1) {
            None => (self.start.count, self.start.hash.as_str()),
            Some(p) => (self.records[p].seq, self.records[p].hash.as_str()),
        };
        if record.prev_hash != prev_hash {
            return Err(self.broken_link(i));
        }
        if prev_seq.checked_add(1) != Some(record.seq) {
            let message = format!(
                "{} follows {} in the chain, so it should be numbered {}: the records were \
                 renumbered",
                describe(record),
                self.before(i),
                prev_seq.wrapping_add(1)
            );
            return Err(found(BreakKind::Renumbered, record, message));
        }
        Ok(())
    }

    /// An earlier record with the same stored hash or the same event id as record `i`.
    fn earlier_copy_of(&self, i: usize) -> Option<&'a ChainedRecord> {
        let record = &self.records[i];
        [
            self.by_hash.get(record.hash.as_str()),
            self.by_id.get(record.event.id.as_str()),
        ]
        .into_iter()
        .flatten()
        .copied()
        .filter(|&j| j < i)
        .min()
        .map(|j| &self.records[j])
    }

    /// Classifies record `i`, whose hash is sound but whose `prev_hash` is not the hash before it.
    fn broken_link(&self, i: usize) -> ChainBreak {
        let record = &self.records[i];
        if record.prev_hash == self.start.hash {
            return self.inserted(0, i);
        }
        match self.by_hash.get(record.prev_hash.as_str()) {
            Some(&j) if j < i => self.inserted(j + 1, i),
            Some(&j) => {
                let message = format!(
                    "{} is out of order: it links to {}, which is stored after it",
                    describe(record),
                    describe(&self.records[j])
                );
                found(BreakKind::Reordered, record, message)
            }
            None => {
                let message = format!(
                    "{} links to a record that is not in the log: one or more records between {} \
                     and it were deleted or replaced",
                    describe(record),
                    self.before(i)
                );
                found(BreakKind::Deleted, record, message)
            }
        }
    }

    /// Records `first..i` were skipped over by record `i`, which links to what precedes `first`.
    fn inserted(&self, first: usize, i: usize) -> ChainBreak {
        let (inserted, record) = (&self.records[first], &self.records[i]);
        let message = if first + 1 == i {
            format!(
                "{} was inserted: {} links past it to {}",
                describe(inserted),
                describe(record),
                self.before(first)
            )
        } else {
            format!(
                "records {} to {} were inserted, starting with {}: {} links past them to {}",
                inserted.seq,
                self.records[i - 1].seq,
                describe(inserted),
                describe(record),
                self.before(first)
            )
        };
        found(BreakKind::Inserted, inserted, message)
    }

    /// Compares the head of a sound chain with the head recorded beside it.
    fn check_head(&self, head: &Head, expected: &Head) -> Result<(), ChainBreak> {
        if head == expected {
            return Ok(());
        }
        if head.count < expected.count {
            let first_missing = head.count + 1;
            let missing = if first_missing == expected.count {
                format!("record {first_missing} was")
            } else {
                format!("records {first_missing} to {} were", expected.count)
            };
            let message = format!(
                "the log ends at record {} but the recorded head is record {}: {missing} removed \
                 from the end",
                head.count, expected.count
            );
            return Err(ChainBreak {
                seq: first_missing,
                event_id: None,
                kind: BreakKind::Truncated,
                message,
            });
        }
        if head.count > expected.count && self.hash_at(expected.count) == Some(&expected.hash) {
            if let Some(first) = self.record_at(expected.count + 1) {
                let message = format!(
                    "{} was inserted: it was appended after the recorded head (record {}) without \
                     moving it",
                    describe(first),
                    expected.count
                );
                return Err(found(BreakKind::Inserted, first, message));
            }
        }
        let message = format!(
            "the log ends at record {} with hash {} but the recorded head is record {} with hash \
             {}: the log was cut back and rewritten, or the recorded head was altered",
            head.count,
            short(&head.hash),
            expected.count,
            short(&expected.hash)
        );
        Err(ChainBreak {
            seq: head.count,
            event_id: self.records.last().map(|r| r.event.id.clone()),
            kind: BreakKind::Truncated,
            message,
        })
    }

    /// The stored record numbered `seq`, in a chain already checked to be numbered consecutively.
    fn record_at(&self, seq: u64) -> Option<&'a ChainedRecord> {
        let offset = seq.checked_sub(self.start.count)?.checked_sub(1)?;
        self.records.get(usize::try_from(offset).ok()?)
    }

    /// The hash after record number `count` (the start's hash at the start).
    fn hash_at(&self, count: u64) -> Option<&'a String> {
        if count == self.start.count {
            Some(&self.start.hash)
        } else {
            self.record_at(count).map(|r| &r.hash)
        }
    }

    /// Words for whatever comes just before position `i`.
    fn before(&self, i: usize) -> String {
        match i.checked_sub(1) {
            Some(p) => format!("record {}", self.records[p].seq),
            None if self.start.count == 0 => "the start of the log".to_owned(),
            None => format!("record {} (where this check started)", self.start.count),
        }
    }
}

/// `record 7 (event 0193…)`.
fn describe(record: &ChainedRecord) -> String {
    format!("record {} (event {})", record.seq, record.event.id)
}

/// The first 16 hex digits of a hash, enough for a person to compare.
fn short(hash: &str) -> String {
    match hash.get(..16) {
        Some(prefix) if hash.len() > 16 => format!("{prefix}…"),
        _ => hash.to_owned(),
    }
}

fn found(kind: BreakKind, record: &ChainedRecord, message: String) -> ChainBreak {
    ChainBreak {
        seq: record.seq,
        event_id: Some(record.event.id.clone()),
        kind,
        message,
    }
}
