//! API v1: the people directory (list, show, write, remove, import) and the human logins a
//! device reports at check-in.
//!
//! Must never: hold a business rule (the use cases are `app::people`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use elevate_proto::v1::*;

use super::{ApiError, ApiJson, ApiResult, Caller};
use crate::app::App;

/// Everyone in the directory (admins, auditors, approvers).
#[utoipa::path(get, path = "/v1/people", security(("bearer" = [])),
    responses((status = 200, body = [PersonView])))]
pub async fn list_people(
    State(app): State<App>,
    Caller(caller): Caller,
) -> ApiResult<Json<Vec<PersonView>>> {
    Ok(Json(app.people(&caller).await?))
}

/// One person.
#[utoipa::path(get, path = "/v1/people/{user_name}", security(("bearer" = [])),
    params(("user_name" = String, Path)),
    responses((status = 200, body = PersonView), (status = 404, body = ErrorBody)))]
pub async fn show_person(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(user_name): Path<String>,
) -> ApiResult<Json<PersonView>> {
    Ok(Json(app.person(&caller, &user_name).await?))
}

/// Create or replace a person (admin). An account, Slack id, or login in one scope that is
/// already someone else's is refused (409), naming both.
#[utoipa::path(put, path = "/v1/people/{user_name}", request_body = PersonIn, security(("bearer" = [])),
    params(("user_name" = String, Path)),
    responses((status = 200, body = PersonView), (status = 409, body = ErrorBody)))]
pub async fn put_person(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(user_name): Path<String>,
    ApiJson(body): ApiJson<PersonIn>,
) -> ApiResult<Json<PersonView>> {
    if body.user_name != user_name {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "the path names {user_name:?} and the body {:?}; they must be the same person",
                body.user_name
            ),
        ));
    }
    Ok(Json(app.put_person(&caller, body).await?))
}

/// Remove a person (admin). Their accounts stay; the links go.
#[utoipa::path(delete, path = "/v1/people/{user_name}", security(("bearer" = [])),
    params(("user_name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_person(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(user_name): Path<String>,
) -> ApiResult<StatusCode> {
    app.remove_person(&caller, &user_name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Import many people at once (admin), all or nothing; `dry_run` says what would change.
#[utoipa::path(post, path = "/v1/directory/import", request_body = DirectoryImport, security(("bearer" = [])),
    responses((status = 200, body = DirectoryImportOut), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn import_directory(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<DirectoryImport>,
) -> ApiResult<Json<DirectoryImportOut>> {
    Ok(Json(app.import_directory(&caller, body).await?))
}

/// A device's check-in: its human logins (uid ≥ 1000), replacing what it said before.
#[utoipa::path(put, path = "/v1/device-users", request_body = DeviceUsersIn, security(("bearer" = [])),
    responses((status = 200, body = DeviceUsersOut), (status = 400, body = ErrorBody)))]
pub async fn report_device_users(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<DeviceUsersIn>,
) -> ApiResult<Json<DeviceUsersOut>> {
    let recorded = app.report_device_users(&caller, body).await?;
    Ok(Json(DeviceUsersOut { recorded }))
}

/// A SCIM bearer token for an identity provider (admin); its previous one stops working.
#[utoipa::path(post, path = "/v1/scim-tokens", request_body = ScimTokenIn, security(("bearer" = [])),
    responses((status = 201, body = ScimTokenOut), (status = 400, body = ErrorBody)))]
pub async fn create_scim_token(
    State(app): State<App>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<ScimTokenIn>,
) -> ApiResult<(StatusCode, Json<ScimTokenOut>)> {
    let token = app.create_scim_token(&caller, &body.provider).await?;
    Ok((
        StatusCode::CREATED,
        Json(ScimTokenOut {
            provider: body.provider,
            token,
            base_url: format!("{}/scim/v2", app.public_url().trim_end_matches('/')),
        }),
    ))
}
