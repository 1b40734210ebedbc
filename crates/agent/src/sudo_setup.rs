//! `elevated install-sudo` / `uninstall-sudo`: routes sudo through the Elevate plugins by a
//! managed block in `/etc/sudo.conf`, and notices when that block disappears.
//!
//! Edits are made safely: the new file is written beside the old one, flushed, checked (sudo
//! must load the plugins and report their version), and moved into place with one `rename`; the
//! previous file is kept as `sudo.conf.elevate-backup`. Installing twice gives the same file;
//! uninstalling restores the lines that were there before, byte for byte.
//!
//! Must never: install on sudo-rs (it ignores `sudo.conf` plugins, so a grant that relies on
//! the plugin would be wide open), load a plugin file others can change, or leave a half-written
//! `sudo.conf` behind.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Where the plugin is installed unless told otherwise.
pub const DEFAULT_PLUGIN: &str = "/usr/libexec/elevate/libelevate_sudo.so";
const BEGIN: &str =
    "# BEGIN elevate: managed by `elevated install-sudo`; remove with `elevated uninstall-sudo`";
const END: &str = "# END elevate";
/// The agent's record that it installed the block (for tamper detection).
const MARKER: &str = "sudo-installed";

/// What `install-sudo` needs to know.
#[derive(Debug, Clone)]
pub struct SudoSetup {
    pub sudo_conf: PathBuf,
    pub sudo: PathBuf,
    pub plugin: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
}

/// The managed block for `plugin` and `socket`.
pub fn block(plugin: &Path, socket: &Path) -> String {
    let (p, s) = (plugin.display(), socket.display());
    format!(
        "{BEGIN}\nPlugin elevate_audit {p} socket={s}\nPlugin elevate_approval {p} socket={s}\n{END}\n"
    )
}

/// `text` without the managed block (and anything else is kept exactly).
pub fn without_block(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if bare == BEGIN {
            inside = true;
        } else if inside && bare == END {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out
}

/// `text` with exactly one managed block, at the end.
pub fn with_block(text: &str, block: &str) -> String {
    let mut out = without_block(text);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(block);
    out
}

/// Whether `text` holds the managed block with both plugin lines.
pub fn has_block(text: &str) -> bool {
    let mut inside = false;
    let (mut audit, mut approval) = (false, false);
    for line in text.lines() {
        if line == BEGIN {
            inside = true;
        } else if line == END {
            inside = false;
        } else if inside {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"Plugin") {
                audit |= words.get(1) == Some(&"elevate_audit");
                approval |= words.get(1) == Some(&"elevate_approval");
            }
        }
    }
    audit && approval
}

/// Which sudo this is, from `sudo -V`'s first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavour {
    /// Todd Miller's sudo, with its plugin API (approval plugins need 1.9).
    Sudo {
        version: String,
    },
    /// sudo-rs: ignores sudo.conf plugins and `NOTAFTER`.
    SudoRs {
        version: String,
    },
    Unknown(String),
}

pub fn flavour(first_line: &str) -> Flavour {
    let line = first_line.trim();
    if let Some(v) = line.strip_prefix("Sudo version ") {
        Flavour::Sudo {
            version: v.trim().to_owned(),
        }
    } else if let Some(v) = line.strip_prefix("sudo-rs ") {
        Flavour::SudoRs {
            version: v.trim().to_owned(),
        }
    } else {
        Flavour::Unknown(line.to_owned())
    }
}

/// Which sudo `sudo` is on this host (from `sudo -V`).
pub fn host_sudo(sudo: &Path) -> Flavour {
    match sudo_version(sudo) {
        Ok((_, text)) => flavour(text.lines().next().unwrap_or("")),
        Err(e) => Flavour::Unknown(e.to_string()),
    }
}

/// Approval plugins exist since sudo 1.9.0.
fn supports_approval_plugins(version: &str) -> bool {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 9)
}

/// `sudo -V`: whether it succeeded (sudo loads every plugin of sudo.conf first and fails if one
/// cannot be loaded), and what it printed.
fn sudo_version(sudo: &Path) -> anyhow::Result<(bool, String)> {
    let out = Command::new(sudo)
        .arg("-V")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .with_context(|| format!("cannot run {} -V", sudo.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

/// The plugin file sudo will load as root: a regular file owned by root, not writable by group
/// or others (sudo 1.9.13 no longer checks this itself).
fn check_plugin(plugin: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(plugin).with_context(|| {
        format!(
            "the sudo plugin {} is missing; install it (root:root, 0644) or pass --plugin",
            plugin.display()
        )
    })?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        bail!(
            "{} must be a regular file owned by root and not writable by group or others (chown root:root; chmod 0644)",
            plugin.display()
        );
    }
    Ok(())
}

fn backup_path(sudo_conf: &Path) -> PathBuf {
    sudo_conf.with_extension("conf.elevate-backup")
}

/// Installs the managed block. Returns what was done, for the operator.
pub fn install(setup: &SudoSetup) -> anyhow::Result<String> {
    let (_, version_text) = sudo_version(&setup.sudo)?;
    match flavour(version_text.lines().next().unwrap_or("")) {
        Flavour::SudoRs { version } => bail!(
            "this host's sudo is sudo-rs {version}, which ignores sudo.conf plugins: a grant that relies on the Elevate plugin would be wide open, so nothing was installed. Use the native front door (`elevate COMMAND`) instead"
        ),
        Flavour::Unknown(line) => bail!(
            "cannot tell which sudo {} is (`sudo -V` said {line:?}); nothing was installed",
            setup.sudo.display()
        ),
        Flavour::Sudo { version } if !supports_approval_plugins(&version) => bail!(
            "sudo {version} has no approval plugins (they need sudo 1.9 or later); nothing was installed"
        ),
        Flavour::Sudo { .. } => {}
    }
    check_plugin(&setup.plugin)?;
    let current = match fs::read_to_string(&setup.sudo_conf) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context(format!("cannot read {}", setup.sudo_conf.display())),
    };
    let wanted = with_block(&current, &block(&setup.plugin, &setup.socket));
    if wanted == current {
        write_marker(setup)?;
        return Ok(format!(
            "{} already routes sudo through Elevate",
            setup.sudo_conf.display()
        ));
    }
    let backup = backup_path(&setup.sudo_conf);
    crate::state_file::replace(&backup, current.as_bytes(), 0o644)?;
    crate::state_file::replace(&setup.sudo_conf, wanted.as_bytes(), 0o644)?;
    // sudo must now load both plugins; if it cannot, put the old file back.
    let (loaded, check) = sudo_version(&setup.sudo)?;
    if !loaded {
        crate::state_file::replace(&setup.sudo_conf, current.as_bytes(), 0o644)?;
        bail!(
            "sudo did not load the Elevate plugins with the new {}; the previous file is back in place. sudo said:\n{check}",
            setup.sudo_conf.display()
        );
    }
    write_marker(setup)?;
    Ok(format!(
        "sudo now asks Elevate: {} updated (previous file kept as {})",
        setup.sudo_conf.display(),
        backup.display()
    ))
}

/// Removes the managed block, keeping every other line as it was.
pub fn uninstall(setup: &SudoSetup) -> anyhow::Result<String> {
    let _ = fs::remove_file(setup.state_dir.join(MARKER));
    // Without the plugin, the managed rule would be an unchecked ALL: it goes first.
    let managed = crate::sudoers::Sudoers::system().path(crate::rights::MANAGED_RULE);
    crate::sudoers::Sudoers::remove(&managed)
        .with_context(|| format!("cannot remove {}", managed.display()))?;
    let current = match fs::read_to_string(&setup.sudo_conf) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok("there is no sudo.conf; nothing to remove".into())
        }
        Err(e) => return Err(e).context(format!("cannot read {}", setup.sudo_conf.display())),
    };
    let wanted = without_block(&current);
    if wanted == current {
        return Ok(format!(
            "{} does not route sudo through Elevate",
            setup.sudo_conf.display()
        ));
    }
    crate::state_file::replace(&backup_path(&setup.sudo_conf), current.as_bytes(), 0o644)?;
    crate::state_file::replace(&setup.sudo_conf, wanted.as_bytes(), 0o644)?;
    Ok(format!(
        "sudo no longer asks Elevate: {} updated",
        setup.sudo_conf.display()
    ))
}

/// What `install-sudo` put in place, kept by the agent to notice any change to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Installed {
    pub sudo_conf: PathBuf,
    /// The sudo binary whose plugins these are (a switch to sudo-rs would ignore them).
    #[serde(default = "default_sudo")]
    pub sudo: PathBuf,
    /// The managed block, exactly.
    pub block: String,
    pub plugin: PathBuf,
    pub plugin_sha256: String,
}

fn default_sudo() -> PathBuf {
    PathBuf::from("/usr/bin/sudo")
}

impl Installed {
    /// `Ok` while sudo.conf holds the exact block, the plugin file is the one installed and
    /// sudo is still a sudo that loads plugins; otherwise what changed.
    pub fn check(&self) -> Result<(), String> {
        if let Flavour::SudoRs { version } = host_sudo(&self.sudo) {
            return Err(format!(
                "{} is now sudo-rs {version}, which ignores the plugins",
                self.sudo.display()
            ));
        }
        let conf = self.sudo_conf.display();
        let text = fs::read_to_string(&self.sudo_conf).unwrap_or_default();
        if !text.contains(&self.block) {
            return Err(if has_block(&text) {
                format!("the Elevate lines in {conf} were changed")
            } else {
                format!("the Elevate plugin lines are gone from {conf}")
            });
        }
        match crate::resolve::file_sha256(&self.plugin) {
            Ok(h) if h == self.plugin_sha256 => Ok(()),
            Ok(_) => Err(format!(
                "the plugin file {} was replaced",
                self.plugin.display()
            )),
            Err(e) => Err(format!(
                "the plugin file {} cannot be read: {e}",
                self.plugin.display()
            )),
        }
    }
}

fn write_marker(setup: &SudoSetup) -> anyhow::Result<()> {
    fs::create_dir_all(&setup.state_dir)?;
    let installed = Installed {
        sudo_conf: setup.sudo_conf.clone(),
        sudo: setup.sudo.clone(),
        block: block(&setup.plugin, &setup.socket),
        plugin: setup.plugin.clone(),
        plugin_sha256: crate::resolve::file_sha256(&setup.plugin)
            .with_context(|| format!("cannot read {}", setup.plugin.display()))?,
    };
    crate::state_file::replace(
        &setup.state_dir.join(MARKER),
        serde_json::to_string_pretty(&installed)?.as_bytes(),
        0o600,
    )
}

/// What `install-sudo` put in place on this machine, if it ran.
pub fn installed(state_dir: &Path) -> Option<Installed> {
    fs::read_to_string(state_dir.join(MARKER))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "#\n# Default /etc/sudo.conf file\n#\n#Plugin sudoers_policy sudoers.so\nSet disable_coredump false\n";

    #[test]
    fn the_block_is_added_once_and_removed_exactly() {
        let b = block(
            Path::new("/usr/libexec/elevate/libelevate_sudo.so"),
            Path::new("/run/elevate/agent.sock"),
        );
        let once = with_block(DEBIAN, &b);
        assert!(has_block(&once));
        assert_eq!(
            with_block(&once, &b),
            once,
            "installing twice changes nothing"
        );
        assert_eq!(
            without_block(&once),
            DEBIAN,
            "uninstalling restores the file exactly"
        );
        // A file without a final newline keeps its last line intact.
        let bare = "Set disable_coredump false";
        assert_eq!(without_block(&with_block(bare, &b)), format!("{bare}\n"));
        // A new socket replaces the old block instead of adding a second one.
        let moved = with_block(&once, &block(Path::new("/p.so"), Path::new("/s")));
        assert_eq!(moved.matches("# BEGIN elevate").count(), 1);
        assert!(moved.contains("socket=/s"));
    }

    #[test]
    fn a_block_missing_a_plugin_line_is_not_intact() {
        let b = block(Path::new("/p.so"), Path::new("/s"));
        let tampered: String = with_block(DEBIAN, &b)
            .lines()
            .filter(|l| !l.contains("elevate_approval"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!has_block(&tampered));
        assert!(!has_block(DEBIAN));
        let commented =
            with_block(DEBIAN, &b).replace("Plugin elevate_approval", "#Plugin elevate_approval");
        assert!(!has_block(&commented));
    }

    #[test]
    fn any_change_to_what_was_installed_is_noticed() {
        let dir = std::env::temp_dir().join(format!("elevate-sudo-setup-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (conf, plugin, socket) = (dir.join("sudo.conf"), dir.join("plugin.so"), dir.join("s"));
        fs::write(&plugin, b"the plugin").unwrap();
        fs::write(&conf, with_block(DEBIAN, &block(&plugin, &socket))).unwrap();
        let setup = SudoSetup {
            sudo_conf: conf.clone(),
            sudo: "/usr/bin/sudo".into(),
            plugin: plugin.clone(),
            socket: socket.clone(),
            state_dir: dir.join("state"),
        };
        write_marker(&setup).unwrap();
        let installed = installed(&setup.state_dir).unwrap();
        assert_eq!(installed.check(), Ok(()));
        // The socket re-pointed elsewhere (a socket someone else serves).
        fs::write(
            &conf,
            with_block(DEBIAN, &block(&plugin, Path::new("/tmp/x"))),
        )
        .unwrap();
        assert!(installed.check().unwrap_err().contains("were changed"));
        fs::write(&conf, DEBIAN).unwrap();
        assert!(installed.check().unwrap_err().contains("are gone"));
        fs::write(&conf, with_block(DEBIAN, &block(&plugin, &socket))).unwrap();
        assert_eq!(installed.check(), Ok(()));
        fs::write(&plugin, b"another plugin").unwrap();
        assert!(installed.check().unwrap_err().contains("was replaced"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sudo_flavours_are_told_apart() {
        assert_eq!(
            flavour("Sudo version 1.9.13p3"),
            Flavour::Sudo {
                version: "1.9.13p3".into()
            }
        );
        assert_eq!(
            flavour("sudo-rs 0.2.6"),
            Flavour::SudoRs {
                version: "0.2.6".into()
            }
        );
        assert!(matches!(flavour("doas"), Flavour::Unknown(_)));
        assert!(supports_approval_plugins("1.9.13p3"));
        assert!(supports_approval_plugins("1.10.0"));
        assert!(!supports_approval_plugins("1.8.31"));
    }
}
