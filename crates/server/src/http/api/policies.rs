//! API v1: policies: apply, list, show, diff, the signed bundle devices fetch, and `policy
//! test`.
//!
//! Must never: hold a business rule (the use cases are `app::policy`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use elevate_proto::v1::*;
use elevate_proto::SignedBundle;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiJson, Caller};
use crate::app::App;
use crate::store::PolicyRow;

use super::ApiResult;

fn policy_meta(p: &PolicyRow) -> PolicyVersion {
    PolicyVersion {
        version: p.version,
        sha256: p.sha256.clone(),
        author: p.author.clone(),
        comment: p.comment.clone(),
        created_at: p.created_at,
        warnings: vec![],
    }
}

fn policy_document(p: PolicyRow) -> PolicyDocument {
    PolicyDocument {
        meta: policy_meta(&p),
        text: p.text,
    }
}

/// Apply a new policy version (admin). Invalid policies are refused with line and field.
#[utoipa::path(post, path = "/v1/policies", request_body = PolicyApply, security(("bearer" = [])),
    responses((status = 201, body = PolicyVersion), (status = 422, body = ErrorBody)))]
pub async fn apply_policy(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<PolicyApply>,
) -> ApiResult<(StatusCode, Json<PolicyVersion>)> {
    let (row, warnings) = app
        .apply_policy(&caller, &body.text, body.comment.as_deref())
        .await?;
    let mut applied = policy_meta(&row);
    applied.warnings = warnings;
    Ok((StatusCode::CREATED, Json(applied)))
}

/// All policy versions, oldest first.
#[utoipa::path(get, path = "/v1/policies", security(("bearer" = [])), responses((status = 200, body = [PolicyVersion])))]
pub async fn list_policies(
    State(app): State<App>,
    Caller(caller): Caller,
) -> ApiResult<Json<Vec<PolicyVersion>>> {
    Ok(Json(
        app.policies(&caller)
            .await?
            .iter()
            .map(policy_meta)
            .collect(),
    ))
}

/// The current policy with its text.
#[utoipa::path(get, path = "/v1/policies/current", security(("bearer" = [])), responses((status = 200, body = PolicyDocument)))]
pub async fn current_policy(
    State(app): State<App>,
    Caller(caller): Caller,
) -> ApiResult<Json<PolicyDocument>> {
    Ok(Json(policy_document(app.policy(&caller, None).await?)))
}

/// One policy version with its text.
#[utoipa::path(get, path = "/v1/policies/{version}", security(("bearer" = [])),
    params(("version" = u64, Path, description = "version number")),
    responses((status = 200, body = PolicyDocument), (status = 404, body = ErrorBody)))]
pub async fn show_policy(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(version): Path<u64>,
) -> ApiResult<Json<PolicyDocument>> {
    Ok(Json(policy_document(
        app.policy(&caller, Some(version)).await?,
    )))
}

/// Unified diff between two versions.
#[utoipa::path(get, path = "/v1/policies/{from}/diff/{to}", security(("bearer" = [])),
    params(("from" = u64, Path), ("to" = u64, Path)),
    responses((status = 200, body = PolicyDiff)))]
pub async fn diff_policies(
    State(app): State<App>,
    Caller(caller): Caller,
    Path((from, to)): Path<(u64, u64)>,
) -> ApiResult<Json<PolicyDiff>> {
    let diff = app.policy_diff(&caller, from, to).await?;
    Ok(Json(PolicyDiff { from, to, diff }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BundleQuery {
    /// A stored version instead of the current one.
    pub version: Option<u64>,
}

/// The current policy signed with the server's Ed25519 key (for agents).
#[utoipa::path(get, path = "/v1/policy-bundle", security(("bearer" = [])), params(BundleQuery),
    responses((status = 200, body = SignedBundle), (status = 503, body = ErrorBody)))]
pub async fn policy_bundle(
    State(app): State<App>,
    Caller(caller): Caller,
    Query(q): Query<BundleQuery>,
) -> ApiResult<Json<SignedBundle>> {
    Ok(Json(app.policy_bundle(&caller, q.version).await?))
}

/// Explain how a policy would decide a request, without creating it.
#[utoipa::path(post, path = "/v1/policy-test", request_body = PolicyTest, security(("bearer" = [])),
    responses((status = 200, body = PolicyTestResult), (status = 422, body = ErrorBody)))]
pub async fn test_policy(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<PolicyTest>,
) -> ApiResult<Json<PolicyTestResult>> {
    let outcome = app.test_policy(&caller, &body).await?;
    Ok(Json(PolicyTestResult {
        decision: outcome.decision,
        warnings: outcome.warnings,
    }))
}
