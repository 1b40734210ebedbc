//! Root-equivalent rights outside sudoers' own lines: groups whose members can act as root
//! without sudo (the table below, documented in ARCHITECTURE.md), polkit rules that let a user
//! or group act without an administrator's password, and sudoers rules kept in a directory
//! (`sudoers:` naming sss or ldap in nsswitch.conf) that the agent can neither read nor change.
//! Also the processes that still hold a group after it was taken away (Linux fixes a process's
//! groups at login), and the way to end them.
//!
//! Must never: report a source as harmless because it could not be read (an unreadable
//! nsswitch.conf says nothing either way, and polkit files are read as text, never run).

use std::path::{Path, PathBuf};

use super::Right;

/// Groups whose members are root in all but name, with the reason. Their membership is taken
/// away in enforce mode like `sudo`'s and given back exactly.
pub const ROOT_EQUIVALENT_GROUPS: [(&str, &str); 5] = [
    (
        "docker",
        "the Docker socket starts containers that mount / and run as root",
    ),
    (
        "lxd",
        "LXD starts privileged containers and mounts host paths into them",
    ),
    (
        "incus-admin",
        "Incus starts privileged containers and mounts host paths into them",
    ),
    (
        "libvirt",
        "libvirt starts machines with host disks and devices attached",
    ),
    (
        "disk",
        "raw block devices: the file systems under every file, root's too",
    ),
];

/// Where polkit and NSS keep what they grant.
#[derive(Debug, Clone)]
pub struct OtherSources {
    pub nsswitch: PathBuf,
    /// Folders of polkit JavaScript rules (`*.rules`).
    pub polkit_rules: Vec<PathBuf>,
    /// Folders of old-style polkit authorities (`*.pkla`, nested one level).
    pub polkit_pkla: Vec<PathBuf>,
}

impl OtherSources {
    pub fn system() -> OtherSources {
        OtherSources {
            nsswitch: PathBuf::from("/etc/nsswitch.conf"),
            polkit_rules: vec![
                PathBuf::from("/etc/polkit-1/rules.d"),
                PathBuf::from("/usr/share/polkit-1/rules.d"),
            ],
            polkit_pkla: vec![
                PathBuf::from("/etc/polkit-1/localauthority"),
                PathBuf::from("/var/lib/polkit-1/localauthority"),
            ],
        }
    }

    /// What these sources grant: (`user`, `%group` or `*`, right).
    pub fn grants(&self) -> Vec<(String, Right)> {
        let mut found = Vec::new();
        found.extend(self.directory_sudoers());
        for dir in &self.polkit_rules {
            for file in files_in(dir, "rules") {
                found.extend(polkit_rules(&file));
            }
        }
        for dir in &self.polkit_pkla {
            let nested = files_in(dir, "").into_iter().filter(|p| p.is_dir());
            for sub in std::iter::once(dir.clone()).chain(nested) {
                for file in files_in(&sub, "pkla") {
                    found.extend(pkla(&file));
                }
            }
        }
        found
    }

    /// `sudoers: files sss` (or `ldap`): rules the agent cannot see exist too.
    fn directory_sudoers(&self) -> Vec<(String, Right)> {
        let text = std::fs::read_to_string(&self.nsswitch).unwrap_or_default();
        text.lines()
            .enumerate()
            .filter(|(_, l)| {
                let l = l.split('#').next().unwrap_or("");
                l.trim_start().starts_with("sudoers:")
                    && l.split_whitespace()
                        .skip(1)
                        .any(|s| s.starts_with("sss") || s.starts_with("ldap"))
            })
            .map(|(i, l)| {
                (
                    "*".to_owned(),
                    Right::Unmanaged {
                        file: self.nsswitch.clone(),
                        line: format!(
                            "{l} (sudoers rules also come from a directory service, which Elevate cannot read or change)"
                        ),
                        at_line: Some(i + 1),
                    },
                )
            })
            .collect()
    }
}

/// The files of `dir` ending in `.ext` (every entry when `ext` is empty), sorted.
fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| ext.is_empty() || p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Users and groups a polkit rules file lets act without an administrator (a rule returning
/// `YES` or `AUTH_SELF…`), or makes administrators (`addAdminRule`): read as text, by the names
/// it tests (`isInGroup("ops")`, `user == "alice"`, `"unix-group:ops"`).
fn polkit_rules(file: &Path) -> Vec<(String, Right)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let grants = text.contains("polkit.Result.YES")
        || text.contains("polkit.Result.AUTH_SELF")
        || text.contains("addAdminRule");
    if !grants {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for name in quoted_after(line, "isInGroup(") {
            found.push((format!("%{name}"), i));
        }
        for name in named_after(line, "unix-group:") {
            found.push((format!("%{name}"), i));
        }
        for name in named_after(line, "unix-user:") {
            found.push((name, i));
        }
        for op in ["user ==", "user==", "user ===", "user==="] {
            for name in quoted_after(line, op) {
                found.push((name, i));
            }
        }
    }
    found.sort();
    found.dedup();
    found
        .into_iter()
        .map(|(who, i)| {
            let line = text.lines().nth(i).unwrap_or("").trim().to_owned();
            (
                who,
                Right::Unmanaged {
                    file: file.to_path_buf(),
                    line: format!(
                        "{line} (a polkit rule: actions without an administrator's password)"
                    ),
                    at_line: Some(i + 1),
                },
            )
        })
        .collect()
}

/// Old-style polkit authorities: `Identity=unix-user:alice;unix-group:ops` in a section whose
/// `ResultAny`, `ResultActive` or `ResultInactive` is `yes` or `auth_self…`.
fn pkla(file: &Path) -> Vec<(String, Right)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut identities: Vec<(String, usize)> = Vec::new();
    let mut grants = false;
    let mut flush = |identities: &mut Vec<(String, usize)>, grants: &mut bool| {
        if *grants {
            for (who, i) in identities.drain(..) {
                let line = text.lines().nth(i).unwrap_or("").trim().to_owned();
                found.push((
                    who,
                    Right::Unmanaged {
                        file: file.to_path_buf(),
                        line: format!("{line} (a polkit authority: actions without an administrator's password)"),
                        at_line: Some(i + 1),
                    },
                ));
            }
        }
        identities.clear();
        *grants = false;
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            flush(&mut identities, &mut grants);
        } else if let Some(list) = line.strip_prefix("Identity=") {
            for id in list.split(';') {
                if let Some(u) = id.strip_prefix("unix-user:") {
                    identities.push((u.to_owned(), i));
                } else if let Some(g) = id.strip_prefix("unix-group:") {
                    identities.push((format!("%{g}"), i));
                }
            }
        } else if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            if key.starts_with("Result") && (value == "yes" || value.starts_with("auth_self")) {
                grants = true;
            }
        }
    }
    flush(&mut identities, &mut grants);
    found
}

/// The names quoted right after `marker` on a line: `isInGroup("ops")` gives `ops`.
fn quoted_after(line: &str, marker: &str) -> Vec<String> {
    line.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = line[at + marker.len()..].trim_start();
            let rest = rest.strip_prefix(['"', '\''])?;
            let end = rest.find(['"', '\''])?;
            let name = &rest[..end];
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            plain.then(|| name.to_owned())
        })
        .collect()
}

/// The names written right after `marker` on a line: `"unix-group:ops"` gives `ops`.
fn named_after(line: &str, marker: &str) -> Vec<String> {
    line.match_indices(marker)
        .map(|(at, _)| {
            line[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The pids under /proc now.
fn pids() -> std::io::Result<Vec<i32>> {
    Ok(std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect())
}

/// Processes of `uid` that still hold group `gid` (their groups were fixed when they started).
pub fn processes_holding(uid: u32, gid: u32) -> Vec<i32> {
    let gid = gid.to_string();
    pids()
        .unwrap_or_default()
        .into_iter()
        .filter(|pid| {
            crate::os::process::real_uid(*pid).ok() == Some(uid)
                && std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("Groups:"))
                        .is_some_and(|groups| groups.split_whitespace().any(|g| g == gid))
                })
        })
        .collect()
}

/// Ends every process of `uid` (`elevated rights --end-sessions USER`): the way to take a
/// group from sessions that were open before it was revoked. Returns how many were signalled.
pub fn end_sessions(uid: u32) -> anyhow::Result<usize> {
    anyhow::ensure!(uid != 0, "refusing to end root's processes");
    let mut ended = 0;
    // Twice: a process may start another while the first pass runs.
    for _ in 0..2 {
        for pid in pids().map_err(|e| anyhow::anyhow!("cannot read /proc: {e}"))? {
            if crate::os::process::real_uid(pid).ok() != Some(uid) {
                continue;
            }
            if crate::os::process::kill_by_pid(pid) {
                ended += 1;
            }
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("elevate-sources-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn who(found: &[(String, Right)]) -> Vec<String> {
        let mut w: Vec<String> = found.iter().map(|(w, _)| w.clone()).collect();
        w.sort();
        w
    }

    #[test]
    fn polkit_rules_and_authorities_that_grant_without_an_admin_are_found() {
        let d = dir();
        let rules = d.join("rules.d");
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::write(
            rules.join("49-ops.rules"),
            "polkit.addRule(function(action, subject) {\n  if (subject.isInGroup(\"ops\") || subject.user == 'alice') {\n    return polkit.Result.YES;\n  }\n});\n",
        )
        .unwrap();
        std::fs::write(
            rules.join("50-admins.rules"),
            "polkit.addAdminRule(function(action, subject) {\n  return [\"unix-group:wheel\", \"unix-user:bob\"];\n});\n",
        )
        .unwrap();
        // Asking for an administrator grants nothing by itself.
        std::fs::write(
            rules.join("60-ask.rules"),
            "polkit.addRule(function(a, s) { if (s.isInGroup(\"staff\")) return polkit.Result.AUTH_ADMIN; });\n",
        )
        .unwrap();
        let pkla_dir = d.join("localauthority");
        std::fs::create_dir_all(pkla_dir.join("50-local.d")).unwrap();
        std::fs::write(
            pkla_dir.join("50-local.d/carol.pkla"),
            "[carol may]\nIdentity=unix-user:carol;unix-group:dev\nAction=*\nResultActive=yes\n\n[dave asks]\nIdentity=unix-user:dave\nAction=*\nResultActive=auth_admin\n",
        )
        .unwrap();
        std::fs::write(
            d.join("nsswitch.conf"),
            "passwd: files\nsudoers: files sss\n",
        )
        .unwrap();
        let sources = OtherSources {
            nsswitch: d.join("nsswitch.conf"),
            polkit_rules: vec![rules],
            polkit_pkla: vec![pkla_dir],
        };
        let found = sources.grants();
        assert_eq!(
            who(&found),
            ["%dev", "%ops", "%wheel", "*", "alice", "bob", "carol"],
            "{found:?}"
        );
        let Right::Unmanaged { file, at_line, .. } =
            &found.iter().find(|(w, _)| w == "alice").unwrap().1
        else {
            panic!()
        };
        assert!(file.ends_with("49-ops.rules"));
        assert_eq!(*at_line, Some(2));
        let Right::Unmanaged { line, at_line, .. } =
            &found.iter().find(|(w, _)| w == "*").unwrap().1
        else {
            panic!()
        };
        assert!(line.contains("sudoers: files sss"));
        assert_eq!(*at_line, Some(2));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn this_process_holds_its_own_groups() {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        // Supplementary groups only: a process's own gid is listed there when it is one.
        let groups = std::fs::read_to_string("/proc/self/status").unwrap();
        let listed = groups
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .unwrap()
            .split_whitespace()
            .any(|g| g == gid.to_string());
        let me = std::process::id() as i32;
        assert_eq!(processes_holding(uid, gid).contains(&me), listed);
        assert!(!processes_holding(uid, 4_000_000).contains(&me));
    }
}
