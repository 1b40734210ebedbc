//! The server's secrets on disk: the Ed25519 key that signs policy bundles and the master key
//! from which each device's offline-code secret is derived. Created on first start, root-only.
//!
//! Must never: read a key file that others can read (it refuses, saying how to fix it), or log
//! a key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The server's long-lived keys.
pub struct Keys {
    pub(crate) signing: SigningKey,
    device_master: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("policy_key", &self.policy_key_hex())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Loads the keys from `dir`, creating them (mode 0600) when absent.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Keys> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create key folder {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
        let signing = SigningKey::from_bytes(&secret_file(&dir.join("policy-signing.key"))?);
        let device_master = secret_file(&dir.join("device-master.key"))?;
        Ok(Keys {
            signing,
            device_master,
        })
    }

    /// Keys from fixed bytes (tests and benchmarks).
    pub fn from_bytes(signing: [u8; 32], device_master: [u8; 32]) -> Keys {
        Keys {
            signing: SigningKey::from_bytes(&signing),
            device_master,
        }
    }

    pub fn policy_key_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().to_bytes())
    }

    /// The key that signs one-time approval links: HMAC(master, a label of its own).
    pub fn link_key(&self) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.device_master)
            .expect("HMAC takes keys of any length");
        mac.update(b"elevate-approval-links-v1\0");
        mac.finalize().into_bytes().into()
    }

    /// The secret a device uses for offline response codes: HMAC(master, device id).
    pub fn device_secret(&self, device_id: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.device_master)
            .expect("HMAC takes keys of any length");
        mac.update(b"elevate-device-secret-v1\0");
        mac.update(device_id.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

fn secret_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    if !path.exists() {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create key file {}", path.display()))?;
        file.write_all(hex::encode(bytes).as_bytes())?;
        file.sync_all()?;
        return Ok(bytes);
    }
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "key file {} is readable by others (mode {:o}); run `chmod 600 {}` and start again",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("key file {} does not hold 32 hex bytes", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_private_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("elevate-keys-{}", uuid::Uuid::now_v7()));
        let first = Keys::load_or_create(&dir).unwrap();
        let again = Keys::load_or_create(&dir).unwrap();
        assert_eq!(first.policy_key_hex(), again.policy_key_hex());
        assert_eq!(first.device_secret("d1"), again.device_secret("d1"));
        assert_ne!(first.device_secret("d1"), first.device_secret("d2"));
        let file = dir.join("policy-signing.key");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keys::load_or_create(&dir).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }
}
