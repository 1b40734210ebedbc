//! Background jobs: escalate requests whose SLA passed, expire those whose time ran out, sign
//! audit checkpoints, send queued notifications, and roll up discovery's pending observations.
//!
//! Must never: stop the server when a run fails (it logs and tries again next tick), or let a
//! slow notification receiver delay expiry (each job has its own task).

use std::time::Duration;

use crate::app::App;

/// Starts the jobs; they end when `shutdown` turns true.
pub fn spawn(
    app: App,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let deliveries = tokio::spawn(send_deliveries(app.clone(), shutdown.clone()));
    let listener = tokio::spawn(listen_for_changes(app.clone()));
    let rollups = tokio::spawn(roll_up_discovery(app.clone(), shutdown.clone()));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = app.escalate_due().await {
                        tracing::warn!(error = %e, "escalating requests failed; will retry");
                    }
                    if let Err(e) = app.expire_requests().await {
                        tracing::warn!(error = %e, "expiring requests failed; will retry");
                    }
                    if let Err(e) = app.checkpoint_audit().await {
                        tracing::warn!(error = %e, "signing an audit checkpoint failed; will retry");
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        deliveries.abort();
        listener.abort();
        rollups.abort();
    })
}

/// PostgreSQL: wakes this replica's long polls and live pages when another replica changes a
/// request (LISTEN/NOTIFY), reconnecting after a failure.
async fn listen_for_changes(app: App) {
    loop {
        let a = app.clone();
        match app
            .store()
            .listen_for_changes(&app.replica, move || a.changed_elsewhere())
            .await
        {
            Ok(()) => return, // SQLite: nothing to listen for
            Err(e) => {
                tracing::warn!(error = %e, "listening for other replicas' changes failed; retrying")
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Sends due notifications when one is queued here, and every two seconds for those queued
/// by other replicas or due for a retry.
async fn send_deliveries(app: App, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = app.send_due_deliveries().await {
            tracing::warn!(error = %e, "sending notifications failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = app.deliveries_due.notified() => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// Rolls up discovery's pending observations every second: a bulk import's batches are rolled
/// up together, and reports rarely find much to roll up before they read.
async fn roll_up_discovery(app: App, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = app.store().roll_up_pending().await {
            tracing::warn!(error = %e, "rolling up discovery failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => break,
        }
    }
}
