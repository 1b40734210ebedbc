//! The spool's bound: making room by summarising the oldest discovery events (audit events are
//! never dropped), the `spool.full` alert, and events the server refused for good, set aside
//! in `rejected-` files that count against the bound and are summarised first.
//!
//! Must never: drop or summarise an audit (non-discovery) event, or delete a refused event
//! without a summary that counts it.

use super::*;

impl Spool {
    /// Makes room for `len` more bytes within the bound, summarising the oldest discovery
    /// events if needed. Returns whether the room is there; the first time in a while that the
    /// bound is reached, a `spool.full` alert is written (past the bound: it is small).
    pub(super) fn make_room(&mut self, len: u64) -> io::Result<bool> {
        if self.bytes + len <= self.max_bytes {
            return Ok(true);
        }
        let before = (self.pending, self.bytes);
        // Make room for a while, not for one event: down to three quarters of the bound.
        let target = self.max_bytes / 4 * 3;
        // The current file is closed for summarising only once it holds a batch's worth: closing
        // it for every event would make a file per event, none of them worth a summary.
        if self.current_events >= MIN_SUMMARY_BATCH {
            self.close_current()?;
        }
        // Events the server refused can never reach it: summarised first.
        for file in self.rejected()? {
            if self.bytes + len <= target {
                break;
            }
            self.summarise_rejected(&file)?;
        }
        for batch in self.batches()? {
            if self.bytes + len <= target {
                break;
            }
            // A batch once offered to the server may be stored there: never summarised.
            if is_sending(&batch) || self.nothing_to_summarise.contains(&batch) {
                continue;
            }
            self.summarise(&batch)?;
        }
        let room = self.bytes + len <= self.max_bytes;
        if !self.full {
            let alert = self.own_event(
                "spool.full",
                serde_json::json!({
                    "alert": true,
                    "max_bytes": self.max_bytes,
                    "bytes_before": before.1,
                    "events_before": before.0,
                    "bytes_after": self.bytes,
                    "discovery_summarised": self.summarised,
                    "refusing": !room,
                    "message": if room {
                        "the audit spool reached its bound while the server could not be reached; the oldest discovery events were summarised"
                    } else {
                        "the audit spool is full of audit events the server has not confirmed; elevation is refused on this device until they are delivered"
                    },
                }),
            );
            let alert = lines(&[alert])?;
            self.write(&alert, 1)?;
            self.full = true;
        }
        Ok(room)
    }

    /// Replaces the discovery events of one closed batch by one summary event. The new batch
    /// is written beside the old one and renamed over it: a crash leaves one or the other.
    pub(super) fn summarise(&mut self, batch: &Path) -> io::Result<()> {
        let events = read_events(batch)?;
        let (found, kept): (Vec<_>, Vec<_>) =
            events.into_iter().partition(|e| summarisable(&e.action));
        // One event makes a summary no smaller.
        if found.len() < 2 {
            self.nothing_to_summarise.insert(batch.to_path_buf());
            return Ok(());
        }
        let old_len = fs::metadata(batch)?.len();
        let kept_count = kept.len() as u64;
        let mut out = kept;
        out.push(self.summary(&found));
        let text = lines(&out)?;
        let partial = batch.with_extension("partial");
        let written = (|| {
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&partial)?;
            file.write_all(&text)?;
            file.sync_data()
        })()
        .and_then(|()| fs::rename(&partial, batch));
        if let Err(e) = written {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
        self.pending =
            self.pending.saturating_sub(kept_count + found.len() as u64) + out.len() as u64;
        self.bytes = self.bytes.saturating_sub(old_len) + text.len() as u64;
        self.summarised += found.len() as u64;
        File::open(&self.dir)?.sync_all()
    }

    /// One event that counts discovery events per user and program, oldest and newest time.
    pub(super) fn summary(&self, found: &[AuditEventIn]) -> AuditEventIn {
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for e in found {
            let user = e.data["user"].as_str().unwrap_or(&e.actor).to_owned();
            let program = e.data["target"]["path"]
                .as_str()
                .unwrap_or(&e.action)
                .to_owned();
            *counts.entry((user, program)).or_default() += 1;
        }
        let mut counted: Vec<_> = counts.into_iter().collect();
        counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let others: u64 = counted.iter().skip(SUMMARY_ENTRIES).map(|c| c.1).sum();
        let named: Vec<_> = counted
            .iter()
            .take(SUMMARY_ENTRIES)
            .map(|((user, program), n)| {
                serde_json::json!({ "user": user, "program": program, "count": n })
            })
            .collect();
        let from = found.iter().map(|e| e.at).min();
        let to = found.iter().map(|e| e.at).max();
        self.own_event(
            SUMMARISED,
            serde_json::json!({
                "events": found.len(), "from": from, "to": to, "commands": named,
                "others": others,
                "reason": "the audit spool reached its bound while the server could not be reached",
            }),
        )
    }

    pub(super) fn own_event(&self, action: &str, data: serde_json::Value) -> AuditEventIn {
        let id = uuid::Uuid::now_v7().to_string();
        AuditEventIn {
            subject: format!("spool:{id}"),
            id,
            at: jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond())
                .expect("valid time"),
            actor: self.actor.clone(),
            action: action.into(),
            data,
        }
    }

    /// The server took a batch except for `refused`, events it will never take: those are kept
    /// aside in a `rejected-` file (never deleted silently; counted against the bound until
    /// summarised), and the batch is deleted. Returns the name of the file they are kept in.
    /// Done twice for the same batch (a crash before the delete), it writes the same file.
    pub fn set_aside(
        &mut self,
        batch: &Path,
        count: usize,
        refused: &[AuditEventIn],
    ) -> io::Result<Option<String>> {
        let mut kept = None;
        if !refused.is_empty() {
            let name = batch
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .replacen(SENDING, REJECTED, 1)
                        .replacen("batch-", REJECTED, 1)
                })
                .unwrap_or_else(|| format!("{REJECTED}{}.jsonl", uuid::Uuid::now_v7()));
            let text = lines(refused)?;
            let path = self.dir.join(&name);
            let partial = path.with_extension("partial");
            let written = (|| {
                let mut file = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .mode(0o600)
                    .open(&partial)?;
                file.write_all(&text)?;
                file.sync_data()?;
                fs::rename(&partial, &path)?;
                File::open(&self.dir)?.sync_all()
            })();
            if let Err(e) = written {
                let _ = fs::remove_file(&partial);
                return Err(e);
            }
            self.bytes += text.len() as u64;
            kept = Some(name);
        }
        self.confirm(batch, count)?;
        Ok(kept)
    }

    /// Replaces one file of events the server refused by one `spool.rejected_summarised` event
    /// that counts them per action (and gives the file's digest), to make room.
    pub(super) fn summarise_rejected(&mut self, file: &Path) -> io::Result<()> {
        let bytes = fs::read(file)?;
        let refused = read_events(file)?;
        let mut actions: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &refused {
            *actions.entry(e.action.as_str()).or_default() += 1;
        }
        let summary = self.own_event(
            "spool.rejected_summarised",
            serde_json::json!({
                "alert": true, "events": refused.len(), "actions": actions,
                "first": refused.first().map(|e| &e.id), "last": refused.last().map(|e| &e.id),
                "bytes": bytes.len(), "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
                "file": file.file_name().map(|n| n.to_string_lossy().into_owned()),
                "reason": "the audit spool reached its bound; events the server refused were summarised",
            }),
        );
        let summary = lines(&[summary])?;
        self.write(&summary, 1)?;
        self.flush()?;
        fs::remove_file(file)?;
        self.bytes = self.bytes.saturating_sub(bytes.len() as u64);
        File::open(&self.dir)?.sync_all()
    }

    /// Files of events the server refused, oldest first.
    pub(super) fn rejected(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(REJECTED) && n.ends_with(".jsonl")
                })
            })
            .collect();
        files.sort();
        Ok(files)
    }
}
