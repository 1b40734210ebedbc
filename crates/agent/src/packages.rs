//! Which Debian package owns a file, from dpkg's database (`/var/lib/dpkg/info/*.list`), read
//! once and again only when dpkg changes it — not by running `dpkg -S` on every request.
//!
//! Must never: guess. A file in no package has no owner (`package = "required"` then fails).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Only files in program folders are kept in memory (they are what people run elevated); a
/// question about any other path scans the database once for that path.
fn is_program_path(path: &str) -> bool {
    path.starts_with('/')
        && ["/bin/", "/sbin/", "/libexec/", "/games/"]
            .iter()
            .any(|d| path.contains(d))
}

/// Path → package, with the time of the database it was read from.
#[derive(Debug, Default)]
pub struct DpkgIndex {
    info_dir: PathBuf,
    owners: HashMap<String, String>,
    read_at: Option<SystemTime>,
}

impl DpkgIndex {
    pub fn new(info_dir: &Path) -> DpkgIndex {
        DpkgIndex {
            info_dir: info_dir.to_path_buf(),
            ..DpkgIndex::default()
        }
    }

    /// The system's dpkg database.
    pub fn system() -> DpkgIndex {
        DpkgIndex::new(Path::new("/var/lib/dpkg/info"))
    }

    fn refresh(&mut self) {
        let changed = std::fs::metadata(&self.info_dir)
            .and_then(|m| m.modified())
            .ok();
        if changed.is_some() && changed == self.read_at {
            return;
        }
        let mut owners = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&self.info_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(package) = name.strip_suffix(".list") else {
                    continue;
                };
                // `libc6:amd64.list` belongs to package `libc6`.
                let package = package.split(':').next().unwrap_or(package).to_string();
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    for line in text.lines().filter(|l| is_program_path(l)) {
                        owners.insert(line.to_string(), package.clone());
                    }
                }
            }
        }
        self.owners = owners;
        self.read_at = changed;
    }

    /// The package owning `path`, trying the merged-/usr twin (`/bin/x` ↔ `/usr/bin/x`) too.
    pub fn owner(&mut self, path: &str) -> Option<String> {
        self.refresh();
        let twin = match path.strip_prefix("/usr") {
            Some(rest)
                if ["/bin/", "/sbin/", "/lib/"]
                    .iter()
                    .any(|d| rest.starts_with(d)) =>
            {
                rest.to_string()
            }
            _ => format!("/usr{path}"),
        };
        if is_program_path(path) {
            return self
                .owners
                .get(path)
                .or_else(|| self.owners.get(&twin))
                .cloned();
        }
        self.scan(path).or_else(|| self.scan(&twin))
    }

    /// Looks for one path in every `.list` file (for files outside program folders).
    fn scan(&self, path: &str) -> Option<String> {
        let entries = std::fs::read_dir(&self.info_dir).ok()?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(package) = name.strip_suffix(".list") else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                if text.lines().any(|l| l == path) {
                    return Some(package.split(':').next().unwrap_or(package).to_string());
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_come_from_list_files_and_merged_usr_twins() {
        let dir = std::env::temp_dir().join(format!("elevate-dpkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("apt.list"),
            "/.\n/usr\n/usr/bin/apt\n/usr/bin/apt-get\n/opt/apt/tool\n",
        )
        .unwrap();
        std::fs::write(dir.join("bash:amd64.list"), "/bin/bash\n").unwrap();
        std::fs::write(dir.join("apt.md5sums"), "x /usr/bin/other\n").unwrap();
        let mut index = DpkgIndex::new(&dir);
        for (path, owner) in [
            ("/usr/bin/apt", Some("apt")),
            ("/bin/bash", Some("bash")),
            ("/usr/bin/bash", Some("bash")),
            ("/bin/apt-get", Some("apt")),
            ("/usr/bin/other", None),
            ("/opt/tool", None),
            ("/opt/apt/tool", Some("apt")),
        ] {
            assert_eq!(index.owner(path).as_deref(), owner, "{path}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
