//! API v1: discovery — observations imported from existing logs, and the reports over them.
//!
//! Must never: hold a business rule (the use cases are `app::discovery` and `app::reports`).

use axum::extract::{Path, Query, State};
use axum::Json;
use elevate_proto::v1::*;
use utoipa::IntoParams;

use super::{ApiJson, ApiResult, Caller};
use crate::app::{App, AppError, ReportParams};

/// Import observations read from existing logs (admin): at most 5,000 a call, stored all or
/// nothing; those already stored (the same record imported before) are counted, not stored.
#[utoipa::path(post, path = "/v1/imports", request_body = ImportIn, security(("bearer" = [])),
    responses((status = 200, body = ImportOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn import_observations(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<ImportIn>,
) -> ApiResult<Json<ImportOut>> {
    Ok(Json(app.import_observations(&caller, body).await?))
}

/// What a report is asked for.
#[derive(Debug, Default, serde::Deserialize, IntoParams)]
pub struct ReportQuery {
    /// The first day (`2026-11-01`) or instant; default 30 days before `until`.
    pub(crate) since: Option<String>,
    /// The end, excluded (`2026-12-01`); default the end of today (UTC).
    pub(crate) until: Option<String>,
    /// Only this department's people (`none`: people without one).
    pub(crate) department: Option<String>,
    /// The policy calendar that says what "after hours" is (default `business-hours`, else the
    /// policy's first).
    pub(crate) calendar: Option<String>,
    /// Segments: elevations per 30 days from which a person is moderate (default 5).
    pub(crate) moderate: Option<u64>,
    /// Segments: elevations per 30 days from which a person is high (default 20).
    pub(crate) high: Option<u64>,
    /// Only `device` or only `import` observations.
    pub(crate) origin: Option<String>,
}

/// `2026-11-01` (midnight UTC) or an RFC 3339 instant.
fn instant(what: &str, text: &Option<String>) -> Result<Option<jiff::Timestamp>, AppError> {
    let Some(text) = text else { return Ok(None) };
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(Some(t));
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| Some(z.timestamp()))
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "{what} {text:?} is neither a date (2026-11-01) nor an instant \
                 (2026-11-01T00:00:00Z)"
            ))
        })
}

impl ReportQuery {
    pub(crate) fn params(&self) -> Result<ReportParams, AppError> {
        let defaults = elevate_core::discovery::Thresholds::default();
        Ok(ReportParams {
            since: instant("since", &self.since)?,
            until: instant("until", &self.until)?,
            department: self.department.clone(),
            calendar: self.calendar.clone(),
            thresholds: elevate_core::discovery::Thresholds {
                moderate: self.moderate.unwrap_or(defaults.moderate),
                high: self.high.unwrap_or(defaults.high),
            },
            origin: self.origin.clone(),
        })
    }
}

/// A discovery report (admins, auditors): applications, users, departments, system, timing,
/// attempts, risky, segments. Reads rollups only.
#[utoipa::path(get, path = "/v1/reports/{name}", security(("bearer" = [])),
    params(("name" = String, Path), ReportQuery),
    responses((status = 200, body = Report), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_report(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Report>> {
    Ok(Json(app.report(&caller, &name, &q.params()?).await?))
}

/// What one person (or an unknown login) ran elevated in the period, newest first: the
/// evidence behind their segment (admins, auditors).
#[utoipa::path(get, path = "/v1/reports/people/{who}", security(("bearer" = [])),
    params(("who" = String, Path), ReportQuery),
    responses((status = 200, body = EvidenceView), (status = 400, body = ErrorBody)))]
pub async fn show_evidence(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(who): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<EvidenceView>> {
    Ok(Json(app.evidence(&caller, &who, &q.params()?).await?))
}
