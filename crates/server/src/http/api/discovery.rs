//! API v1: discovery — observations imported from existing logs, and the reports over them.
//!
//! Must never: hold a business rule (the use cases are `app::discovery` and `app::reports`).

use axum::extract::State;
use axum::Json;
use elevate_proto::v1::*;

use super::{ApiJson, ApiResult, Caller};
use crate::app::App;

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
