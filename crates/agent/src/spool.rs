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
//! Must never: acknowledge an event before it is on disk, or delete one the server has not
//! confirmed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use elevate_proto::v1::AuditEventIn;

/// Events waiting for the server, in files under `dir`.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    current: File,
    /// Events in the current file.
    current_events: u64,
    pending: u64,
    /// Written but not yet flushed (only after-the-fact events).
    unsynced: bool,
}

const CURRENT: &str = "current.jsonl";
/// Events per batch file (the server takes at most 1000 per call).
const BATCH_EVENTS: u64 = 500;

impl Spool {
    /// Opens (creating) the spool folder; events left from before a crash are kept.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
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
            unsynced: false,
        };
        spool.pending = spool.count()?;
        Ok(spool)
    }

    fn open_current(dir: &Path) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join(CURRENT))
    }

    /// Appends events and flushes them to disk. Only after `Ok` may the action happen.
    pub fn append(&mut self, events: &[AuditEventIn]) -> io::Result<()> {
        self.write(events)?;
        self.current.sync_data()?;
        self.unsynced = false;
        Ok(())
    }

    /// Appends events that record something already over; flushed by the next `append`, the
    /// next batch, or `flush` (the delivery loop calls it within a fraction of a second).
    pub fn append_after_the_fact(&mut self, events: &[AuditEventIn]) -> io::Result<()> {
        self.write(events)?;
        self.unsynced = true;
        Ok(())
    }

    /// Flushes events written by `append_after_the_fact`.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.current.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    fn write(&mut self, events: &[AuditEventIn]) -> io::Result<()> {
        if self.current_events >= BATCH_EVENTS {
            self.close_current()?;
        }
        let mut lines = Vec::new();
        for e in events {
            serde_json::to_writer(&mut lines, e)?;
            lines.push(b'\n');
        }
        self.current.write_all(&lines)?;
        self.pending += events.len() as u64;
        self.current_events += events.len() as u64;
        Ok(())
    }

    /// Closes the current file into a batch of its own.
    fn close_current(&mut self) -> io::Result<()> {
        self.flush()?;
        let name = format!("batch-{}.jsonl", uuid::Uuid::now_v7());
        fs::rename(self.dir.join(CURRENT), self.dir.join(name))?;
        self.current = Self::open_current(&self.dir)?;
        self.current_events = 0;
        File::open(&self.dir)?.sync_all()
    }

    /// The server refused a batch for good: keep it aside (never deleted silently).
    pub fn reject(&mut self, batch: &Path, count: usize) -> io::Result<()> {
        let name = batch
            .file_name()
            .map(|n| n.to_string_lossy().replacen("batch-", "rejected-", 1))
            .unwrap_or_else(|| "rejected.jsonl".into());
        fs::rename(batch, self.dir.join(name))?;
        self.pending = self.pending.saturating_sub(count as u64);
        Ok(())
    }

    /// Events not yet confirmed by the server.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    fn batches(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("batch-"))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    fn count(&self) -> io::Result<u64> {
        let mut n = 0;
        for file in self.batches()?.into_iter().chain([self.dir.join(CURRENT)]) {
            n += read_events(&file)?.len() as u64;
        }
        Ok(n)
    }

    /// The oldest batch to send: a closed batch file, or the current file closed into one.
    pub fn next_batch(&mut self) -> io::Result<Option<(PathBuf, Vec<AuditEventIn>)>> {
        if self.batches()?.is_empty() {
            let current = self.dir.join(CURRENT);
            if fs::metadata(&current)?.len() == 0 {
                return Ok(None);
            }
            self.close_current()?;
        }
        let Some(oldest) = self.batches()?.into_iter().next() else {
            return Ok(None);
        };
        let events = read_events(&oldest)?;
        Ok(Some((oldest, events)))
    }

    /// The server confirmed a batch: delete it.
    pub fn confirm(&mut self, batch: &Path, count: usize) -> io::Result<()> {
        fs::remove_file(batch)?;
        self.pending = self.pending.saturating_sub(count as u64);
        Ok(())
    }
}

/// Events in one file; a torn last line (crash mid-write) is skipped, never the others.
fn read_events(path: &Path) -> io::Result<Vec<AuditEventIn>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        if let Ok(event) = serde_json::from_str(&line?) {
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
    fn batches_stay_small_and_refused_batches_are_kept_aside() {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        let mut spool = Spool::open(&dir).unwrap();
        for n in 0..(BATCH_EVENTS as u32 + 10) {
            spool.append(&[event(n)]).unwrap();
        }
        let (first, events) = spool.next_batch().unwrap().unwrap();
        assert_eq!(events.len() as u64, BATCH_EVENTS);
        spool.reject(&first, events.len()).unwrap();
        assert_eq!(spool.pending(), 10);
        let (_, rest) = spool.next_batch().unwrap().unwrap();
        assert_eq!(rest.len(), 10);
        let kept = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("rejected-"))
            .count();
        assert_eq!(kept, 1, "a refused batch is kept, not deleted");
        fs::remove_dir_all(dir).unwrap();
    }
}
