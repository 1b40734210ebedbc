//! Policy versions: apply (validated by core, stored with author and comment), list, show,
//! diff, signed bundles for agents, and `policy test` explanations.
//!
//! Must never: store a policy that core cannot parse; sign anything but a stored version.

use std::sync::Arc;

use elevate_core::{decide, Policy, PolicyError};
use elevate_proto::bundle::sha256_hex;
use elevate_proto::v1::{DecisionView, PolicyTest};
use elevate_proto::{BundlePayload, SignedBundle};

use super::{App, AppError, Principal, Result, Role};
use crate::store::PolicyRow;

/// The parsed current policy, kept while its version stays current.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    version: u64,
    policy: Arc<Policy>,
}

/// What `policy test` answers.
#[derive(Debug, Clone)]
pub struct PolicyTestOutcome {
    pub decision: DecisionView,
    /// About the matched rule's paths and the path tested.
    pub warnings: Vec<String>,
}

fn invalid(e: PolicyError) -> AppError {
    AppError::InvalidPolicy {
        message: format!("the policy is not valid: {e}"),
        line: e.line,
        column: e.column,
        field: e.field,
    }
}

impl App {
    pub async fn apply_policy(
        &self,
        caller: &Principal,
        text: &str,
        comment: Option<&str>,
    ) -> Result<(PolicyRow, Vec<String>)> {
        let admin = caller.require(&[Role::Admin])?;
        if text.len() > 1024 * 1024 {
            return Err(AppError::BadRequest(
                "a policy may be at most 1 MiB of text".into(),
            ));
        }
        let policy = Policy::parse(text).map_err(invalid)?;
        // What the document cannot know: how long requests wait on this server by default. An
        // SLA that does not end before the request expires would never escalate.
        for (rule, route) in policy.approval_routes() {
            if let (Some(sla), None) = (route.sla, route.expire) {
                if sla >= self.settings.request_ttl {
                    return Err(AppError::BadRequest(format!(
                        "{}: sla ({}) is not shorter than how long requests wait on this server \
                         (request_ttl {}), so it would never pass; set expire longer than the sla \
                         on that rule, or a shorter sla",
                        rule.map_or("the defaults".to_string(), |r| format!("rule {r:?}")),
                        elevate_core::duration::format(sla),
                        elevate_core::duration::format(self.settings.request_ttl)
                    )));
                }
            }
        }
        let sha = sha256_hex(text);
        let warnings = path_warnings(&policy);
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let version = tx
            .insert_policy(text, &sha, &admin.name, comment, now)
            .await?;
        tx.append_audit(self.event(
            caller.actor(),
            "policy.applied",
            format!("policy:{version}"),
            serde_json::json!({ "version": version, "sha256": sha, "comment": comment }),
        ))
        .await?;
        tx.commit().await?;
        let row =
            self.store.policy(version).await?.ok_or_else(|| {
                AppError::Unexpected(anyhow::anyhow!("policy {version} vanished"))
            })?;
        Ok((row, warnings))
    }

    pub async fn policies(&self, caller: &Principal) -> Result<Vec<PolicyRow>> {
        caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        Ok(self.store.policies().await?)
    }

    /// One version, or the latest when `version` is `None`.
    pub async fn policy(&self, caller: &Principal, version: Option<u64>) -> Result<PolicyRow> {
        if !matches!(caller, Principal::Device(_)) {
            caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        }
        let row = match version {
            Some(v) => self.store.policy(v).await?,
            None => self.store.latest_policy().await?,
        };
        row.ok_or_else(|| match version {
            Some(v) => AppError::NotFound(format!("there is no policy version {v}")),
            None => no_policy(),
        })
    }

    pub async fn policy_diff(&self, caller: &Principal, from: u64, to: u64) -> Result<String> {
        let a = self.policy(caller, Some(from)).await?;
        let b = self.policy(caller, Some(to)).await?;
        Ok(similar::TextDiff::from_lines(&a.text, &b.text)
            .unified_diff()
            .context_radius(3)
            .header(&format!("policy v{from}"), &format!("policy v{to}"))
            .to_string())
    }

    /// The current (or a given) version, signed for agents.
    pub async fn policy_bundle(
        &self,
        caller: &Principal,
        version: Option<u64>,
    ) -> Result<SignedBundle> {
        let row = self.policy(caller, version).await?;
        // A device gets the segments of its own logins, when the policy names segments.
        let segments = match (caller, Policy::parse(&row.text)) {
            (Principal::Device(d), Ok(p)) if p.uses_segments() => {
                self.device_segments(&d.name, &d.tags, p.segment_thresholds())
                    .await?
            }
            _ => Default::default(),
        };
        let payload = BundlePayload {
            version: row.version,
            sha256: row.sha256,
            issued_at: self.now(),
            policy: row.text,
            segments,
        };
        Ok(SignedBundle::sign(&payload, &self.keys.signing))
    }

    /// The current policy, parsed (cached per version).
    pub(crate) async fn current_policy(&self) -> Result<(u64, Arc<Policy>)> {
        let latest = self
            .store
            .latest_policy_version()
            .await?
            .ok_or_else(no_policy)?;
        if let Some(c) = self
            .policy_cache
            .read()
            .expect("policy cache lock")
            .as_ref()
        {
            if c.version == latest {
                return Ok((c.version, c.policy.clone()));
            }
        }
        let row = self.store.policy(latest).await?.ok_or_else(no_policy)?;
        let policy = Arc::new(Policy::parse(&row.text).map_err(|e| {
            AppError::Unavailable(format!(
                "stored policy version {latest} no longer parses ({e}); apply a fixed version"
            ))
        })?);
        *self.policy_cache.write().expect("policy cache lock") = Some(Cached {
            version: latest,
            policy: policy.clone(),
        });
        Ok((latest, policy))
    }

    /// Explains how a policy (current, a stored version or a draft) would decide a request.
    pub async fn test_policy(
        &self,
        caller: &Principal,
        t: &PolicyTest,
    ) -> Result<PolicyTestOutcome> {
        caller.require(&[Role::Admin, Role::Auditor, Role::Approver])?;
        let (version, policy) = match (&t.text, t.version) {
            (Some(text), _) => (0, Arc::new(Policy::parse(text).map_err(invalid)?)),
            (None, Some(v)) => {
                let row = self.policy(caller, Some(v)).await?;
                (v, Arc::new(Policy::parse(&row.text).map_err(invalid)?))
            }
            (None, None) => self.current_policy().await?,
        };
        let device = t.device.as_deref().unwrap_or("test-device");
        let mut request = t
            .request
            .to_core(device, &t.device_tags)
            .map_err(|e| AppError::BadRequest(e.0))?;
        let mut warnings = Vec::new();
        // As a device decides: a link is the file it leads to, invoked by the link's name.
        if let elevate_core::Target::Command(c) = &mut request.target {
            if c.invoked.is_none() {
                if let Ok(file) = std::fs::canonicalize(&c.path) {
                    let file = file.display().to_string();
                    if file != c.path {
                        warnings.push(format!(
                            "{} is a link to {file} here: decided as a device would, for {file} invoked as {}",
                            c.path, c.path
                        ));
                        c.invoked = Some(std::mem::replace(&mut c.path, file));
                    }
                }
            }
        }
        let decision = decide(&policy, &request, t.at.unwrap_or_else(|| self.now()));
        if let Some(rule) = &decision.rule {
            warnings.extend(
                path_warnings(&policy)
                    .into_iter()
                    .filter(|w| w.starts_with(&format!("rule {rule:?} "))),
            );
        }
        Ok(PolicyTestOutcome {
            decision: DecisionView::from_decision(&decision, version),
            warnings,
        })
    }
}

fn no_policy() -> AppError {
    AppError::Unavailable(
        "no policy has been applied yet, so nothing can be decided; an admin runs `elevatectl policy apply FILE`".into(),
    )
}

/// What a policy's literal paths are on this server's file system, where it tells something: a
/// path that is a link (rules that let something run match it only when the program is invoked
/// by that name, and the file it leads to only when invoked by a name like the file's), or one
/// that does not exist here.
pub fn path_warnings(policy: &Policy) -> Vec<String> {
    let mut warnings = Vec::new();
    for (rule, path) in policy.literal_paths() {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let file = std::fs::canonicalize(&path)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "a file that does not exist here".into());
                warnings.push(format!(
                    "rule {rule:?} names {path}, a link to {file}: it matches a program invoked as {path}; \
                     name {file} too if the rule is meant for the file by any name of the same kind"
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => warnings.push(format!(
                "rule {rule:?} names {path}, which does not exist on this server; check the path on the devices"
            )),
            Err(_) => {}
        }
    }
    warnings
}
