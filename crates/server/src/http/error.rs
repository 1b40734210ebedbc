//! Error responses and extractors: every failure becomes a JSON `ErrorBody` with a stable code;
//! bad JSON, wrong content types and oversized bodies included.
//!
//! Must never: put an internal error's text into a response.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use elevate_proto::v1::ErrorBody;
use serde::de::DeserializeOwned;

use crate::app::{App, AppError, Principal};

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: code.into(),
                message: message.into(),
                details: None,
            },
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m),
            AppError::InvalidPolicy {
                message,
                line,
                column,
                field,
            } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: ErrorBody {
                    error: "invalid_policy".into(),
                    message,
                    details: Some(
                        serde_json::json!({ "line": line, "column": column, "field": field }),
                    ),
                },
            },
            AppError::Unauthenticated(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m)
            }
            AppError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            AppError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            AppError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            AppError::Gone(m) => ApiError::new(StatusCode::GONE, "gone", m),
            AppError::TooManyAttempts(m) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", m)
            }
            AppError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            AppError::Unexpected(e) => {
                let id = uuid::Uuid::now_v7();
                tracing::error!(error = ?e, %id, "unexpected error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("internal error {id}; the server log has the details"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// `Json` whose rejections are `ErrorBody`s.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let (code, hint) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
            format!("the body is larger than {} bytes", super::BODY_LIMIT),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`".to_string(),
        ),
        _ => ("bad_request", r.body_text()),
    };
    // Malformed and mistyped JSON are both the caller's syntax problem: 400.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::new(status, code, hint)
}

/// The authenticated caller of an API route (`Authorization: Bearer …`).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "send `Authorization: Bearer TOKEN` (elevatectl login gets a token)",
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the Authorization header must be `Bearer TOKEN`",
                )
            })?;
        Ok(Caller(app.authenticate(token).await?))
    }
}
