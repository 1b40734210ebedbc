//! The device's enrolment: server URL, device id and name, API credential, offline-code secret
//! and the pinned policy-signing key, in one root-only file.
//!
//! Must never: write the file with group or other access, or read one that has it; or talk to a
//! server over plain `http://` beyond this machine unless an administrator said so
//! (`--insecure-http`): the credential and the offline-code secret would travel in clear.

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
    /// Enrolled with `--insecure-http`: a plain-http server beyond this machine is allowed
    /// (and `elevate status` says so).
    #[serde(default)]
    pub insecure_http: bool,
    /// The certificate authority (PEM) the server's https certificate is checked against, when
    /// it is not one of the web's (`--ca-file`, an organisation's own CA).
    #[serde(default)]
    pub ca_pem: Option<String>,
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

    /// How this enrolment reaches its server; an error for plain http beyond this machine
    /// without `--insecure-http` (an enrolment file changed by hand is refused, not used).
    pub fn transport(&self) -> anyhow::Result<Transport> {
        transport(&self.server, self.insecure_http)
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_private(&path(dir), serde_json::to_string_pretty(self)?.as_bytes())
    }
}

/// Writes a file atomically with mode 0600 in a 0700 folder (`state_file::replace_private`).
pub fn write_private(target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::state_file::replace_private(target, bytes)
}

/// How the agent reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    /// Plain http to this machine (the traffic never leaves it).
    LoopbackHttp,
    /// Plain http beyond this machine, allowed by `--insecure-http`.
    InsecureHttp,
}

/// Whether the agent may talk to `server`: `https://`, or `http://` to a loopback address or
/// `localhost`; `http://` elsewhere only with `insecure` (`--insecure-http`).
pub fn transport(server: &str, insecure: bool) -> anyhow::Result<Transport> {
    let url = reqwest::Url::parse(server)
        .with_context(|| format!("{server:?} is not a URL; give the server as https://HOST"))?;
    match url.scheme() {
        "https" => return Ok(Transport::Https),
        "http" => {}
        other => bail!("the server URL must be https:// (not {other}://)"),
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(Transport::LoopbackHttp)
    } else if insecure {
        Ok(Transport::InsecureHttp)
    } else {
        bail!(
            "{server} is plain http: this device's credential and its offline-code secret would cross the network in clear; use https:// (or, if you must, --insecure-http, which elevate status will then show)"
        )
    }
}

/// An HTTP client for the server: the web's certificate authorities, and `ca_pem` besides when
/// the organisation runs its own.
pub fn http_client(
    builder: reqwest::ClientBuilder,
    ca_pem: Option<&str>,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = builder;
    if let Some(pem) = ca_pem {
        let authorities = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .context("the CA file is not PEM certificates")?;
        if authorities.is_empty() {
            bail!("the CA file holds no certificate");
        }
        for ca in authorities {
            builder = builder.add_root_certificate(ca);
        }
    }
    builder.build().context("cannot set up the HTTP client")
}

/// How the device finds the server and checks who answers.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// A plain http server beyond this machine is allowed (`--insecure-http`).
    pub insecure_http: bool,
    /// PEM of the organisation's own certificate authority (`--ca-file`).
    pub ca_pem: Option<String>,
}

/// Trades a one-time token for the device's credentials and saves them.
pub async fn enrol(
    server: &str,
    token: &str,
    name: &str,
    dir: &Path,
    reach: Reach,
) -> anyhow::Result<Enrolment> {
    let server = server.trim_end_matches('/').to_string();
    transport(&server, reach.insecure_http)?;
    let http = http_client(reqwest::Client::builder(), reach.ca_pem.as_deref())?;
    let response = http
        .post(format!("{server}/v1/enrol"))
        .json(&EnrolRequest {
            token: token.to_string(),
            name: name.to_string(),
        })
        .send()
        .await
        .map_err(|e| {
            // `{:#}` names the TLS failure itself (an unknown CA, a wrong name), deep in the chain.
            let why = anyhow::Error::from(e);
            anyhow::anyhow!("cannot reach the Elevate server at {server} ({why:#}); if it has a certificate from your organisation's own CA, give that CA with --ca-file")
        })?;
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
        insecure_http: reach.insecure_http,
        ca_pem: reach.ca_pem,
    };
    enrolment.save(dir)?;
    Ok(enrolment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_beyond_this_machine_unless_allowed() {
        let ok = |url: &str, insecure| transport(url, insecure).unwrap();
        assert_eq!(ok("https://elevate.example", false), Transport::Https);
        for local in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:80",
            "http://localhost:9",
            "http://LOCALHOST",
        ] {
            assert_eq!(ok(local, false), Transport::LoopbackHttp, "{local}");
        }
        for remote in [
            "http://elevate.example",
            "http://10.0.0.1",
            "http://0.0.0.0:1",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
        ] {
            let refused = transport(remote, false).unwrap_err().to_string();
            assert!(refused.contains("plain http"), "{remote}: {refused}");
            assert_eq!(ok(remote, true), Transport::InsecureHttp, "{remote}");
        }
        assert!(transport("ftp://elevate.example", true).is_err());
        assert!(transport("elevate.example", true).is_err());
    }
}
