//! From what the user typed to the file that will run: search the agent's own PATH, open the
//! file once, check it (regular, owned by root, not writable by group or others, executable),
//! hash that open descriptor, and name it by the path the kernel opened.
//!
//! Must never: follow the caller's PATH, or look at the file again by path after opening it
//! (the descriptor is what gets hashed and executed).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};

use sha2::{Digest, Sha256};

/// The agent's PATH, used to find bare command names and given to the child.
pub const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An opened, checked and hashed binary.
#[derive(Debug)]
pub struct Resolved {
    /// The path the kernel opened (from `/proc/self/fd`), used for policy and audit.
    pub path: String,
    /// The path as typed, after the PATH lookup: what the program sees as `argv[0]` (it may
    /// be a link to `path` whose name makes the program do something else).
    pub invoked: String,
    pub file: OwnedFd,
    pub sha256: String,
    /// Starts with `#!`.
    pub script: bool,
}

/// Why a command cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("no command given")]
    Empty,
    #[error(
        "`{0}` is a relative path; give an absolute path or a command name from {SECURE_PATH}"
    )]
    Relative(String),
    #[error("`{0}` was not found in {SECURE_PATH}")]
    NotFound(String),
    #[error("{0} is not a regular file")]
    NotRegular(String),
    #[error("{0} does not name the file it opens (a mount namespace or a swap in progress); refusing it")]
    Spoofed(String),
    #[error("{path} is owned by uid {uid}, not root; only root-owned programs run elevated")]
    NotRootOwned { path: String, uid: u32 },
    #[error(
        "{path} is writable by its group or by others (mode {mode:o}); fix its permissions first"
    )]
    Writable { path: String, mode: u32 },
    #[error("{0} is on a filesystem its user may control ({1}); only programs on system filesystems run elevated")]
    UntrustedFilesystem(String, String),
    #[error("{0} is not executable")]
    NotExecutable(String),
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
}

fn io_error(path: &str, e: io::Error) -> ResolveError {
    match e.kind() {
        io::ErrorKind::NotFound => ResolveError::NotFound(path.to_string()),
        _ => ResolveError::Io {
            path: path.to_string(),
            message: e.to_string(),
        },
    }
}

/// Resolves, opens, checks and hashes `program`.
pub fn resolve(program: &str) -> Result<Resolved, ResolveError> {
    if program.is_empty() {
        return Err(ResolveError::Empty);
    }
    let (file, path, invoked) = if program.starts_with('/') {
        let (file, path) = open_exactly(program)?;
        (file, path, program.to_owned())
    } else if program.contains('/') {
        return Err(ResolveError::Relative(program.to_string()));
    } else {
        let mut found = None;
        for dir in SECURE_PATH.split(':') {
            let candidate = format!("{dir}/{program}");
            match open_exactly(&candidate) {
                Ok((file, path)) => {
                    found = Some((file, path, candidate));
                    break;
                }
                Err(ResolveError::NotFound(_)) | Err(ResolveError::NotRegular(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        found.ok_or_else(|| ResolveError::NotFound(program.to_string()))?
    };
    check(&file, &path)?;
    let (sha256, script) = hash(&file).map_err(|e| io_error(&path, e))?;
    Ok(Resolved {
        path,
        invoked,
        file: file.into(),
        sha256,
        script,
    })
}

/// Whether `caller` could look up `path` themselves: every folder on the way that exists must
/// be searchable by them. A path they cannot see is never described to them (whether it
/// exists, its owner and mode): the agent looks as root, and must not answer as root.
pub fn caller_may_see(path: &str, caller: &crate::users::Caller) -> bool {
    if caller.uid == 0 {
        return true;
    }
    let parents: Vec<&std::path::Path> = std::path::Path::new(path).ancestors().skip(1).collect();
    for dir in parents.into_iter().rev() {
        let Ok(meta) = std::fs::metadata(dir) else {
            // Missing from here on: anyone can tell that much.
            return true;
        };
        let bit = if meta.uid() == caller.uid {
            0o100
        } else if meta.gid() == caller.gid || in_group(meta.gid(), caller) {
            0o010
        } else {
            0o001
        };
        if meta.mode() & bit == 0 {
            return false;
        }
    }
    true
}

fn in_group(gid: u32, caller: &crate::users::Caller) -> bool {
    crate::users::group_name(gid).is_some_and(|g| caller.groups.contains(&g))
}

/// Opens a regular file without side effects and names it truthfully:
/// - no magic links (`/proc/<pid>/root/...` would let a user's own mount namespace put another
///   root-owned program under an allowed name);
/// - `O_PATH` first, so FIFOs and device nodes are never opened (no blocking, no driver side
///   effects, no controlling terminal), then the regular file is reopened for reading;
/// - the name the kernel reports must lead to the same inode in the agent's own view.
fn open_exactly(path: &str) -> Result<(File, String), ResolveError> {
    use rustix::fs::{fstat, open, openat2, stat, Mode, OFlags, ResolveFlags, CWD};
    let located = openat2(
        CWD,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| io_error(path, e.into()))?;
    let meta = fstat(&located).map_err(|e| io_error(path, e.into()))?;
    if rustix::fs::FileType::from_raw_mode(meta.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(ResolveError::NotRegular(path.to_string()));
    }
    let own = format!("/proc/self/fd/{}", located.as_raw_fd());
    let file: File = open(
        own.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| io_error(path, e.into()))?
    .into();
    let opened = fstat(&file).map_err(|e| io_error(path, e.into()))?;
    let name = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map(|p| p.display().to_string())
        .map_err(|e| io_error(path, e))?;
    let named = stat(name.as_str()).map_err(|_| ResolveError::Spoofed(path.to_string()))?;
    let same =
        |a: &rustix::fs::Stat, b: &rustix::fs::Stat| a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    if !same(&meta, &opened) || !same(&opened, &named) {
        return Err(ResolveError::Spoofed(path.to_string()));
    }
    Ok((file, name))
}

fn check(file: &File, path: &str) -> Result<(), ResolveError> {
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(ResolveError::NotRegular(path.to_string()));
    }
    if meta.uid() != 0 {
        return Err(ResolveError::NotRootOwned {
            path: path.to_string(),
            uid: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(ResolveError::Writable {
            path: path.to_string(),
            mode,
        });
    }
    if mode & 0o111 == 0 {
        return Err(ResolveError::NotExecutable(path.to_string()));
    }
    system_filesystem(file).map_err(|why| ResolveError::UntrustedFilesystem(path.to_string(), why))
}

/// `FUSE_SUPER_MAGIC`: a FUSE server (run by a user) answers for owners, modes and bytes.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Whether `fd` lies on a filesystem only root controls. FUSE filesystems report whatever
/// their server says, and filesystems users may mount themselves (udisks, fusermount) are
/// mounted `nosuid`: neither can vouch for an owner of root.
pub fn system_filesystem(fd: impl std::os::fd::AsFd) -> Result<(), String> {
    let vfs = rustix::fs::fstatvfs(&fd).map_err(|e| e.to_string())?;
    if vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID) {
        return Err("mounted nosuid, as filesystems users mount are".into());
    }
    let fs = rustix::fs::fstatfs(&fd).map_err(|e| e.to_string())?;
    if fs.f_type as i64 == FUSE_SUPER_MAGIC {
        return Err("a FUSE filesystem".into());
    }
    Ok(())
}

/// SHA-256 of the whole file read through the descriptor (positioned reads, so the offset
/// stays at 0), and whether it starts with `#!`.
/// SHA-256 of the file at `path`, read as `resolve` reads a binary.
pub fn file_sha256(path: &std::path::Path) -> io::Result<String> {
    hash(&File::open(path)?).map(|(digest, _)| digest)
}

/// Whether `path` (canonical) is a login shell the system lists in `/etc/shells`.
pub fn listed_shell(path: &str) -> bool {
    std::fs::read_to_string("/etc/shells")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .filter_map(|l| std::fs::canonicalize(l).ok())
        .any(|p| p == std::path::Path::new(path))
}

/// Files larger than this are not hashed just to describe them (a sparse file of terabytes
/// would keep the hasher busy for hours).
pub const MAX_OBSERVED: u64 = 64 << 20;

/// Which file a hash was taken of: device, inode, change time and size.
pub type FileIdentity = (u64, u64, i64, i64);

/// The SHA-256 of a file that is only described, never run (a discovery record): opened without
/// blocking (a FIFO put in its place cannot stall the caller), only if it is a regular file of at
/// most `MAX_OBSERVED` bytes. With the identity of what was hashed, for caching.
pub fn observed_sha256(path: &str) -> Option<(String, FileIdentity)> {
    use rustix::fs::{fstat, open, FileType, Mode, OFlags};
    let file: File = open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .ok()?
    .into();
    let meta = fstat(&file).ok()?;
    if FileType::from_raw_mode(meta.st_mode) != FileType::RegularFile
        || meta.st_size as u64 > MAX_OBSERVED
    {
        return None;
    }
    let identity = (
        meta.st_dev as u64,
        meta.st_ino as u64,
        meta.st_ctime as i64,
        meta.st_size as i64,
    );
    hash(&file).ok().map(|(digest, _)| (digest, identity))
}

fn hash(file: &File) -> io::Result<(String, bool)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    let mut first = [0u8; 2];
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        if offset == 0 && n >= 2 {
            first.copy_from_slice(&buf[..2]);
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), &first == b"#!"))
}

/// For a front door that runs the command by path later (sudo `execve`s the path after the
/// decision): the canonical file `path` leads to, provided nobody but root can change where it
/// leads. Every directory walked through (following each symlink, component by component) must
/// be owned by root and not writable by group or others, and every symlink owned by root.
/// Compare the result with the file that was hashed.
pub fn root_controlled(path: &str) -> Result<std::path::PathBuf, String> {
    use std::collections::VecDeque;
    use std::path::{Component, Path, PathBuf};
    fn check_dir(dir: &Path) -> Result<(), String> {
        let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{} can be changed by someone other than root",
                dir.display()
            ));
        }
        let opened = std::fs::File::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        system_filesystem(&opened).map_err(|why| format!("{} is {why}", dir.display()))
    }
    if !path.starts_with('/') {
        return Err(format!("{path} is not an absolute path"));
    }
    let mut todo: VecDeque<std::ffi::OsString> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut here = PathBuf::from("/");
    check_dir(&here)?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            here.pop();
            continue;
        }
        let next = here.join(&name);
        let meta =
            std::fs::symlink_metadata(&next).map_err(|e| format!("{}: {e}", next.display()))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 || meta.uid() != 0 {
                return Err(format!("{} is a symlink root does not own", next.display()));
            }
            let target =
                std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
            if target.is_absolute() {
                here = PathBuf::from("/");
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => todo.push_front(n.to_owned()),
                    Component::ParentDir => todo.push_front("..".into()),
                    _ => {}
                }
            }
        } else if meta.is_dir() {
            check_dir(&next)?;
            here = next;
        } else if todo.is_empty() {
            return Ok(next);
        } else {
            return Err(format!("{} is not a directory", next.display()));
        }
    }
    Err(format!("{path} does not lead to a file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_binaries_resolve_and_hash() {
        let r = resolve("true").unwrap();
        assert!(r.path.ends_with("/true"), "{}", r.path);
        assert_eq!(r.sha256.len(), 64);
        assert!(!r.script);
        let again = resolve(&r.path).unwrap();
        assert_eq!(again.sha256, r.sha256);
    }

    #[test]
    fn bad_programs_are_refused() {
        assert_eq!(resolve("").unwrap_err(), ResolveError::Empty);
        assert!(matches!(resolve("./true"), Err(ResolveError::Relative(_))));
        assert!(matches!(
            resolve("no-such-command-here"),
            Err(ResolveError::NotFound(_))
        ));
        assert!(matches!(resolve("/etc"), Err(ResolveError::NotRegular(_))));
        // Magic links are refused outright.
        assert!(resolve("/proc/self/root/usr/bin/true").is_err());
        assert!(resolve("/proc/1/root/usr/bin/true").is_err());
        // A FIFO is never opened (opening it would block the agent).
        let fifo = std::env::temp_dir().join(format!("elevate-fifo-{}", std::process::id()));
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o755),
            0,
        )
        .unwrap();
        assert!(matches!(
            resolve(fifo.to_str().unwrap()),
            Err(ResolveError::NotRegular(_))
        ));
        std::fs::remove_file(fifo).unwrap();
        let plain = std::env::temp_dir().join(format!("elevate-plain-{}", std::process::id()));
        std::fs::write(&plain, "data").unwrap();
        let got = resolve(plain.to_str().unwrap());
        // As root: not executable; as anyone else: not owned by root. Refused either way.
        assert!(
            matches!(
                got,
                Err(ResolveError::NotExecutable(_)) | Err(ResolveError::NotRootOwned { .. })
            ),
            "{got:?}"
        );
        std::fs::remove_file(plain).unwrap();
    }
}

#[cfg(test)]
mod root_controlled_tests {
    use super::{caller_may_see, root_controlled};

    #[test]
    fn system_paths_are_root_controlled_through_root_symlinks() {
        assert_eq!(
            root_controlled("/usr/bin/id").unwrap(),
            std::path::PathBuf::from("/usr/bin/id")
        );
        // Debian's merged /usr: /bin is a root-owned symlink to usr/bin.
        let via_bin = root_controlled("/bin/sh").unwrap();
        assert!(via_bin.starts_with("/usr/bin"), "{via_bin:?}");
        assert!(root_controlled("/usr/bin/../bin/id").is_ok());
    }

    #[test]
    fn only_system_filesystems_vouch_for_root() {
        use super::system_filesystem;
        let usr = std::fs::File::open("/usr/bin").unwrap();
        assert_eq!(system_filesystem(&usr), Ok(()));
        // The refusals need a nosuid mount: `attacks::programs_on_user_mountable_filesystems_are_refused`.
    }

    #[test]
    fn anything_others_can_redirect_is_refused() {
        // /tmp is world-writable: whatever is in it can be swapped by anyone.
        let dir = std::env::temp_dir().join(format!("elevate-rc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("id");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/usr/bin/id", &link).unwrap();
        let err = root_controlled(link.to_str().unwrap()).unwrap_err();
        assert!(err.contains("other than root"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(root_controlled("relative/id").is_err());
        assert!(
            root_controlled("/usr/bin").is_err(),
            "a directory is not a command"
        );
    }

    #[test]
    fn paths_the_caller_cannot_see_are_not_described() {
        use std::os::unix::fs::PermissionsExt;
        let nobody = crate::users::Caller {
            name: "nobody-here".into(),
            uid: 54_321,
            gid: 54_321,
            groups: vec![],
        };
        assert!(caller_may_see("/usr/bin/true", &nobody));
        assert!(caller_may_see("/no/such/folder/x", &nobody));
        let hidden = std::env::temp_dir().join(format!("elevate-hidden-{}", std::process::id()));
        std::fs::create_dir_all(hidden.join("inner")).unwrap();
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o700)).unwrap();
        let inside = hidden.join("inner/secret");
        assert!(!caller_may_see(inside.to_str().unwrap(), &nobody));
        assert!(!caller_may_see(hidden.join("x").to_str().unwrap(), &nobody));
        // Its owner sees it; so does anyone once others may search it.
        let me = crate::users::Caller {
            uid: rustix::process::geteuid().as_raw(),
            ..nobody.clone()
        };
        assert!(caller_may_see(inside.to_str().unwrap(), &me));
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(caller_may_see(inside.to_str().unwrap(), &nobody));
        std::fs::remove_dir_all(hidden).unwrap();
    }
}
