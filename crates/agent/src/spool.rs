//! The audit spool: every event is appended to a file and flushed to disk (`fdatasync`) before
//! the action it records takes effect, then delivered to the server in batches and deleted only
//! after the server confirmed it. The server ingests by event id, so a batch sent twice (after a
//! crash between send and delete) is stored once.
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
    pending: u64,
}

const CURRENT: &str = "current.jsonl";

impl Spool {
    /// Opens (creating) the spool folder; events left from before a crash are kept.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let current = Self::open_current(dir)?;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            current,
            pending: 0,
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
        let mut lines = Vec::new();
        for e in events {
            serde_json::to_writer(&mut lines, e)?;
            lines.push(b'\n');
        }
        self.current.write_all(&lines)?;
        self.current.sync_data()?;
        self.pending += events.len() as u64;
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
            let name = format!("batch-{}.jsonl", uuid::Uuid::now_v7());
            fs::rename(&current, self.dir.join(name))?;
            self.current = Self::open_current(&self.dir)?;
            File::open(&self.dir)?.sync_all()?;
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
        let (_, rest) = spool.next_batch().unwrap().unwrap();
        assert_eq!(rest, vec![event(3)]);
        fs::remove_dir_all(dir).unwrap();
    }
}
