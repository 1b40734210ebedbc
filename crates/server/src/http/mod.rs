//! HTTP: the router for API v1, the portal and health checks; error mapping; extractors.
//!
//! Architecture invariant: only this module knows axum. Handlers translate HTTP into a call on
//! `App` and back; no business rule lives here.
//! Must never: answer an error with internals (500s say only that the log has the details).

pub mod api;
mod error;
pub mod openapi;
mod portal;
mod scim;
mod slack;
pub mod tls;

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
        .merge(scim::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

/// The address a connection came from, for handlers that count by source (`ConnectInfo`). One
/// impl per listener: a generic one would overlap axum's own blanket impl.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

/// Serves the router on `listener` (plain TCP, or `tls::TlsListener`) until `shutdown`
/// completes. The peer's address reaches handlers (`ConnectInfo<PeerAddr>`): sign-in
/// throttling counts by source.
pub async fn serve<L>(
    listener: L,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    PeerAddr: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<PeerAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
