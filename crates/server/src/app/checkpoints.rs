//! Signed checkpoints of the audit chain. Every little while the server signs the chain's head
//! (record `seq` has `hash`) with its Ed25519 key, which lives in a file, not in the database,
//! and keeps the checkpoint in the database and, the latest, in a file beside its keys. `audit
//! verify` then checks the chain against every checkpoint: whoever can write the database can
//! recompute a consistent chain, but not the signatures, and removing the checkpoints from the
//! database is seen against the file. What was appended after the last checkpoint (at most one
//! tick of the jobs) is covered only by the chain itself.
//!
//! Must never: sign what it has not read from the chain's head, or report a chain as verified
//! when a checkpoint does not match it.

use std::path::PathBuf;

use ed25519_dalek::Signer;
use elevate_proto::v1::ChainBreakView;

use super::{App, Result};
use crate::store::CheckpointRow;

/// What a checkpoint's signature covers first (never a bundle's or a grant's).
const CONTEXT: &str = "elevate audit checkpoint v1";
/// The latest checkpoint, outside the database.
const FILE: &str = "audit-checkpoint.json";

fn message(seq: u64, hash: &str, at: jiff::Timestamp) -> String {
    format!("{CONTEXT}\n{seq}\n{hash}\n{}", at.as_millisecond())
}

/// How the chain stands against its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Checkpoints that verified.
    pub count: u64,
    /// The newest one's `seq`.
    pub last: Option<u64>,
}

impl App {
    fn checkpoint_file(&self) -> PathBuf {
        self.settings.data_dir.join("keys").join(FILE)
    }

    /// Signs the chain's head unless it is signed already; the checkpoint, when a new one was
    /// made.
    pub async fn checkpoint_audit(&self) -> Result<Option<CheckpointRow>> {
        let head = self.store.audit_head().await?;
        if head.count == 0 {
            return Ok(None);
        }
        // Every tick: one row read, not the whole list of checkpoints.
        if self.store.latest_checkpoint().await? == Some(head.count) {
            return Ok(None);
        }
        // To the millisecond, as the database keeps it.
        let at = jiff::Timestamp::from_millisecond(self.now().as_millisecond())
            .map_err(anyhow::Error::from)?;
        let signature = self
            .keys
            .signing
            .sign(message(head.count, &head.hash, at).as_bytes());
        let checkpoint = CheckpointRow {
            seq: head.count,
            hash: head.hash,
            at,
            signature: hex::encode(signature.to_bytes()),
        };
        self.store.insert_checkpoint(&checkpoint).await?;
        let file = self.checkpoint_file();
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(anyhow::Error::from)?;
        }
        let staged = file.with_extension("staged");
        let text = serde_json::to_vec(&checkpoint).map_err(anyhow::Error::from)?;
        std::fs::write(&staged, text)
            .and_then(|()| std::fs::rename(&staged, &file))
            .map_err(anyhow::Error::from)?;
        Ok(Some(checkpoint))
    }

    /// Checks `records` (the verified chain) against every checkpoint in the database and the
    /// latest one in the file: each signed by this server, each matching the chain.
    pub(crate) async fn check_checkpoints(
        &self,
        records: &[elevate_core::audit::ChainedRecord],
    ) -> Result<std::result::Result<Checked, ChainBreakView>> {
        let mut checkpoints = self.store.checkpoints().await?;
        let outside: Option<CheckpointRow> = std::fs::read(self.checkpoint_file())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let newest = checkpoints.last().map(|c| c.seq);
        if let Some(kept) = outside {
            if newest.is_none_or(|n| n < kept.seq) {
                return Ok(Err(ChainBreakView {
                    seq: kept.seq,
                    event_id: None,
                    kind: "checkpoint".into(),
                    message: format!(
                        "checkpoints were removed from the database: the server signed record {} on {}, and the database's newest checkpoint is {}",
                        kept.seq,
                        kept.at,
                        newest.map_or("none".into(), |n| format!("record {n}"))
                    ),
                }));
            }
            if !checkpoints
                .iter()
                .any(|c| c.seq == kept.seq && c.signature == kept.signature)
            {
                checkpoints.push(kept);
            }
        }
        let key = self.keys.signing.verifying_key();
        for c in &checkpoints {
            let signed = elevate_proto::bundle::verify_signature(
                &key,
                message(c.seq, &c.hash, c.at).as_bytes(),
                &c.signature,
            );
            let broken = |message: String| ChainBreakView {
                seq: c.seq,
                event_id: None,
                kind: "checkpoint".into(),
                message,
            };
            if signed.is_err() {
                return Ok(Err(broken(format!(
                    "the checkpoint of record {} is not signed by this server: it was written into the database by someone else",
                    c.seq
                ))));
            }
            match records.iter().find(|r| r.seq == c.seq) {
                None => {
                    return Ok(Err(broken(format!(
                        "the server signed record {} on {}, and the chain is shorter: records were removed",
                        c.seq, c.at
                    ))))
                }
                Some(r) if r.hash != c.hash => {
                    return Ok(Err(broken(format!(
                        "the chain was rewritten: record {} is not what the server signed on {} (the chain was recomputed to hide it)",
                        c.seq, c.at
                    ))))
                }
                Some(_) => {}
            }
        }
        Ok(Ok(Checked {
            count: checkpoints.len() as u64,
            last: newest,
        }))
    }
}
