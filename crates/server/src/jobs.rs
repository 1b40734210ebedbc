//! Background jobs: expire requests whose time ran out.
//!
//! Must never: stop the server when a run fails (it logs and tries again next tick).

use std::time::Duration;

use crate::app::App;

/// Starts the jobs; they end when `shutdown` turns true.
pub fn spawn(
    app: App,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = app.expire_requests().await {
                        tracing::warn!(error = %e, "expiring requests failed; will retry");
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    })
}
