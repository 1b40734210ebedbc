//! API v1: requests: create (devices), list, show, wait, approve, deny, cancel, start, finish.
//!
//! Must never: hold a business rule (the use cases are `app::requests`).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use elevate_proto::v1::*;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiJson, Caller};
use crate::app::{App, Via};

use super::ApiResult;

/// Ask for elevation (enrolled devices). Decided at once: `approved` (auto), `pending` or `denied`.
#[utoipa::path(post, path = "/v1/requests", request_body = NewRequest, security(("bearer" = [])),
    responses((status = 201, body = RequestView), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_request(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<NewRequest>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_request(&caller, &body).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only requests in this state.
    pub state: Option<String>,
    /// Only requests of this user (a device always sees only its own requests).
    pub user: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Requests, newest first. Accounts see all; an enrolled device sees its own.
#[utoipa::path(get, path = "/v1/requests", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = [RequestView])))]
pub async fn list_requests(
    State(app): State<App>,
    Caller(caller): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<RequestView>>> {
    Ok(Json(
        app.requests(
            &caller,
            q.state.as_deref(),
            q.user.as_deref(),
            q.limit.unwrap_or(100),
        )
        .await?,
    ))
}

/// One request with its approvals.
#[utoipa::path(get, path = "/v1/requests/{id}", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 404, body = ErrorBody)))]
pub async fn show_request(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(app.request_view(&caller, &id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Longest wait in seconds (default 30, at most 60).
    pub timeout_secs: Option<u64>,
}

/// Long-poll: answers as soon as the request leaves `pending`, or at the timeout.
#[utoipa::path(get, path = "/v1/requests/{id}/wait", security(("bearer" = [])),
    params(("id" = String, Path), WaitQuery), responses((status = 200, body = RequestView)))]
pub async fn wait_request(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<RequestView>> {
    let timeout = Duration::from_secs(q.timeout_secs.unwrap_or(30).min(60));
    Ok(Json(app.wait_request(&caller, &id, timeout).await?))
}

/// Approve (approvers of the routed group; never the requester).
#[utoipa::path(post, path = "/v1/requests/{id}/approve", request_body = Verdict, security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_request(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Verdict>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(
        app.decide_request(&caller, &id, true, body.comment.as_deref(), Via::Api)
            .await?,
    ))
}

/// Deny (approvers of the routed group; never the requester).
#[utoipa::path(post, path = "/v1/requests/{id}/deny", request_body = Verdict, security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny_request(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Verdict>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(
        app.decide_request(&caller, &id, false, body.comment.as_deref(), Via::Api)
            .await?,
    ))
}

/// Cancel a request (the device that made it).
#[utoipa::path(post, path = "/v1/requests/{id}/cancel", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 409, body = ErrorBody)))]
pub async fn cancel_request(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(app.cancel_request(&caller, &id).await?))
}

/// The device started the approved command.
#[utoipa::path(post, path = "/v1/requests/{id}/start", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 409, body = ErrorBody)))]
pub async fn start_request(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(app.start_request(&caller, &id).await?))
}

/// The device reports the exit status of the command.
#[utoipa::path(post, path = "/v1/requests/{id}/finish", request_body = Finished, security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 409, body = ErrorBody)))]
pub async fn finish_request(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Finished>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(
        app.finish_request(&caller, &id, body.exit_code).await?,
    ))
}
