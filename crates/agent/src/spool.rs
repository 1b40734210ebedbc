//! The audit spool: every event is appended to a file and flushed to disk (`fdatasync`) before
//! the action it records takes effect, then delivered to the server in batches and deleted only
//! after the server confirmed it. The server ingests by event id, so a batch sent twice (after a
//! crash between send and delete) is stored once.
//!
//! Events that record something already over (a command's exit) gate nothing, so they are
//! written at once but flushed with the next flush: the next gating event, the closing of a
//! batch, or the delivery loop shortly after (`append_after_the_fact`). That keeps an
//! `fdatasync` off the path between one command's end and the next command's start.
//!
//! **Bound.** The spool holds at most `max_bytes` of events the server has not confirmed (a
//! device offline for weeks must not fill its disk). When an event would pass the bound, the
//! oldest batches' discovery events (`discovery.*`: what was observed, not what was allowed)
//! are replaced, batch by batch, by one `discovery.summarised` event each that counts them per
//! user and program; audit events are never dropped. If that is not enough, events that gate an
//! action are refused — so is the action (fail closed) — while records of what already
//! happened are still written. Each time the bound is reached, one `spool.full` alert is
//! spooled. A disk that is full refuses the same way, and a write cut short is cut back off
//! the file, so what was spooled before stays readable. A reserve file keeps room on the disk
//! for the end of what was already allowed.
//!
//! **Bounded events.** Every event is bounded on its way in (`elevate_proto::limits`), so no
//! line is too large for the server; a batch file closes at `limits::BATCH_BYTES`. Events the
//! server refuses for good are set aside alone in `rejected-` files (the rest of their batch
//! is delivered): those count against the bound and are summarised first when it is reached.
//!
//! Must never: acknowledge an event before it is on disk, delete one the server has not
//! confirmed, or drop an audit (non-discovery) event to make room.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use elevate_proto::limits;
use elevate_proto::v1::AuditEventIn;

/// Events waiting for the server, in files under `dir`.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    current: File,
    /// Events in the current file.
    current_events: u64,
    pending: u64,
    /// Bytes of the files holding unconfirmed events.
    bytes: u64,
    /// Written but not yet flushed (only after-the-fact events).
    unsynced: bool,
    /// The bound on `bytes`.
    max_bytes: u64,
    /// Who the spool's own events (summaries, alerts) are from: `agent@<device>`.
    actor: String,
    /// Whether the bound was reached since the server's confirmations last brought the spool
    /// below half of it (one alert each time).
    full: bool,
    /// Discovery events replaced by summaries since the agent started.
    summarised: u64,
    /// Batches already looked at that hold nothing to summarise (not read again).
    nothing_to_summarise: std::collections::HashSet<PathBuf>,
    /// A failed write could not be undone: no action is acknowledged any more (fail closed)
    /// until the agent restarts.
    broken: bool,
}

const CURRENT: &str = "current.jsonl";
/// The next current file, made before the current one is closed.
const NEXT: &str = "current.next";
/// Disk space kept for records of what already happened (see `ensure_reserve`).
const RESERVE: &str = "reserve";
const RESERVE_BYTES: usize = 256 * 1024;
/// Events per batch file (the server takes at most 1000 per call).
const BATCH_EVENTS: u64 = 500;
/// The default bound: a quarter of a GiB holds about a million events.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Events the current file must hold before `make_room` closes it to summarise it.
const MIN_SUMMARY_BATCH: u64 = 50;
/// Users and programs named one by one in a summary; the rest are counted together.
const SUMMARY_ENTRIES: usize = 100;

/// What the spool holds, for `elevate status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub events: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub summarised: u64,
}

impl Spool {
    /// Opens (creating) the spool folder with the default bound; events left from before a
    /// crash are kept.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        // A summary being written when the agent died: the batch it was for is still whole.
        for entry in fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                fs::remove_file(entry.path())?;
            }
        }
        // The agent died while closing the current file: the next one holds nothing yet.
        let next = dir.join(NEXT);
        if next.exists() {
            if !dir.join(CURRENT).exists() {
                fs::rename(&next, dir.join(CURRENT))?;
            } else if fs::metadata(&next)?.len() == 0 {
                fs::remove_file(&next)?;
            } else {
                // It was the current file already (the folder's renames were lost): a batch.
                let batch = dir.join(format!("batch-{}.jsonl", uuid::Uuid::now_v7()));
                fs::rename(&next, batch)?;
            }
        }
        let mut current = Self::open_current(dir)?;
        // A crash mid-write leaves a torn last line: end it, so the next event starts cleanly.
        let len = current.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            std::os::unix::fs::FileExt::read_at(
                &File::open(dir.join(CURRENT))?,
                &mut last,
                len - 1,
            )?;
            if last[0] != b'\n' {
                current.write_all(b"\n")?;
                current.sync_data()?;
            }
        }
        let current_events = read_events(&dir.join(CURRENT))?.len() as u64;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            current,
            current_events,
            pending: 0,
            bytes: 0,
            unsynced: false,
            max_bytes: DEFAULT_MAX_BYTES,
            actor: "agent@unknown".into(),
            full: false,
            summarised: 0,
            nothing_to_summarise: std::collections::HashSet::new(),
            broken: false,
        };
        (spool.pending, spool.bytes) = spool.count()?;
        if let Err(e) = spool.ensure_reserve() {
            tracing::error!(error = %e, "no reserve for the audit spool yet");
        }
        Ok(spool)
    }

    /// Sets the bound and who the spool's own events are from.
    pub fn set_limit(&mut self, max_bytes: u64, actor: &str) {
        self.max_bytes = max_bytes;
        self.actor = actor.to_owned();
    }

    fn open_current(dir: &Path) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join(CURRENT))
    }

    /// Appends events and flushes them to disk. Only after `Ok` may the action happen; an
    /// error of kind `StorageFull` means the spool is at its bound or the disk is full.
    pub fn append(&mut self, events: &[AuditEventIn]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "the audit spool could not undo a failed write; elevation is refused until the agent is restarted",
            ));
        }
        let lines = lines(events)?;
        // No action without room to record its end.
        self.ensure_reserve()?;
        if !self.make_room(lines.len() as u64)? {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "the audit spool is full: {} MiB of events wait for the server, which cannot be reached; elevation is refused until they are delivered",
                    self.bytes / (1024 * 1024)
                ),
            ));
        }
        self.close_when_full(lines.len())?;
        let before = (
            self.current.metadata()?.len(),
            self.pending,
            self.bytes,
            self.current_events,
        );
        self.write(&lines, events.len() as u64)?;
        if let Err(e) = self.current.sync_data() {
            // Not on disk, so not acknowledged: the action is refused, and its events must not
            // reach the server as if it had happened.
            self.cut(before.0);
            (self.pending, self.bytes, self.current_events) = (before.1, before.2, before.3);
            return Err(self.disk_full(e));
        }
        self.unsynced = false;
        Ok(())
    }

    /// Appends events that record something already over; flushed by the next `append`, the
    /// next batch, or `flush` (the delivery loop calls it within a fraction of a second). They
    /// are written even past the bound: what happened is never dropped.
    pub fn append_after_the_fact(&mut self, events: &[AuditEventIn]) -> io::Result<()> {
        let lines = lines(events)?;
        // Best effort: what happened is written even when no room could be made.
        if let Err(e) = self.make_room(lines.len() as u64) {
            tracing::error!(error = %e, "cannot make room in the audit spool");
        }
        if let Err(e) = self.write(&lines, events.len() as u64) {
            if !is_full(&e) {
                return Err(e);
            }
            // The disk is full: the reserve is there for this.
            tracing::error!("the disk that holds the audit spool is full; using its reserve");
            let _ = fs::remove_file(self.dir.join(RESERVE));
            self.write(&lines, events.len() as u64)?;
        }
        self.unsynced = true;
        Ok(())
    }

    /// Keeps `RESERVE_BYTES` of the disk for the spool: when the disk fills up, records of
    /// what already happened (an allowed command's end) still fit, and no action is allowed
    /// until the reserve is whole again.
    fn ensure_reserve(&self) -> io::Result<()> {
        let path = self.dir.join(RESERVE);
        if fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
            return Ok(());
        }
        let made = (|| {
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            // Not zeros: a compressing file system would store them in no space at all.
            let mut filler = Vec::with_capacity(RESERVE_BYTES);
            while filler.len() < RESERVE_BYTES {
                filler.extend_from_slice(uuid::Uuid::now_v7().as_bytes());
            }
            file.write_all(&filler)?;
            file.sync_data()
        })();
        if let Err(e) = made {
            let _ = fs::remove_file(&path);
            return Err(self.disk_full(e));
        }
        Ok(())
    }

    /// Appends events that gate nothing but must reach the server (the agent's own alerts),
    /// flushed at once: past the bound, and with the reserve on a full disk, like
    /// `append_after_the_fact`.
    pub fn append_record(&mut self, events: &[AuditEventIn]) -> io::Result<()> {
        self.append_after_the_fact(events)?;
        self.flush()
    }

    /// Flushes events written by `append_after_the_fact`.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.current.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Writes whole lines or nothing: a write cut short (a full disk) is cut back off, so the
    /// next event does not continue a torn line and make both unreadable.
    fn write(&mut self, lines: &[u8], count: u64) -> io::Result<()> {
        self.close_when_full(lines.len())?;
        let before = self.current.metadata()?.len();
        if let Err(e) = self.current.write_all(lines) {
            self.cut(before);
            return Err(self.disk_full(e));
        }
        self.unsynced = true;
        self.pending += count;
        self.bytes += lines.len() as u64;
        self.current_events += count;
        Ok(())
    }

    /// Closes the current file into a batch when `len` more bytes would make it more than one
    /// call to the server takes (`BATCH_EVENTS` events, `limits::BATCH_BYTES` bytes).
    fn close_when_full(&mut self, len: usize) -> io::Result<()> {
        if self.current_events == 0 {
            return Ok(());
        }
        let size = self.current.metadata()?.len() + len as u64;
        if self.current_events >= BATCH_EVENTS || size > limits::BATCH_BYTES as u64 {
            self.close_current()?;
        }
        Ok(())
    }

    /// Cuts the current file back to `len` (a write that did not complete). If even that fails,
    /// the torn line is ended, so that the next event starts a line of its own.
    fn cut(&mut self, len: u64) {
        if let Err(e) = self.current.set_len(len) {
            tracing::error!(error = %e, "cannot cut a torn event off the audit spool");
            let _ = self.current.write_all(b"\n");
            // What stays in the file may be an action that was refused: nothing more is
            // acknowledged until the agent starts again and reads the spool afresh.
            self.broken = true;
        }
    }

    /// Says which disk is full, and what to do, when that is the error.
    fn disk_full(&self, e: io::Error) -> io::Error {
        if !is_full(&e) {
            return e;
        }
        io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "the disk that holds the audit spool ({}) is full; elevation is refused until there is space ({e})",
                self.dir.display()
            ),
        )
    }

    /// Makes room for `len` more bytes within the bound, summarising the oldest discovery
    /// events if needed. Returns whether the room is there; the first time in a while that the
    /// bound is reached, a `spool.full` alert is written (past the bound: it is small).
    fn make_room(&mut self, len: u64) -> io::Result<bool> {
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
    fn summarise(&mut self, batch: &Path) -> io::Result<()> {
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
    fn summary(&self, found: &[AuditEventIn]) -> AuditEventIn {
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

    fn own_event(&self, action: &str, data: serde_json::Value) -> AuditEventIn {
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

    /// Closes the current file into a batch of its own.
    /// The next current file is made first, so that a failure (no file descriptors, no
    /// inodes) leaves the spool as it was rather than writing on into a closed batch.
    fn close_current(&mut self) -> io::Result<()> {
        self.flush()?;
        let next = self.dir.join(NEXT);
        let fresh = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&next)?;
        fresh.set_len(0)?;
        let batch = self
            .dir
            .join(format!("batch-{}.jsonl", uuid::Uuid::now_v7()));
        fs::rename(self.dir.join(CURRENT), &batch)?;
        if let Err(e) = fs::rename(&next, self.dir.join(CURRENT)) {
            // The file stays the current one: it must not be sent (and deleted) while it is
            // still written to.
            tracing::error!(error = %e, "cannot start a new audit spool file");
            if fs::rename(&batch, self.dir.join(CURRENT)).is_err() {
                // The file is a closed batch now: nothing more may go into it.
                self.broken = true;
            }
            return Err(e);
        }
        self.current = fresh;
        self.current_events = 0;
        File::open(&self.dir)?.sync_all()
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
    fn summarise_rejected(&mut self, file: &Path) -> io::Result<()> {
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
    fn rejected(&self) -> io::Result<Vec<PathBuf>> {
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

    /// Events not yet confirmed by the server.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn usage(&self) -> Usage {
        Usage {
            events: self.pending,
            bytes: self.bytes,
            max_bytes: self.max_bytes,
            summarised: self.summarised,
        }
    }

    /// Closed batches, oldest first: `batch-<uuid v7>.jsonl`, or `sending-<uuid v7>.jsonl` once
    /// offered to the server.
    fn batches(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<(String, PathBuf)> = fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter_map(|p| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                let id = name
                    .strip_prefix("batch-")
                    .or_else(|| name.strip_prefix(SENDING))?;
                id.ends_with(".jsonl").then(|| (id.to_owned(), p.clone()))
            })
            .collect();
        files.sort();
        Ok(files.into_iter().map(|(_, p)| p).collect())
    }

    /// Events and bytes in the spool's files.
    fn count(&self) -> io::Result<(u64, u64)> {
        let (mut events, mut bytes) = (0, 0);
        for file in self.batches()?.into_iter().chain([self.dir.join(CURRENT)]) {
            events += read_events(&file)?.len() as u64;
            bytes += fs::metadata(&file).map_or(0, |m| m.len());
        }
        // Events the server refused wait for nobody, but take room on the disk all the same.
        for file in self.rejected()? {
            bytes += fs::metadata(&file).map_or(0, |m| m.len());
        }
        Ok((events, bytes))
    }

    /// The oldest batch to send: a closed batch file, or the current file closed into one.
    /// It is renamed `sending-…` first: from then on the server may hold its events, so it is
    /// never summarised, even after the agent is killed.
    pub fn next_batch(&mut self) -> io::Result<Option<(PathBuf, Vec<AuditEventIn>)>> {
        if self.batches()?.is_empty() {
            if self.current_events == 0 {
                return Ok(None);
            }
            self.close_current()?;
        }
        let Some(oldest) = self.batches()?.into_iter().next() else {
            return Ok(None);
        };
        let oldest = if is_sending(&oldest) {
            oldest
        } else {
            let name = oldest
                .file_name()
                .map(|n| n.to_string_lossy().replacen("batch-", SENDING, 1))
                .unwrap_or_default();
            let sending = self.dir.join(name);
            // Not followed by a folder fsync: a crash of the agent keeps the rename (the kernel
            // has it), and a power cut that loses it can at worst let a summary count events the
            // server also holds; never lose one. The send path stays off the disk's flush.
            fs::rename(&oldest, &sending)?;
            self.nothing_to_summarise.remove(&oldest);
            sending
        };
        let events = read_events(&oldest)?;
        Ok(Some((oldest, events)))
    }

    /// The server confirmed a batch: delete it.
    pub fn confirm(&mut self, batch: &Path, count: usize) -> io::Result<()> {
        let len = fs::metadata(batch)?.len();
        fs::remove_file(batch)?;
        self.sent(count, len);
        Ok(())
    }

    fn sent(&mut self, count: usize, len: u64) {
        self.pending = self.pending.saturating_sub(count as u64);
        self.bytes = self.bytes.saturating_sub(len);
        // The server takes events again: the next time the bound is reached is news.
        if self.bytes < self.max_bytes / 2 {
            self.full = false;
        }
    }
}

/// The name a batch takes once offered to the server.
const SENDING: &str = "sending-";
/// The name of a file of events the server refused.
const REJECTED: &str = "rejected-";

fn is_sending(batch: &Path) -> bool {
    batch
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(SENDING))
}

/// Discovery events, which a summary may replace: never a summary, and never the record that
/// Linux audit events were dropped.
fn summarisable(action: &str) -> bool {
    action.starts_with("discovery.") && action != SUMMARISED && action != "discovery.dropped"
}

/// A full disk, a full quota, or a file past its size limit: the disk refuses more.
fn is_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || matches!(
            e.raw_os_error(),
            Some(libc_codes::EDQUOT | libc_codes::EFBIG | libc_codes::ENOSPC)
        )
}

/// The errno values `is_full` knows (Linux).
mod libc_codes {
    pub const EFBIG: i32 = 27;
    pub const ENOSPC: i32 = 28;
    pub const EDQUOT: i32 = 122;
}

/// What a spool summary is called.
pub const SUMMARISED: &str = "discovery.summarised";

/// Events as spool lines, each bounded (`elevate_proto::limits`): whatever a caller put into
/// an event, no line is too large for the server to take.
fn lines(events: &[AuditEventIn]) -> io::Result<Vec<u8>> {
    let mut lines = Vec::new();
    for e in events {
        let mut data = e.data.clone();
        limits::bound_data(&mut data);
        let bounded = AuditEventIn { data, ..e.clone() };
        serde_json::to_writer(&mut lines, &bounded)?;
        lines.push(b'\n');
    }
    Ok(lines)
}

/// Events in one file; a torn last line (crash mid-write) is skipped, never the others.
fn read_events(path: &Path) -> io::Result<Vec<AuditEventIn>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    // By bytes: a line cut short inside a character is not UTF-8, and must be skipped like any
    // other torn line rather than stop the whole file from being read.
    let mut out = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        if let Ok(event) = serde_json::from_slice(&line?) {
            out.push(event);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> AuditEventIn {
        AuditEventIn {
            id: format!("e{n}"),
            at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            actor: "user:alice@d".into(),
            action: "request.created".into(),
            subject: "request:x".into(),
            data: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn events_survive_reopening_and_leave_only_when_confirmed() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        spool.append(&[event(1), event(2)]).unwrap();
        drop(spool);
        // A crash left half a line behind.
        fs::OpenOptions::new()
            .append(true)
            .open(dir.join(CURRENT))
            .unwrap()
            .write_all(b"{\"id\":")
            .unwrap();
        let mut spool = Spool::open(&dir).unwrap();
        assert_eq!(spool.pending(), 2);
        let (batch, events) = spool.next_batch().unwrap().unwrap();
        assert_eq!(events, vec![event(1), event(2)]);
        // New events go to a new file while the batch is out.
        spool.append(&[event(3)]).unwrap();
        // Not confirmed: the same batch comes again.
        let (again, _) = spool.next_batch().unwrap().unwrap();
        assert_eq!(again, batch);
        spool.confirm(&batch, events.len()).unwrap();
        // An exit recorded after the fact travels in the same batch as the event before it.
        spool.append_after_the_fact(&[event(4)]).unwrap();
        assert_eq!(spool.pending(), 2);
        let (_, rest) = spool.next_batch().unwrap().unwrap();
        assert_eq!(rest, vec![event(3), event(4)]);
        assert!(!spool.unsynced, "closing a batch flushes it");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn batches_stay_small_and_refused_events_are_kept_aside() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        for n in 0..(BATCH_EVENTS as u32 + 10) {
            spool.append(&[event(n)]).unwrap();
        }
        let (first, events) = spool.next_batch().unwrap().unwrap();
        assert_eq!(events.len() as u64, BATCH_EVENTS);
        let bytes = spool.usage().bytes;
        let kept = spool
            .set_aside(&first, events.len(), &events[7..9])
            .unwrap()
            .expect("a file of refused events");
        assert_eq!(spool.pending(), 10);
        assert_eq!(read_events(&dir.join(&kept)).unwrap(), events[7..9]);
        let on_disk: u64 = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != RESERVE)
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(
            spool.usage().bytes,
            on_disk,
            "refused events count against the bound"
        );
        assert!(spool.usage().bytes < bytes);
        let (_, rest) = spool.next_batch().unwrap().unwrap();
        assert_eq!(rest.len(), 10);
        // Counted the same after a restart.
        drop(spool);
        let spool = Spool::open(&dir).unwrap();
        assert_eq!(spool.usage().bytes, on_disk);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_batch_closes_before_it_outgrows_one_call_to_the_server() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        let mut big = event(0);
        big.data =
            serde_json::json!({ "args": vec!["a".repeat(4000); 4], "cwd": "/".repeat(1 << 20) });
        for n in 0..60 {
            big.id = format!("e{n}");
            spool.append(&[big.clone()]).unwrap();
        }
        let mut total = 0;
        while let Some((batch, events)) = spool.next_batch().unwrap() {
            assert!(fs::metadata(&batch).unwrap().len() <= limits::BATCH_BYTES as u64);
            // Each event was bounded on its way in.
            assert!(events.iter().all(|e| e.data["cwd"]["bytes"] == 1 << 20));
            total += events.len();
            spool.confirm(&batch, events.len()).unwrap();
        }
        assert_eq!(total, 60);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn at_the_bound_refused_events_are_summarised_first() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        spool.set_limit(64 * 1024, "agent@d");
        for n in 0..100 {
            spool.append(&[event(n)]).unwrap();
        }
        let (batch, events) = spool.next_batch().unwrap().unwrap();
        spool.set_aside(&batch, events.len(), &events).unwrap();
        assert_eq!(spool.pending(), 0);
        let mut n = 1000;
        while spool.rejected().unwrap().len() == 1 {
            spool.append_after_the_fact(&[found(n)]).unwrap();
            n += 1;
            assert!(n < 10_000, "the refused events were never summarised");
        }
        spool.flush().unwrap();
        let events = all(&spool);
        let summary: Vec<_> = events
            .iter()
            .filter(|e| e.action == "spool.rejected_summarised")
            .collect();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].data["events"], 100);
        assert_eq!(summary[0].data["actions"]["request.created"], 100);
        assert_eq!(summary[0].data["alert"], true);
        assert!(spool.usage().bytes <= 64 * 1024);
        fs::remove_dir_all(dir).unwrap();
    }

    fn found(n: u32) -> AuditEventIn {
        AuditEventIn {
            id: format!("d{n}"),
            at: jiff::Timestamp::from_second(1_800_000_000 + i64::from(n)).unwrap(),
            actor: "agent@d".into(),
            action: "discovery.command".into(),
            subject: format!("exec:d{n}"),
            data: serde_json::json!({ "user": if n.is_multiple_of(2) { "carol" } else { "dave" },
                "target": { "path": format!("/usr/bin/tool{}", n % 3) }, "pad": "x".repeat(300) }),
        }
    }

    /// Every event in the spool's batches and current file.
    fn all(spool: &Spool) -> Vec<AuditEventIn> {
        let mut out = Vec::new();
        for f in spool
            .batches()
            .unwrap()
            .into_iter()
            .chain([spool.dir.join(CURRENT)])
        {
            out.extend(read_events(&f).unwrap());
        }
        out
    }

    #[test]
    fn a_full_spool_summarises_discovery_and_keeps_every_audit_event() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        spool.set_limit(64 * 1024, "agent@d");
        let (mut audit, mut discovery) = (0u32, 0u32);
        for n in 0..2000u32 {
            if n.is_multiple_of(10) {
                spool.append(&[event(n)]).unwrap();
                audit += 1;
            } else {
                spool.append_after_the_fact(&[found(n)]).unwrap();
                discovery += 1;
            }
        }
        spool.flush().unwrap();
        let usage = spool.usage();
        assert!(usage.bytes <= 64 * 1024, "{usage:?}");
        assert!(usage.summarised > 0);
        let events = all(&spool);
        assert_eq!(
            usage.events,
            events.len() as u64,
            "the count follows the files"
        );
        // Every audit event is still there, once.
        let kept: Vec<_> = events
            .iter()
            .filter(|e| e.action == "request.created")
            .collect();
        assert_eq!(kept.len() as u32, audit);
        let mut ids: Vec<_> = kept.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len() as u32, audit);
        // Every discovery event is either there or counted in a summary.
        let left = events
            .iter()
            .filter(|e| e.action == "discovery.command")
            .count() as u64;
        let summaries: Vec<_> = events.iter().filter(|e| e.action == SUMMARISED).collect();
        let counted: u64 = summaries
            .iter()
            .map(|e| e.data["events"].as_u64().unwrap())
            .sum();
        assert_eq!(left + counted, u64::from(discovery));
        assert_eq!(counted, usage.summarised);
        let per_program: u64 = summaries
            .iter()
            .flat_map(|e| e.data["commands"].as_array().unwrap().iter())
            .map(|c| c["count"].as_u64().unwrap())
            .sum();
        assert_eq!(
            per_program, counted,
            "users and programs are counted one by one"
        );
        assert!(summaries.iter().all(|e| e.actor == "agent@d"));
        // One alert for the time the bound was reached, not one per event.
        let alerts: Vec<_> = events.iter().filter(|e| e.action == "spool.full").collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].data["alert"], true);
        assert_eq!(alerts[0].data["refusing"], false);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spool_full_of_audit_events_refuses_actions_until_the_server_takes_them() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        spool.set_limit(64 * 1024, "agent@d");
        let mut n = 0;
        let refused = loop {
            match spool.append(&[event(n)]) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 10_000, "the bound never refused");
        };
        assert_eq!(refused.kind(), io::ErrorKind::StorageFull);
        assert!(
            refused.to_string().contains("elevation is refused"),
            "{refused}"
        );
        // What already happened is still recorded, past the bound.
        spool.append_after_the_fact(&[event(100_000)]).unwrap();
        let events = all(&spool);
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == "request.created")
                .count(),
            n as usize + 1
        );
        let alerts: Vec<_> = events.iter().filter(|e| e.action == "spool.full").collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].data["refusing"], true);
        // The server takes the batches: actions may go on.
        while let Some((batch, sent)) = spool.next_batch().unwrap() {
            spool.confirm(&batch, sent.len()).unwrap();
        }
        assert_eq!(spool.usage().bytes, 0);
        spool.append(&[event(200_000)]).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_batch_being_sent_is_not_summarised_and_a_torn_summary_is_dropped() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        spool.set_limit(64 * 1024, "agent@d");
        for n in 0..100 {
            spool.append_after_the_fact(&[found(n)]).unwrap();
        }
        let (out, sent) = spool.next_batch().unwrap().unwrap();
        // The agent dies while the server stores the batch, and starts again: the batch may be
        // on the server, so it is sent again as it is, never summarised.
        drop(spool);
        let mut spool = Spool::open(&dir).unwrap();
        spool.set_limit(64 * 1024, "agent@d");
        for n in 100..400 {
            spool.append_after_the_fact(&[found(n)]).unwrap();
        }
        assert!(spool.usage().summarised > 0);
        let (again, resent) = spool.next_batch().unwrap().unwrap();
        assert_eq!((&again, &resent), (&out, &sent), "the same batch, first");
        assert_eq!(
            read_events(&out).unwrap(),
            sent,
            "the batch out is untouched"
        );
        spool.confirm(&out, sent.len()).unwrap();
        // The agent died while writing a summary: the batch it was for is whole.
        drop(spool);
        fs::write(dir.join("batch-0.partial"), b"{\"id\":").unwrap();
        let spool = Spool::open(&dir).unwrap();
        assert!(!dir.join("batch-0.partial").exists());
        assert_eq!(spool.usage().events, all(&spool).len() as u64);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_line_torn_inside_a_character_and_a_lost_rename_lose_nothing_else() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        spool.append(&[event(1)]).unwrap();
        drop(spool);
        // Cut short in the middle of "é" (0xC3 0xA9): not UTF-8.
        fs::OpenOptions::new()
            .append(true)
            .open(dir.join(CURRENT))
            .unwrap()
            .write_all(b"{\"id\":\"caf\xc3")
            .unwrap();
        // The folder lost a close's renames: the next file holds acknowledged events beside
        // the old current one.
        let mut next = lines(&[event(2)]).unwrap();
        next.extend(lines(&[event(3)]).unwrap());
        fs::write(dir.join(NEXT), next).unwrap();
        let mut spool = Spool::open(&dir).unwrap();
        spool.append(&[event(4)]).unwrap();
        let mut ids: Vec<String> = all(&spool).into_iter().map(|e| e.id).collect();
        ids.sort();
        assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
        assert_eq!(spool.usage().events, 4);
        fs::remove_dir_all(dir).unwrap();
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Whatever a crash, a full disk or a bad block leaves in the spool's files, the spool
        /// opens, counts exactly the events it can read, and delivers them.
        #[test]
        fn any_bytes_in_the_spool_are_read_without_panic(
            current in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            batch in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            good in 0u32..20,
        ) {
            let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
            fs::create_dir_all(&dir).unwrap();
            let mut valid = lines(&(0..good).map(event).collect::<Vec<_>>()).unwrap();
            valid.extend_from_slice(&batch);
            fs::write(dir.join("batch-0193a000-0000-7000-8000-000000000001.jsonl"), &valid).unwrap();
            fs::write(dir.join(CURRENT), &current).unwrap();
            let mut spool = Spool::open(&dir).unwrap();
            let readable = all(&spool).len() as u64;
            proptest::prop_assert_eq!(spool.pending(), readable);
            proptest::prop_assert!(readable >= u64::from(good));
            let mut sent = 0;
            while let Some((b, events)) = spool.next_batch().unwrap() {
                sent += events.len() as u64;
                spool.confirm(&b, events.len()).unwrap();
            }
            proptest::prop_assert_eq!(sent, readable);
            fs::remove_dir_all(dir).unwrap();
        }
    }
}
