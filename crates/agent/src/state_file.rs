//! The one way the agent replaces a file (its state, sudoers rules, sudo.conf): written beside
//! its final place under a name sudo skips (`.NAME.elevate-tmp`: sudo ignores names with a
//! `.`), flushed, given its mode, checked when the caller asks (`visudo -cf`), renamed over the
//! old file in one step, and the folder flushed, so that a crash leaves the old file or the new
//! one, never a mix, and a reader never sees a file that was not checked.
//!
//! Must never: put a file in place that its check refused, or leave the staged copy behind.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Replaces `path` with `bytes` (mode `mode`).
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    replace_checked(path, bytes, mode, |_| Ok(()))
}

/// Replaces `path` with `bytes` (mode 0600) in a folder only root may enter (0700, made if
/// needed): the agent's own secrets and state.
pub fn replace_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("a file path has a folder")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    replace(path, bytes, 0o600)
}

/// Replaces `path` with `bytes` (mode `mode`) once `check` has accepted the staged copy (its
/// path is given); a refusal leaves `path` as it was.
pub fn replace_checked(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    check: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = path.parent().context("a file without a folder")?;
    let staged = staging(path)?;
    let written = (|| -> anyhow::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&staged)
            .with_context(|| format!("cannot write {}", staged.display()))?;
        f.write_all(bytes)?;
        // Whatever the umask made of it.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        check(&staged)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&staged);
        return Err(e);
    }
    if let Err(e) = fs::rename(&staged, path) {
        let _ = fs::remove_file(&staged);
        return Err(e).with_context(|| format!("cannot replace {}", path.display()));
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot flush {}", dir.display()))
}

/// A list kept as JSON in `path` (a ledger): empty when the file does not exist yet, an error
/// naming the file when it cannot be read or is damaged (never taken as empty).
pub fn read_list<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `.NAME.elevate-tmp` beside `path`.
fn staging(path: &Path) -> anyhow::Result<PathBuf> {
    let dir = path.parent().context("a file without a folder")?;
    let name = path.file_name().context("a file without a name")?;
    Ok(dir.join(format!(".{}.elevate-tmp", name.to_string_lossy())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_file_is_replaced_whole_with_its_mode_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("elevate-state-{}", uuid::Uuid::now_v7()));
        let path = dir.join("state.json");
        replace_private(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        replace(&path, b"two", 0o440).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o440);
        // A refused check changes nothing and leaves nothing behind.
        let refused = replace_checked(&path, b"three", 0o440, |staged| {
            assert_eq!(fs::read(staged).unwrap(), b"three");
            anyhow::bail!("not valid")
        });
        assert!(refused.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
