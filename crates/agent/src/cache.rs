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
    /// Login → frequency segment, as the server measured it (when the policy names segments).
    pub segments: std::collections::BTreeMap<String, String>,
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
        // Only what a segment can be: anything else is left out (the login gets none).
        segments: payload
            .segments
            .into_iter()
            .filter(|(login, s)| {
                elevate_core::discovery::Segment::parse(s).is_some()
                    && !login.is_empty()
                    && login.len() <= 256
            })
            .collect(),
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

#[cfg(test)]
mod tests {
    use elevate_proto::bundle::{BundlePayload, SignedBundle, SigningKey};

    /// The segments a bundle carries reach the cached policy, and only real segments do.
    #[test]
    fn a_bundles_segments_are_kept_when_they_are_segments() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let payload = BundlePayload {
            version: 3,
            sha256: {
                use sha2::Digest as _;
                hex::encode(sha2::Sha256::digest(b"version = 1\n"))
            },
            issued_at: "2026-12-01T00:00:00Z".parse().unwrap(),
            policy: "version = 1\n".into(),
            segments: [("alice", "high"), ("bob", "root"), ("", "low")]
                .into_iter()
                .map(|(l, s)| (l.to_owned(), s.to_owned()))
                .collect(),
        };
        let cached =
            super::accept(&SignedBundle::sign(&payload, &key), &key.verifying_key()).unwrap();
        let kept: Vec<(&str, &str)> = cached
            .segments
            .iter()
            .map(|(l, s)| (l.as_str(), s.as_str()))
            .collect();
        assert_eq!(kept, [("alice", "high")]);
    }
}
