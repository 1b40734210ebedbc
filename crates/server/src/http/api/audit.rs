//! API v1: the audit log: a page, ingest (devices), verify the chain, export.
//!
//! Must never: hold a business rule (the use cases are `app::audit`).

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use elevate_proto::v1::*;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiJson, Caller};
use crate::app::App;

use super::ApiResult;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this sequence number.
    pub after: Option<u64>,
    /// At most this many (default 500).
    pub limit: Option<u32>,
}

/// Audit records in chain order.
#[utoipa::path(get, path = "/v1/audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = [AuditRecord])))]
pub async fn audit_page(
    State(app): State<App>,
    Caller(caller): Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    let records = app
        .audit_page(&caller, q.after.unwrap_or(0), q.limit.unwrap_or(500))
        .await?;
    Ok(Json(records.into_iter().map(AuditRecord::from).collect()))
}

/// Ingest a batch of device events; the same event id is stored once.
#[utoipa::path(post, path = "/v1/audit/events", request_body = AuditBatch, security(("bearer" = [])),
    responses((status = 200, body = IngestResult), (status = 403, body = ErrorBody)))]
pub async fn ingest_audit(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<AuditBatch>,
) -> ApiResult<Json<IngestResult>> {
    Ok(Json(app.ingest_audit(&caller, &body.events).await?))
}

/// Verify the whole hash chain; names the first bad record.
#[utoipa::path(get, path = "/v1/audit/verify", security(("bearer" = [])), responses((status = 200, body = VerifyReport)))]
pub async fn verify_audit(
    State(app): State<App>,
    Caller(caller): Caller,
) -> ApiResult<Json<VerifyReport>> {
    Ok(Json(app.verify_audit(&caller).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    pub format: Option<String>,
}

/// Export the whole chain as JSON lines or CSV.
#[utoipa::path(get, path = "/v1/audit/export", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, description = "JSON lines or CSV", content_type = "text/plain")))]
pub async fn export_audit(
    State(app): State<App>,
    Caller(caller): Caller,
    Query(q): Query<ExportQuery>,
) -> ApiResult<impl IntoResponse> {
    let format = q.format.as_deref().unwrap_or("jsonl");
    let (content_type, body) = app.export_audit(&caller, format).await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}
