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

mod bound;

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
mod tests;
