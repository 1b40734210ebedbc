//! Audit events on the wire: what agents send (`AuditEventIn`, in batches), the chained records
//! the API shows, and the chain's verification report.
//!
//! Must never: let a record's wire form differ from the chained record it was hashed as.

use elevate_core as core;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An audit event as sent by an agent (or returned by the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEventIn {
    /// Globally unique id (UUID); the same id ingested twice is stored once.
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditBatch {
    pub events: Vec<AuditEventIn>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestResult {
    pub accepted: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub seq: u64,
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON text exactly as hashed.
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<core::audit::ChainedRecord> for AuditRecord {
    fn from(r: core::audit::ChainedRecord) -> Self {
        AuditRecord {
            seq: r.seq,
            id: r.event.id,
            at: r.event.at,
            actor: r.event.actor,
            action: r.event.action,
            subject: r.event.subject,
            data: r.event.data,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl From<AuditRecord> for core::audit::ChainedRecord {
    fn from(r: AuditRecord) -> Self {
        core::audit::ChainedRecord {
            seq: r.seq,
            prev_hash: r.prev_hash,
            hash: r.hash,
            event: core::audit::AuditEvent {
                id: r.id,
                at: r.at,
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                data: r.data,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChainBreakView {
    pub seq: u64,
    pub event_id: Option<String>,
    /// `edited`, `deleted`, `inserted`, `reordered`, `renumbered`, `truncated`, or `checkpoint`
    /// (the chain does not match what the server signed).
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    /// Records checked.
    pub count: u64,
    /// Hash of the last record (the chain head).
    pub head: String,
    #[serde(rename = "break")]
    pub first_break: Option<ChainBreakView>,
    /// Signed checkpoints the chain was checked against (`checkpoint` breaks name a mismatch).
    #[serde(default)]
    pub checkpoints: u64,
    /// The newest checkpoint's record: records after it are covered by the chain alone.
    #[serde(default)]
    pub checkpointed_to: Option<u64>,
}
