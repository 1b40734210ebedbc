//! API v1 handlers: JSON in, JSON out, each a thin call on `App`. The `#[utoipa::path]`
//! annotations generate the committed OpenAPI document (`docs/openapi.json`).
//!
//! Must never: hold a business rule; accept a body without `ApiJson` (which bounds and checks it).

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use elevate_proto::v1::*;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiError, ApiJson, Caller};
use crate::app::{device_view, AccountChange, App};
use crate::store::DeliveryRow;

mod audit;
mod discovery;
mod people;
mod policies;
mod requests;
pub use audit::*;
pub use discovery::*;
pub use people::*;
pub use policies::*;
pub use requests::*;

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/tokens", post(create_token))
        .route("/v1/whoami", get(whoami))
        .route("/v1/tokens", get(list_tokens))
        .route("/v1/tokens/{id}/revoke", post(revoke_token))
        .route("/v1/accounts/{name}/disable", post(disable_account))
        .route("/v1/accounts/{name}/enable", post(enable_account))
        .route("/v1/accounts/{name}/remove", post(remove_account))
        .route("/v1/enrol-tokens", post(create_enrol_token))
        .route("/v1/enrol", post(enrol))
        .route("/v1/devices", get(list_devices))
        .route("/v1/devices/{name}/rights", get(device_rights))
        .route("/v1/devices/{name}/revoke", post(revoke_device))
        .route("/v1/policies", get(list_policies).post(apply_policy))
        .route("/v1/policies/current", get(current_policy))
        .route("/v1/policies/{version}", get(show_policy))
        .route("/v1/policies/{from}/diff/{to}", get(diff_policies))
        .route("/v1/policy-bundle", get(policy_bundle))
        .route("/v1/policy-test", post(test_policy))
        .route("/v1/requests", get(list_requests).post(create_request))
        .route("/v1/requests/{id}", get(show_request))
        .route("/v1/requests/{id}/wait", get(wait_request))
        .route("/v1/requests/{id}/approve", post(approve_request))
        .route("/v1/requests/{id}/deny", post(deny_request))
        .route("/v1/requests/{id}/cancel", post(cancel_request))
        .route("/v1/requests/{id}/start", post(start_request))
        .route("/v1/requests/{id}/finish", post(finish_request))
        .route("/v1/offline/challenges", post(inspect_challenge))
        .route("/v1/offline/responses", post(respond_offline))
        .route("/v1/audit", get(audit_page))
        // The agent's batches are sized to this (elevate_proto::limits).
        .route(
            "/v1/audit/events",
            post(ingest_audit).layer(DefaultBodyLimit::max(
                elevate_proto::limits::MAX_INGEST_BODY,
            )),
        )
        .route("/v1/audit/verify", get(verify_audit))
        .route("/v1/audit/export", get(export_audit))
        .route("/v1/people", get(list_people))
        .route(
            "/v1/people/{user_name}",
            get(show_person).put(put_person).delete(remove_person),
        )
        .route(
            "/v1/directory/import",
            post(import_directory).layer(DefaultBodyLimit::max(elevate_proto::v1::MAX_IMPORT_BODY)),
        )
        .route(
            "/v1/imports",
            post(import_observations).layer(DefaultBodyLimit::max(
                elevate_proto::v1::MAX_IMPORT_EVENTS_BODY,
            )),
        )
        .route("/v1/reports/people/{who}", get(show_evidence))
        .route("/v1/reports/{name}", get(show_report))
        .route("/v1/device-users", put(report_device_users))
        .route("/v1/scim-tokens", post(create_scim_token))
        .route("/v1/deliveries", get(list_deliveries))
        .route("/v1/deliveries/{id}", get(show_delivery))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn ready(State(app): State<App>) -> ApiResult<Json<Health>> {
    if app.store().ping().await {
        Ok(health().await)
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database does not answer",
        ))
    }
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document(),
    )
}

/// Exchange an account's password for an API token.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenRequest,
    responses((status = 201, body = TokenIssued), (status = 401, body = ErrorBody)))]
pub async fn create_token(
    State(app): State<App>,
    ConnectInfo(super::PeerAddr(peer)): ConnectInfo<super::PeerAddr>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenIssued>)> {
    let label = body.label.as_deref();
    let (token, account, expires_at) = app
        .issue_token(&body.account, &body.password, label, Some(peer.ip()))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenIssued {
            token,
            account: account.name,
            roles: account.roles,
            expires_at,
        }),
    ))
}

/// The account behind the token.
#[utoipa::path(get, path = "/v1/whoami", security(("bearer" = [])),
    responses((status = 200, body = Account), (status = 401, body = ErrorBody)))]
pub async fn whoami(Caller(caller): Caller) -> ApiResult<Json<Account>> {
    match caller {
        crate::app::Principal::Account(a) => Ok(Json(Account {
            name: a.name,
            roles: a.roles,
            groups: a.groups,
        })),
        crate::app::Principal::Device(d) => Ok(Json(Account {
            name: format!("device:{}", d.name),
            roles: vec![],
            groups: vec![],
        })),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Whose tokens (admins; default: your own).
    pub account: Option<String>,
    /// Everyone's (admins).
    #[serde(default)]
    pub all: bool,
}

/// Your unexpired API tokens (admins: anyone's, or everyone's), never the tokens themselves.
#[utoipa::path(get, path = "/v1/tokens", params(TokenQuery), security(("bearer" = [])),
    responses((status = 200, body = [ApiToken])))]
pub async fn list_tokens(
    State(app): State<App>,
    Caller(caller): Caller,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Json<Vec<ApiToken>>> {
    let tokens = app.api_tokens(&caller, q.account.as_deref(), q.all).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| ApiToken {
                id: t.id,
                account: t.account,
                label: t.label,
                created_at: t.created_at,
                expires_at: t.expires_at,
            })
            .collect(),
    ))
}

/// Revoke an API token (yours; admins: anyone's): refused from now on.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.revoke_api_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable an account (admins): its password, tokens and portal sign-ins stop working.
#[utoipa::path(post, path = "/v1/accounts/{name}/disable", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn disable_account(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    app.change_account_as(&caller, &name, AccountChange::Disable)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable a disabled account again (admins); it signs in anew.
#[utoipa::path(post, path = "/v1/accounts/{name}/enable", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn enable_account(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    app.change_account_as(&caller, &name, AccountChange::Enable)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove an account (admins), with its tokens and sign-ins; the audit log keeps its history.
#[utoipa::path(post, path = "/v1/accounts/{name}/remove", params(("name" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_account(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    app.change_account_as(&caller, &name, AccountChange::Remove)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a one-time enrolment token (admin).
#[utoipa::path(post, path = "/v1/enrol-tokens", request_body = EnrolTokenCreate, security(("bearer" = [])),
    responses((status = 201, body = EnrolTokenCreated), (status = 403, body = ErrorBody)))]
pub async fn create_enrol_token(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<EnrolTokenCreate>,
) -> ApiResult<(StatusCode, Json<EnrolTokenCreated>)> {
    let created = app
        .create_enrol_token(&caller, body.ttl_secs, &body.tags)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Enrol a device with a one-time token.
#[utoipa::path(post, path = "/v1/enrol", request_body = EnrolRequest,
    responses((status = 201, body = Enrolled), (status = 401, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn enrol(
    State(app): State<App>,
    ApiJson(body): ApiJson<EnrolRequest>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.enrol(&body.token, &body.name).await?),
    ))
}

/// Revoke a device (admins): its credential is refused at once; enrolling it again gives it a
/// new credential and offline secret.
#[utoipa::path(post, path = "/v1/devices/{name}/revoke", request_body = DeviceRevoke,
    security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = Device), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn revoke_device(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DeviceRevoke>,
) -> ApiResult<Json<Device>> {
    let device = app.revoke_device(&caller, &name, &body.reason).await?;
    Ok(Json(device_view(device)))
}

/// Whose offline challenge this is: the device(s) with its key and the user last seen with its
/// uid, for the helpdesk to check before answering (approvers, admins).
#[utoipa::path(post, path = "/v1/offline/challenges", request_body = OfflineChallengeIn, security(("bearer" = [])),
    responses((status = 200, body = OfflineChallengeView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn inspect_challenge(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<OfflineChallengeIn>,
) -> ApiResult<Json<OfflineChallengeView>> {
    Ok(Json(app.view_challenge(&caller, &body.challenge).await?))
}

/// Answer an offline challenge: the response code to read back to the person at the device,
/// recorded in the audit log first (approvers, admins).
#[utoipa::path(post, path = "/v1/offline/responses", request_body = OfflineRespondIn, security(("bearer" = [])),
    responses((status = 201, body = OfflineResponseOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn respond_offline(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<OfflineRespondIn>,
) -> ApiResult<(StatusCode, Json<OfflineResponseOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.respond_offline(&caller, &body).await?),
    ))
}

/// Which deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only those about this request.
    pub request: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

fn delivery_view(d: DeliveryRow) -> DeliveryView {
    DeliveryView {
        id: d.id,
        channel: d.channel.to_string(),
        target: d.target,
        event: d.event,
        subject: d.subject,
        state: d.state,
        attempts: d.attempts,
        next_at: d.next_at,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at,
        done_at: d.done_at,
        tries: Vec::new(),
    }
}

/// The delivery log: notifications sent or waiting, newest first (admins, auditors).
#[utoipa::path(get, path = "/v1/deliveries", security(("bearer" = [])), params(DeliveryQuery),
    responses((status = 200, body = [DeliveryView]), (status = 403, body = ErrorBody)))]
pub async fn list_deliveries(
    State(app): State<App>,
    Caller(caller): Caller,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let rows = app
        .deliveries(&caller, q.request.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(rows.into_iter().map(delivery_view).collect()))
}

/// One delivery with every attempt (admins, auditors).
#[utoipa::path(get, path = "/v1/deliveries/{id}", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody)))]
pub async fn show_delivery(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryView>> {
    let detail = app.delivery(&caller, &id).await?;
    let mut view = delivery_view(detail.delivery);
    view.tries = detail
        .attempts
        .into_iter()
        .map(|a| DeliveryAttemptView {
            attempt: a.attempt,
            at: a.at,
            status: a.status,
            error: a.error,
            elapsed_ms: a.elapsed_ms,
        })
        .collect();
    Ok(Json(view))
}

/// Enrolled devices.
#[utoipa::path(get, path = "/v1/devices", security(("bearer" = [])), responses((status = 200, body = [Device])))]
pub async fn list_devices(
    State(app): State<App>,
    Caller(caller): Caller,
) -> ApiResult<Json<Vec<Device>>> {
    let devices = app.devices(&caller).await?;
    Ok(Json(devices.into_iter().map(device_view).collect()))
}

/// Standing admin rights a device reported as needing a person: grants it cannot take apart
/// (a file and line), changes that failed, groups old sessions still hold. Latest first.
#[utoipa::path(get, path = "/v1/devices/{name}/rights", security(("bearer" = [])),
    params(("name" = String, Path, description = "Device name")),
    responses((status = 200, body = [RightAlert]), (status = 404, body = ErrorBody)))]
pub async fn device_rights(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<RightAlert>>> {
    Ok(Json(app.device_rights(&caller, &name).await?))
}
