//! The device's enrolment: server URL, device id and name, API credential, offline-code secret
//! and the pinned policy-signing key, in one root-only file.
//!
//! Must never: write the file with group or other access, or read one that has it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use elevate_proto::v1::{EnrolRequest, Enrolled, ErrorBody};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    pub server: String,
    pub device_id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub credential: String,
    pub device_secret: String,
    pub policy_key: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("server", &self.server)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join("enrolment.json")
}

impl Enrolment {
    pub fn load(dir: &Path) -> anyhow::Result<Enrolment> {
        let p = path(dir);
        let meta = fs::metadata(&p).with_context(|| {
            format!(
                "this device is not enrolled ({} is missing); run `elevated enrol --server URL --token TOKEN`",
                p.display()
            )
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} is readable by others; run `chmod 600 {}` (and consider re-enrolling)",
                p.display(),
                p.display()
            );
        }
        let text =
            fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged; enrol the device again", p.display()))
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_private(&path(dir), serde_json::to_string_pretty(self)?.as_bytes())
    }
}

/// Writes a file atomically with mode 0600 in a 0700 folder (`state_file::replace_private`).
pub fn write_private(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::state_file::replace_private(target, bytes)
}

/// Trades a one-time token for the device's credentials and saves them.
pub async fn enrol(server: &str, token: &str, name: &str, dir: &Path) -> anyhow::Result<Enrolment> {
    let server = server.trim_end_matches('/').to_string();
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{server}/v1/enrol"))
        .json(&EnrolRequest {
            token: token.to_string(),
            name: name.to_string(),
        })
        .send()
        .await
        .with_context(|| format!("cannot reach the Elevate server at {server}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body: ErrorBody = response.json().await.unwrap_or(ErrorBody {
            error: "http".into(),
            message: format!("the server answered {status}"),
            details: None,
        });
        bail!("enrolment refused: {}", body.message);
    }
    let e: Enrolled = response
        .json()
        .await
        .context("the server's answer is not an enrolment")?;
    if elevate_proto::bundle::parse_public_key(&e.policy_key).is_none() {
        bail!("the server sent a policy key that is not an Ed25519 public key");
    }
    let enrolment = Enrolment {
        server,
        device_id: e.device_id,
        name: e.name,
        tags: e.tags,
        credential: e.credential,
        device_secret: e.device_secret,
        policy_key: e.policy_key,
    };
    enrolment.save(dir)?;
    Ok(enrolment)
}
