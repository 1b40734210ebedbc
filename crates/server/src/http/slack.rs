//! Slack's interactivity endpoint: the raw body and the two signature headers go to the use
//! case untouched, so the signature is checked over exactly the bytes Slack signed, before
//! anything parses them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

use super::ApiError;
use crate::app::App;

pub fn routes() -> Router<App> {
    Router::new().route("/v1/integrations/slack/actions", post(actions))
}

/// A button press (Slack's `block_actions`). 200 once recorded or refused to the person; 401
/// when the request is not signed by Slack; 400 when it is signed but not a press of ours.
async fn actions(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    app.slack_press(
        header("X-Slack-Request-Timestamp"),
        header("X-Slack-Signature"),
        &body,
    )
    .await?;
    Ok(StatusCode::OK)
}
