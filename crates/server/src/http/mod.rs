//! HTTP: the router for API v1, the portal and health checks; error mapping; extractors.
//!
//! Architecture invariant: only this module knows axum. Handlers translate HTTP into a call on
//! `App` and back; no business rule lives here.
//! Must never: answer an error with internals (500s say only that the log has the details).

pub mod api;
mod error;
pub mod openapi;
mod portal;
mod slack;

use axum::extract::DefaultBodyLimit;
use axum::Router;

pub use error::{ApiError, ApiJson, Caller};

use crate::app::App;

/// Largest request body the server reads (policies are the biggest legitimate bodies).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(portal::routes())
        .merge(slack::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

/// Serves the router on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer's address reaches handlers (`ConnectInfo`): sign-in throttling counts by source.
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
