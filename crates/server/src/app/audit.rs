//! The audit trail: ingest from devices (idempotent by event id, in any order), pages for the
//! portal and the API, verification of the whole chain, and export.
//!
//! Must never: let a device write events in another device's name, or accept an event twice.

use elevate_core::audit::{self, AuditEvent, ChainedRecord};
use elevate_proto::v1::{AuditEventIn, ChainBreakView, IngestResult, VerifyReport};

use super::{App, AppError, Principal, Result, Role};

use elevate_proto::limits::{
    MAX_BATCH_EVENTS as MAX_BATCH, MAX_EVENT_DATA as MAX_DATA, MAX_EVENT_FIELD as MAX_FIELD,
};

/// Actions only the server records (for people's acts): a device reporting one is forging it.
const SERVER_ONLY: &[&str] = &[
    "offline.code_issued",
    "offline.code_unissued",
    "breakglass.reviewed",
];

fn check_event(device: &str, e: &AuditEventIn) -> Result<()> {
    if SERVER_ONLY.contains(&e.action.as_str()) {
        return Err(AppError::Forbidden(format!(
            "event {} is {:?}, which only the server records; a device cannot report it",
            e.id, e.action
        )));
    }
    let own = e.actor == format!("device:{device}") || e.actor.ends_with(&format!("@{device}"));
    if !own {
        return Err(AppError::Forbidden(format!(
            "event {} names actor {:?}; a device may only report its own events (device:{device} or user@{device})",
            e.id, e.actor
        )));
    }
    for (name, value) in [
        ("id", &e.id),
        ("actor", &e.actor),
        ("action", &e.action),
        ("subject", &e.subject),
    ] {
        if value.is_empty() || value.len() > MAX_FIELD {
            return Err(AppError::BadRequest(format!(
                "event field {name} must be 1 to {MAX_FIELD} bytes"
            )));
        }
    }
    Ok(())
}

impl App {
    /// Stores a batch of device events; events already stored are counted, not stored again.
    pub async fn ingest_audit(
        &self,
        caller: &Principal,
        events: &[AuditEventIn],
    ) -> Result<IngestResult> {
        let device = caller.device()?;
        if events.len() > MAX_BATCH {
            return Err(AppError::BadRequest(format!(
                "at most {MAX_BATCH} events per batch; split the batch"
            )));
        }
        let mut prepared = Vec::with_capacity(events.len());
        for e in events {
            check_event(&device.name, e)?;
            let data = e.data.to_string();
            if data.len() > MAX_DATA {
                return Err(AppError::BadRequest(format!(
                    "event {} carries more than {MAX_DATA} bytes of data",
                    e.id
                )));
            }
            prepared.push(AuditEvent {
                id: e.id.clone(),
                at: jiff::Timestamp::from_millisecond(e.at.as_millisecond())
                    .expect("a millisecond timestamp taken from a timestamp is valid"),
                actor: e.actor.clone(),
                action: e.action.clone(),
                subject: e.subject.clone(),
                data,
            });
        }
        let mut result = IngestResult {
            accepted: 0,
            duplicates: 0,
        };
        let mut tx = self.store.begin().await?;
        let mut used = Vec::new();
        let mut queued = false;
        let mut observed = Vec::new();
        for event in prepared {
            let code_used = event.action == "offline.code_used";
            let data = event.data.clone();
            let told = self.wants_device_event(&event).then(|| event.clone());
            let discovery =
                (event.action == super::discovery::DISCOVERY_COMMAND).then(|| event.clone());
            if tx.ingest_audit(event).await? {
                observed.extend(discovery);
                result.accepted += 1;
                if let Some(event) = told {
                    self.queue_device_event(&mut tx, &device.name, &event)
                        .await?;
                    queued = true;
                }
                if code_used {
                    used.push(data);
                }
            } else {
                result.duplicates += 1;
            }
        }
        self.observe_device_events(&mut tx, &device.name, &observed)
            .await?;
        tx.commit().await?;
        if queued {
            self.deliveries_due.notify_one();
        }
        self.reconcile_offline_codes(&device.id, &device.name, &used)
            .await?;
        Ok(result)
    }

    /// Every helpdesk code a device reports using must have been issued here for that device's
    /// challenge; one that was not (a leaked device secret, a forged code) is raised as an alert.
    async fn reconcile_offline_codes(
        &self,
        device_id: &str,
        device_name: &str,
        used: &[String],
    ) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        // (challenge, break-glass share number or none) of every code issued for the device.
        let issued: Vec<(String, Option<u64>)> = self
            .store
            .audit_for_subject(&format!("device:{device_id}"))
            .await?
            .into_iter()
            .filter(|r| {
                r.event.action == "offline.code_issued" && r.event.actor.starts_with("account:")
            })
            .filter_map(|r| {
                let data: serde_json::Value = serde_json::from_str(&r.event.data).ok()?;
                Some((
                    data["challenge"].as_str()?.to_owned(),
                    data["share"].as_u64(),
                ))
            })
            .collect();
        for data in used {
            let data: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
            let challenge = data["challenge"].as_str().unwrap_or("");
            // Break glass: two or more different members' shares, each issued for this
            // challenge; any other code: issued for this challenge, and not as a share.
            let fits = if data["scope"] == "break-glass" {
                let mut shares: Vec<u64> = data["shares"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                    .unwrap_or_default();
                shares.sort_unstable();
                shares.dedup();
                shares.len() >= 2
                    && shares.iter().all(|n| {
                        issued
                            .iter()
                            .any(|(c, share)| c == challenge && *share == Some(*n))
                    })
            } else {
                issued
                    .iter()
                    .any(|(c, share)| c == challenge && share.is_none())
            };
            if fits {
                continue;
            }
            let mut tx = self.store.begin().await?;
            tx.append_audit(self.event(
                "system",
                "offline.code_unissued",
                format!("device:{device_id}"),
                serde_json::json!({ "device": device_name, "challenge": challenge,
                    "user": data["user"], "uid": data["uid"], "alert": true,
                    "message": "the device used an offline code that this server never issued for this challenge" }),
            ))
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub async fn audit_page(
        &self,
        caller: &Principal,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChainedRecord>> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        Ok(self.store.audit_page(after, limit.clamp(1, 10_000)).await?)
    }

    /// Verifies the whole chain against the stored head.
    pub async fn verify_audit(&self, caller: &Principal) -> Result<VerifyReport> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        self.verify_chain().await
    }

    pub(crate) async fn verify_chain(&self) -> Result<VerifyReport> {
        let chain = self.store.audit_chain().await?;
        let count = chain.records.len() as u64;
        let broken = |head: String, first: ChainBreakView| VerifyReport {
            ok: false,
            count,
            head,
            first_break: Some(first),
            checkpoints: 0,
            checkpointed_to: None,
        };
        let head = match audit::verify(&chain.records, Some(&chain.head)) {
            Ok(head) => head,
            Err(b) => {
                return Ok(broken(
                    chain.head.hash,
                    ChainBreakView {
                        seq: b.seq,
                        event_id: b.event_id,
                        kind: b.kind.as_str().to_string(),
                        message: b.message,
                    },
                ))
            }
        };
        // A consistent chain may still be a recomputed one: the signed checkpoints say.
        Ok(match self.check_checkpoints(&chain.records).await? {
            Ok(checked) => VerifyReport {
                ok: true,
                count,
                head: head.hash,
                first_break: None,
                checkpoints: checked.count,
                checkpointed_to: checked.last,
            },
            Err(first) => broken(head.hash, first),
        })
    }
}

/// One CSV cell: quoted, quotes doubled, and a leading `= + - @` (or tab/CR) defused with `'` so
/// spreadsheets do not run it as a formula (security invariant 8).
pub fn csv_cell(text: &str) -> String {
    let defused = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

impl App {
    /// The whole chain as `application/x-ndjson` or `text/csv`.
    pub async fn export_audit(
        &self,
        caller: &Principal,
        format: &str,
    ) -> Result<(&'static str, String)> {
        caller.require(&[Role::Admin, Role::Auditor])?;
        if format != "jsonl" && format != "csv" {
            return Err(AppError::BadRequest(format!(
                "unknown export format {format:?}; use jsonl or csv"
            )));
        }
        let chain = self.store.audit_chain().await?;
        let mut out = String::new();
        if format == "csv" {
            out.push_str("seq,id,at,actor,action,subject,data,prev_hash,hash\n");
        }
        for r in chain.records {
            let r = elevate_proto::v1::AuditRecord::from(r);
            if format == "jsonl" {
                out.push_str(&serde_json::to_string(&r).map_err(anyhow::Error::from)?);
            } else {
                let cells = [
                    r.seq.to_string(),
                    r.id,
                    r.at.to_string(),
                    r.actor,
                    r.action,
                    r.subject,
                    r.data,
                    r.prev_hash,
                    r.hash,
                ];
                out.push_str(
                    &cells
                        .iter()
                        .map(|c| csv_cell(c))
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            out.push('\n');
        }
        Ok((
            if format == "csv" {
                "text/csv; charset=utf-8"
            } else {
                "application/x-ndjson"
            },
            out,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        for (input, expect) in [
            ("plain", "\"plain\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("=cmd|' /C calc'!A0", "\"'=cmd|' /C calc'!A0\""),
            ("+1", "\"'+1\""),
            ("-x", "\"'-x\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("a,b\nc", "\"a,b\nc\""),
        ] {
            assert_eq!(csv_cell(input), expect, "{input}");
        }
    }
}
