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

/// The audit page verifies the whole chain again when its last whole verification is older.
pub const FULL_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// How the audit page's check went: incremental (from record `after`, the whole chain last
/// verified at `full_at`) or whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recent {
    pub after: Option<u64>,
    pub full_at: jiff::Timestamp,
}

impl App {
    /// The audit page's check, which does not re-read the whole chain on every view: the
    /// records appended since this replica last verified the chain are verified from the head
    /// it verified then (the record at that head must be unchanged), and the newest signed
    /// checkpoint against its record. The first view, a view `FULL_EVERY` after the last whole
    /// verification, and any view that finds something amiss verify the whole chain instead
    /// (which also says exactly what broke); `audit verify` always does.
    pub async fn verify_audit_recent(
        &self,
        caller: &super::Principal,
    ) -> Result<(elevate_proto::v1::VerifyReport, Recent)> {
        caller.require(&[super::Role::Admin, super::Role::Auditor])?;
        let now = self.now();
        let mut verified = self.verified_head.lock().await;
        if let Some((start, full_at)) = verified.clone() {
            if now.duration_since(full_at) < FULL_EVERY {
                if let Some(report) = self.verify_after(&start).await? {
                    let head = elevate_core::audit::Head {
                        count: report.count,
                        hash: report.head.clone(),
                    };
                    *verified = Some((head, full_at));
                    let recent = Recent {
                        after: Some(start.count),
                        full_at,
                    };
                    return Ok((report, recent));
                }
            }
        }
        let report = self.verify_chain().await?;
        *verified = report.ok.then(|| {
            let head = elevate_core::audit::Head {
                count: report.count,
                hash: report.head.clone(),
            };
            (head, now)
        });
        Ok((
            report,
            Recent {
                after: None,
                full_at: now,
            },
        ))
    }

    /// The chain after `start` (a head verified before), or `None` when anything is amiss.
    async fn verify_after(
        &self,
        start: &elevate_core::audit::Head,
    ) -> Result<Option<elevate_proto::v1::VerifyReport>> {
        if start.count > 0
            && self.store.audit_hash(start.count).await?.as_deref() != Some(start.hash.as_str())
        {
            return Ok(None);
        }
        let head = self.store.audit_head().await?;
        let mut at = start.clone();
        while at.count < head.count {
            let page = self.store.audit_page(at.count, 10_000).await?;
            if page.is_empty() {
                break;
            }
            match elevate_core::audit::verify_from(&at, &page, None) {
                Ok(h) => at = h,
                Err(_) => return Ok(None),
            }
        }
        if at != head {
            return Ok(None);
        }
        let newest = self.store.newest_checkpoint().await?;
        let outside: Option<CheckpointRow> = std::fs::read(self.checkpoint_file())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if outside.is_some_and(|o| newest.as_ref().is_none_or(|n| n.seq < o.seq)) {
            return Ok(None);
        }
        if let Some(c) = &newest {
            let key = self.keys.signing.verifying_key();
            let signed = elevate_proto::bundle::verify_signature(
                &key,
                message(c.seq, &c.hash, c.at).as_bytes(),
                &c.signature,
            );
            if signed.is_err()
                || self.store.audit_hash(c.seq).await?.as_deref() != Some(c.hash.as_str())
            {
                return Ok(None);
            }
        }
        Ok(Some(elevate_proto::v1::VerifyReport {
            ok: true,
            count: head.count,
            head: head.hash,
            first_break: None,
            checkpoints: u64::from(newest.is_some()),
            checkpointed_to: newest.map(|c| c.seq),
        }))
    }
}
