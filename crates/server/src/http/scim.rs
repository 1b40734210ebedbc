//! SCIM 2.0 at `/scim/v2`: discovery (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`),
//! `Users` and `Groups` (list with filters and paging, create, read, replace, patch, delete),
//! bodies and answers in `application/scim+json`, errors in SCIM's own shape.
//!
//! Must never: answer anything but discovery's 401 without a provider's bearer token, or hold a
//! business rule (the use cases are `app::scim`, the protocol `crate::scim`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use crate::app::scim::{ListQuery, Provider, ScimError};
use crate::app::App;
use crate::scim::{self, Kind};

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/.search", post(search_users))
        .route(
            "/scim/v2/Users/{id}",
            get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route("/scim/v2/Groups/.search", post(search_groups))
        .route(
            "/scim/v2/Groups/{id}",
            get(get_group)
                .put(put_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route("/scim/v2/.search", post(search_all))
        .route("/scim/v2/{*rest}", axum::routing::any(unknown))
}

fn scim_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        scim_json(
            status,
            &scim::error_json(self.status, self.scim_type, &self.detail),
        )
    }
}

type ScimResult = Result<Response, ScimError>;

/// The provider behind the request's bearer token.
async fn provider(app: &App, headers: &HeaderMap) -> Result<Provider, ScimError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ScimError {
            status: 401,
            scim_type: None,
            detail: "SCIM needs a bearer token (elevatectl directory scim-token PROVIDER)".into(),
        })?;
    app.scim_provider(token.trim()).await
}

fn body_json(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body).map_err(|e| ScimError {
        status: 400,
        scim_type: Some("invalidSyntax"),
        detail: format!("the body is not JSON: {e}"),
    })
}

fn base(app: &App) -> String {
    format!("{}/scim/v2", app.public_url().trim_end_matches('/'))
}

async fn service_provider_config(State(app): State<App>, headers: HeaderMap) -> ScimResult {
    provider(&app, &headers).await?;
    Ok(scim_json(
        StatusCode::OK,
        &scim::service_provider_config(&base(&app)),
    ))
}

async fn resource_types(State(app): State<App>, headers: HeaderMap) -> ScimResult {
    provider(&app, &headers).await?;
    let all = scim::resource_types(&base(&app));
    let n = all.len();
    Ok(scim_json(StatusCode::OK, &scim::list(all, n, 1)))
}

async fn resource_type(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult {
    provider(&app, &headers).await?;
    scim::resource_types(&base(&app))
        .into_iter()
        .find(|r| r["id"] == id.as_str())
        .map(|r| scim_json(StatusCode::OK, &r))
        .ok_or_else(|| ScimError {
            status: 404,
            scim_type: None,
            detail: format!("no resource type {id}"),
        })
}

async fn schemas(State(app): State<App>, headers: HeaderMap) -> ScimResult {
    provider(&app, &headers).await?;
    let all = scim::schemas(&base(&app));
    let n = all.len();
    Ok(scim_json(StatusCode::OK, &scim::list(all, n, 1)))
}

async fn schema(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> ScimResult {
    provider(&app, &headers).await?;
    scim::schemas(&base(&app))
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .map(|s| scim_json(StatusCode::OK, &s))
        .ok_or_else(|| ScimError {
            status: 404,
            scim_type: None,
            detail: format!("no schema {id}"),
        })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    filter: Option<String>,
    start_index: Option<usize>,
    count: Option<usize>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

async fn list(app: &App, headers: &HeaderMap, kind: Kind, p: ListParams) -> ScimResult {
    let provider = provider(app, headers).await?;
    let q = ListQuery {
        filter: p.filter.as_deref(),
        start: p.start_index,
        count: p.count,
    };
    let (page, total, start) = app.scim_list(&provider, kind, &q).await?;
    let page = page
        .into_iter()
        .map(|r| scim::project(r, p.attributes.as_deref(), p.excluded_attributes.as_deref()))
        .collect();
    Ok(scim_json(StatusCode::OK, &scim::list(page, total, start)))
}

/// A `.search` body: the same parameters as a list's query.
fn search_params(body: &Bytes) -> Result<ListParams, ScimError> {
    let v = body_json(body)?;
    let text = |k: &str| {
        scim::filter::member(&v, k).and_then(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
    };
    let number = |k: &str| {
        scim::filter::member(&v, k)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    };
    Ok(ListParams {
        filter: text("filter"),
        start_index: number("startIndex"),
        count: number("count"),
        attributes: text("attributes"),
        excluded_attributes: text("excludedAttributes"),
    })
}

async fn list_users(
    State(app): State<App>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> ScimResult {
    list(&app, &headers, Kind::User, p).await
}

async fn list_groups(
    State(app): State<App>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> ScimResult {
    list(&app, &headers, Kind::Group, p).await
}

async fn search_users(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ScimResult {
    // Who asks, before anything of the body is read.
    provider(&app, &headers).await?;
    let p = search_params(&body)?;
    list(&app, &headers, Kind::User, p).await
}

async fn search_groups(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ScimResult {
    provider(&app, &headers).await?;
    let p = search_params(&body)?;
    list(&app, &headers, Kind::Group, p).await
}

/// Searching Users and Groups at once is not offered (RFC 7644 §3.4.3 lets a server say so).
async fn search_all(State(app): State<App>, headers: HeaderMap) -> ScimResult {
    provider(&app, &headers).await?;
    Err(ScimError {
        status: 501,
        scim_type: None,
        detail: "search /Users/.search or /Groups/.search; not both at once".into(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

async fn read(app: &App, headers: &HeaderMap, kind: Kind, id: &str, p: Projection) -> ScimResult {
    let provider = provider(app, headers).await?;
    let r = app.scim_get(&provider, kind, id).await?;
    Ok(scim_json(
        StatusCode::OK,
        &scim::project(r, p.attributes.as_deref(), p.excluded_attributes.as_deref()),
    ))
}

async fn get_user(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
) -> ScimResult {
    read(&app, &headers, Kind::User, &id, p).await
}

async fn get_group(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
) -> ScimResult {
    read(&app, &headers, Kind::Group, &id, p).await
}

/// POST (create), PUT (replace) or PATCH one resource.
async fn write(
    app: &App,
    headers: &HeaderMap,
    kind: Kind,
    id: Option<&str>,
    patch: bool,
    body: &Bytes,
) -> ScimResult {
    let provider = provider(app, headers).await?;
    let body = body_json(body)?;
    let created = id.is_none();
    let r = app
        .scim_write(&provider, kind, id, |stored| match (patch, stored) {
            (true, Some(doc)) => scim::patch::patch(kind, doc, &body),
            (true, None) => Err(scim::invalid("noTarget", "nothing to patch")),
            (false, _) => scim::clean(kind, &body),
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = scim_json(status, &r);
    if let Some(location) = r["meta"]["location"].as_str() {
        if let Ok(v) = location.parse() {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(response)
}

async fn create_user(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ScimResult {
    write(&app, &headers, Kind::User, None, false, &body).await
}

async fn create_group(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ScimResult {
    write(&app, &headers, Kind::Group, None, false, &body).await
}

async fn put_user(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult {
    write(&app, &headers, Kind::User, Some(&id), false, &body).await
}

async fn put_group(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult {
    write(&app, &headers, Kind::Group, Some(&id), false, &body).await
}

async fn patch_user(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult {
    write(&app, &headers, Kind::User, Some(&id), true, &body).await
}

async fn patch_group(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ScimResult {
    write(&app, &headers, Kind::Group, Some(&id), true, &body).await
}

async fn delete_user(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult {
    let provider = provider(&app, &headers).await?;
    app.scim_delete(&provider, Kind::User, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_group(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult {
    let provider = provider(&app, &headers).await?;
    app.scim_delete(&provider, Kind::Group, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unknown(State(app): State<App>, headers: HeaderMap) -> ScimResult {
    provider(&app, &headers).await?;
    Err(ScimError {
        status: 404,
        scim_type: None,
        detail: "no such SCIM endpoint; see /scim/v2/ResourceTypes".into(),
    })
}
