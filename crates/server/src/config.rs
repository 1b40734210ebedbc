//! Server configuration: defaults that work with no file, an optional TOML file, then
//! `ELEVATE_*` environment variables on top.
//!
//! Must never: be a global (it is a value passed in), or keep a secret in a field that is logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use jiff::SignedDuration;
use serde::Deserialize;

/// Everything the server process needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://…`; SQLite in `data_dir` when absent.
    pub database_url: Option<String>,
    pub request_ttl: SignedDuration,
    /// The portal's address as people reach it, for links in notifications.
    pub public_url: Option<String>,
    /// Webhook subscriptions (`[[webhook]]`), secrets read from their files.
    pub webhooks: Vec<crate::integrations::webhook::Subscription>,
    /// The Slack app (`[slack]`), secrets read from their files.
    pub slack: Option<crate::integrations::slack::SlackConfig>,
    /// SMTP (`[email]`).
    pub email: Option<crate::integrations::email::EmailConfig>,
    /// Microsoft Teams channels (`[teams.channels]`).
    pub teams: Option<crate::integrations::teams::TeamsConfig>,
    /// Serve https from these PEM files (`tls_cert`, `tls_key`).
    pub tls: Option<crate::app::TlsFiles>,
    /// Single sign-on (`[oidc]`), the client secret read from its file.
    pub oidc: Option<crate::integrations::oidc::OidcConfig>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::store::redact_url),
            )
            .field("public_url", &self.public_url)
            .field("webhooks", &self.webhooks)
            .field("slack", &self.slack)
            .field("email", &self.email)
            .field("teams", &self.teams)
            .field("oidc", &self.oidc)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("a valid literal address"),
            data_dir: PathBuf::from("/var/lib/elevate"),
            database_url: None,
            request_ttl: SignedDuration::from_hours(24),
            public_url: None,
            webhooks: Vec::new(),
            slack: None,
            email: None,
            teams: None,
            tls: None,
            oidc: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    request_ttl: Option<String>,
    public_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default, rename = "webhook")]
    webhooks: Vec<WebhookConfig>,
    slack: Option<SlackFileConfig>,
    email: Option<EmailFileConfig>,
    teams: Option<TeamsFileConfig>,
    oidc: Option<OidcFileConfig>,
}

/// `[oidc]`: the identity provider for the portal's single sign-on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcFileConfig {
    issuer: String,
    client_id: String,
    client_secret_file: PathBuf,
    /// What the sign-in button names ("Sign in with Okta").
    name: Option<String>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    /// Provider group → Elevate role (admin, approver, auditor).
    #[serde(default)]
    roles: std::collections::BTreeMap<String, String>,
    /// Provider group → approver group.
    #[serde(default)]
    approver_groups: std::collections::BTreeMap<String, String>,
}

/// `[teams.channels]`: approver group (or `*`) → a file holding the channel's incoming webhook
/// or Workflows URL (the URL is a credential).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamsFileConfig {
    channels: std::collections::BTreeMap<String, PathBuf>,
}

/// `[email]`: the SMTP server, the sender, and where requesters without an account get mail.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailFileConfig {
    smtp_url: String,
    from: String,
    user: Option<String>,
    password_file: Option<PathBuf>,
    requester_domain: Option<String>,
}

/// `[slack]`: the Slack app's secrets (in files), channels per approver group, and the Slack
/// users who are approvers here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackFileConfig {
    signing_secret_file: PathBuf,
    bot_token_file: PathBuf,
    api_url: Option<String>,
    /// The workspace (team) id presses must come from, e.g. "T0123ABCD".
    team_id: String,
    #[serde(default)]
    channels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    users: std::collections::BTreeMap<String, String>,
}

/// `[[webhook]]`: where CloudEvents go, and the file that holds the signing secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    name: String,
    url: String,
    secret_file: PathBuf,
    #[serde(default)]
    events: Vec<String>,
}

fn http_url(what: &str, url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.is_empty() && !r.starts_with('/') && !url.chars().any(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => bail!("{what} must be an http:// or https:// URL with a host (got {url:?})"),
    }
}

/// Reads a secret from a file only root (or the server's own user) can read.
fn read_secret(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{what}: cannot read the secret file {}", path.display()))?;
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{what}: the secret file {} can be read by others (mode {:o}); chmod 600 it",
            path.display(),
            meta.mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what}: cannot read the secret file {}", path.display()))?;
    let secret = text.trim();
    if secret.len() < 16 {
        bail!(
            "{what}: the secret in {} is shorter than 16 characters; write a long random one",
            path.display()
        );
    }
    Ok(secret.as_bytes().to_vec())
}

const ENV: [&str; 6] = [
    "ELEVATE_LISTEN",
    "ELEVATE_DATA_DIR",
    "ELEVATE_DATABASE_URL",
    "ELEVATE_REQUEST_TTL",
    "ELEVATE_TLS_CERT",
    "ELEVATE_TLS_KEY",
];

/// Variables read elsewhere (logging, tests, benchmarks, the CLI): not configuration mistakes.
const OTHER_ENV: [&str; 6] = [
    "ELEVATE_CA_FILE",
    "ELEVATE_LOG",
    "ELEVATE_REQUIRE_POSTGRES",
    "ELEVATE_SERVER",
    "ELEVATE_TOKEN",
    "ELEVATE_BENCH_",
];

/// Both TLS files or neither.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<crate::app::TlsFiles>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(crate::app::TlsFiles { cert, key })),
        (None, None) => Ok(None),
        _ => bail!("https needs both tls_cert and tls_key (ELEVATE_TLS_CERT and ELEVATE_TLS_KEY)"),
    }
}

/// `[oidc]` checked: an https issuer (http only on loopback), roles that exist, a secret.
fn oidc_config(
    o: OidcFileConfig,
    has_public_url: bool,
) -> anyhow::Result<crate::integrations::oidc::OidcConfig> {
    // Plain http only to this machine: the host exactly, not a name that starts like it.
    let loopback = o.issuer.strip_prefix("http://").is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        ["127.0.0.1", "localhost", "[::1]"].contains(&host)
    });
    if !o.issuer.starts_with("https://") && !loopback {
        bail!("[oidc] issuer must be an https:// URL (got {:?})", o.issuer);
    }
    if !has_public_url {
        bail!("[oidc] the provider sends people back to the portal: set public_url");
    }
    for role in o.roles.values() {
        if !["admin", "approver", "auditor"].contains(&role.as_str()) {
            bail!("[oidc.roles] {role:?} is not a role; use admin, approver or auditor");
        }
    }
    let secret = String::from_utf8(read_secret(
        "[oidc] client_secret_file",
        &o.client_secret_file,
    )?)
    .context("[oidc] the client secret is not text")?;
    Ok(crate::integrations::oidc::OidcConfig {
        display_name: o
            .name
            .unwrap_or_else(|| "your organisation's sign-in".into()),
        issuer: o.issuer,
        client_id: o.client_id,
        client_secret: secret.trim().to_owned(),
        username_claim: o
            .username_claim
            .unwrap_or_else(|| "preferred_username".into()),
        groups_claim: o.groups_claim.unwrap_or_else(|| "groups".into()),
        roles: o.roles,
        approver_groups: o.approver_groups,
    })
}

impl ServerConfig {
    /// Defaults, then the file (if given), then the environment.
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let f: FileConfig = toml::from_str(&text)
                .with_context(|| format!("{} is not a valid configuration", path.display()))?;
            config.apply(f.listen, f.data_dir, f.database_url, f.request_ttl)?;
            let notifies = !f.webhooks.is_empty()
                || f.slack.is_some()
                || f.email.is_some()
                || f.teams.is_some();
            if notifies && f.public_url.is_none() {
                bail!(
                    "{}: notifications carry links to the portal and name this server to \
                     webhook receivers; set public_url (e.g. public_url = \"https://elevate.example.com\")",
                    path.display()
                );
            }
            if let Some(url) = f.public_url {
                http_url("public_url", &url)?;
                config.public_url = Some(url.trim_end_matches('/').to_string());
            }
            config.tls = tls_files(f.tls_cert, f.tls_key)?.or(config.tls);
            if let Some(slack) = f.slack {
                let api_url = slack
                    .api_url
                    .unwrap_or_else(|| "https://slack.com/api".to_string());
                http_url("slack.api_url", &api_url)?;
                if slack.channels.is_empty() {
                    bail!("[slack] needs channels = {{ <approver group> = \"<channel id>\" }} (\"*\" for all groups)");
                }
                let token = read_secret("[slack] bot_token_file", &slack.bot_token_file)?;
                config.slack = Some(crate::integrations::slack::SlackConfig {
                    signing_secret: read_secret(
                        "[slack] signing_secret_file",
                        &slack.signing_secret_file,
                    )?,
                    bot_token: String::from_utf8(token)
                        .context("[slack] the bot token is not text")?,
                    api_url,
                    team_id: slack.team_id,
                    response_url_prefix: "https://hooks.slack.com/".to_string(),
                    channels: slack.channels,
                    users: slack.users,
                });
            }
            if let Some(email) = f.email {
                if !(email.smtp_url.starts_with("smtp://")
                    || email.smtp_url.starts_with("smtps://"))
                {
                    bail!(
                        "[email] smtp_url must start with smtp:// or smtps:// (got {:?})",
                        email.smtp_url
                    );
                }
                if email.smtp_url.contains('@') {
                    bail!("[email] smtp_url must not hold credentials; use user and password_file");
                }
                let encrypted = email.smtp_url.starts_with("smtps://")
                    || email.smtp_url.contains("tls=required");
                if email.password_file.is_some() && !encrypted {
                    bail!(
                        "[email] a password would cross the network in the clear; use smtps:// or \
                         add ?tls=required to smtp_url"
                    );
                }
                let password = match &email.password_file {
                    Some(p) => Some(
                        String::from_utf8(read_secret("[email] password_file", p)?)
                            .context("[email] the password is not text")?,
                    ),
                    None => None,
                };
                config.email = Some(crate::integrations::email::EmailConfig {
                    from: crate::integrations::email::parse_address(&email.from)
                        .map_err(|e| anyhow::anyhow!("[email] from: {e}"))?,
                    smtp_url: email.smtp_url,
                    user: email.user,
                    password,
                    requester_domain: email.requester_domain,
                });
            }
            if let Some(o) = f.oidc {
                config.oidc = Some(oidc_config(o, config.public_url.is_some())?);
            }
            if let Some(t) = f.teams {
                let mut teams = crate::integrations::teams::TeamsConfig::default();
                for (group, file) in t.channels {
                    let what = format!("[teams.channels] {group}");
                    let url = String::from_utf8(read_secret(&what, &file)?)
                        .with_context(|| format!("{what}: the URL is not text"))?;
                    // The URL is a credential: say what is wrong without printing it.
                    if http_url(&what, &url).is_err() {
                        bail!(
                            "{what}: {} does not hold one http:// or https:// URL",
                            file.display()
                        );
                    }
                    teams.channels.insert(group, url);
                }
                config.teams = Some(teams);
            }
            for w in f.webhooks {
                let what = format!("webhook {:?}", w.name);
                if w.name.is_empty() || config.webhooks.iter().any(|s| s.name == w.name) {
                    bail!("{what}: each [[webhook]] needs a name of its own");
                }
                http_url(&format!("{what}: url"), &w.url)?;
                config
                    .webhooks
                    .push(crate::integrations::webhook::Subscription {
                        secret: read_secret(&what, &w.secret_file)?,
                        name: w.name,
                        url: w.url,
                        events: w.events,
                    });
            }
        }
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        for (key, _) in env {
            let known = ENV.contains(&key.as_str()) || OTHER_ENV.iter().any(|k| key.starts_with(k));
            if key.starts_with("ELEVATE_") && !known {
                tracing::warn!(variable = %key, "unknown ELEVATE_ environment variable ignored");
            }
        }
        let listen = var("ELEVATE_LISTEN")
            .map(|v| {
                v.parse().with_context(|| {
                    format!("ELEVATE_LISTEN={v} is not an address like 127.0.0.1:8080")
                })
            })
            .transpose()?;
        config.apply(
            listen,
            var("ELEVATE_DATA_DIR").map(PathBuf::from),
            var("ELEVATE_DATABASE_URL"),
            var("ELEVATE_REQUEST_TTL"),
        )?;
        let (cert, key) = (var("ELEVATE_TLS_CERT"), var("ELEVATE_TLS_KEY"));
        config.tls = tls_files(cert.map(PathBuf::from), key.map(PathBuf::from))?.or(config.tls);
        Ok(config)
    }

    fn apply(
        &mut self,
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
        request_ttl: Option<String>,
    ) -> anyhow::Result<()> {
        if let Some(l) = listen {
            self.listen = l;
        }
        if let Some(d) = data_dir {
            self.data_dir = d;
        }
        if let Some(u) = database_url.filter(|u| !u.is_empty()) {
            if !(u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || u.starts_with("sqlite://"))
            {
                bail!("database_url must start with postgres:// or sqlite://");
            }
            self.database_url = Some(u);
        }
        if let Some(t) = request_ttl {
            self.request_ttl = elevate_core::duration::parse(&t)
                .map_err(|e| anyhow::anyhow!("request_ttl: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn https_needs_both_files() {
        let half = ServerConfig::load(None, &env(&[("ELEVATE_TLS_CERT", "/etc/elevate/cert.pem")]))
            .unwrap_err();
        assert!(
            format!("{half:#}").contains("both tls_cert and tls_key"),
            "{half:#}"
        );
        let both = ServerConfig::load(
            None,
            &env(&[
                ("ELEVATE_TLS_CERT", "/etc/elevate/cert.pem"),
                ("ELEVATE_TLS_KEY", "/etc/elevate/key.pem"),
            ]),
        )
        .unwrap();
        let tls = both.tls.unwrap();
        assert_eq!(tls.key, PathBuf::from("/etc/elevate/key.pem"));
    }

    #[test]
    fn defaults_file_then_environment() {
        let dir = std::env::temp_dir().join(format!("elevate-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("server.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nrequest_ttl = \"2h\"\n").unwrap();
        let c =
            ServerConfig::load(Some(&file), &env(&[("ELEVATE_LISTEN", "127.0.0.1:9100")])).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.request_ttl.as_secs(), 7200);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/elevate"));

        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlisten_port = 1\n").unwrap();
        let err = format!("{:#}", ServerConfig::load(Some(&file), &[]).unwrap_err());
        assert!(err.contains("unknown field `listen_port`"), "{err}");
        let err =
            ServerConfig::load(None, &env(&[("ELEVATE_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
        let secret = ServerConfig::load(
            None,
            &env(&[("ELEVATE_DATABASE_URL", "postgres://u:pw@h/db")]),
        )
        .unwrap();
        assert!(!format!("{secret:?}").contains("pw"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn webhooks_need_a_private_secret_file_and_an_http_url() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("elevate-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("siem.secret");
        std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
        let file = dir.join("server.toml");
        let write = |url: &str| {
            std::fs::write(
                &file,
                format!(
                    "public_url = \"https://elevate.example.com/\"\n[[webhook]]\nname = \"siem\"\n\
                     url = \"{url}\"\nsecret_file = \"{}\"\nevents = [\"request.*\"]\n",
                    secret.display()
                ),
            )
            .unwrap()
        };
        write("https://siem.example.com/in");
        let err = format!("{:#}", ServerConfig::load(Some(&file), &[]).unwrap_err());
        assert!(
            err.contains("can be read by others") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = ServerConfig::load(Some(&file), &[]).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://elevate.example.com"));
        assert_eq!(c.webhooks[0].secret, b"0123456789abcdef0123");
        assert_eq!(c.webhooks[0].events, ["request.*"]);
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "{c:?}");
        std::fs::write(
            &file,
            format!(
                "public_url = \"https://e.example.com\"\n[email]\nsmtp_url = \"smtp://mail.example.com:587\"\n\
                 from = \"e@example.com\"\nuser = \"e\"\npassword_file = \"{}\"\n",
                secret.display()
            ),
        )
        .unwrap();
        let err = format!("{:#}", ServerConfig::load(Some(&file), &[]).unwrap_err());
        assert!(
            err.contains("in the clear") && err.contains("tls=required"),
            "{err}"
        );
        write("ftp://siem.example.com/in");
        let err = format!("{:#}", ServerConfig::load(Some(&file), &[]).unwrap_err());
        assert!(err.contains("http:// or https://"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
