//! The signed policy, cached on disk so that decisions keep working without the server. A
//! bundle is used only after its signature verifies against the key pinned at enrolment, both
//! when it arrives and when it is read back from disk.
//!
//! Must never: use a policy whose signature does not verify, or replace a newer version with an
//! older one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use elevate_core::Policy;
use elevate_proto::bundle::VerifyingKey;
use elevate_proto::SignedBundle;

/// A verified, parsed policy.
#[derive(Debug, Clone)]
pub struct CachedPolicy {
    pub version: u64,
    pub policy: Arc<Policy>,
    pub fetched_at: jiff::Timestamp,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("policy-bundle.json")
}

/// Verifies and parses a bundle.
pub fn accept(bundle: &SignedBundle, key: &VerifyingKey) -> anyhow::Result<CachedPolicy> {
    let payload = bundle.verify(key).context("refusing the policy bundle")?;
    let policy = Policy::parse(&payload.policy).map_err(|e| {
        anyhow::anyhow!(
            "the signed policy version {} does not parse: {e}",
            payload.version
        )
    })?;
    Ok(CachedPolicy {
        version: payload.version,
        policy: Arc::new(policy),
        fetched_at: payload.issued_at,
    })
}

/// The cached bundle from disk, verified; `None` when there is none yet.
pub fn load(dir: &Path, key: &VerifyingKey) -> anyhow::Result<Option<CachedPolicy>> {
    let p = path(dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
    };
    let bundle: SignedBundle =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", p.display()))?;
    accept(&bundle, key).map(Some)
}

/// Verifies a fresh bundle and stores it, unless it is older than what is in force.
pub fn store(
    dir: &Path,
    key: &VerifyingKey,
    bundle: &SignedBundle,
    current: Option<u64>,
) -> anyhow::Result<CachedPolicy> {
    let cached = accept(bundle, key)?;
    if let Some(v) = current {
        if cached.version < v {
            bail!(
                "the server offered policy version {} but version {v} is in force; keeping {v}",
                cached.version
            );
        }
    }
    crate::enrolment::write_private(&path(dir), serde_json::to_string(bundle)?.as_bytes())?;
    Ok(cached)
}
