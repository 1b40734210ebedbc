//! Several server processes on one PostgreSQL: a change made through one wakes the long polls
//! and live portal pages of another (LISTEN/NOTIFY). SQLite is served by one process.

use std::sync::Arc;
use std::time::Duration;

use elevate_server::app::{Keys, Settings};
use elevate_server::store::Store;
use elevate_server::App;
use elevate_testkit::{available, command_request, monday_morning, spawn_with, Db};

#[tokio::test]
async fn a_change_on_one_replica_wakes_the_live_pages_of_another() {
    if !available(Db::Postgres).await {
        return;
    }
    let first = spawn_with(Db::Postgres, monday_morning(), |_| {}).await;
    let (_admin, device) = super::ready(&first).await;

    // A second replica: its own App and jobs on the same database.
    let store = Store::connect(&first.database_url()).await.unwrap();
    let clock = first.clock.clone();
    let dir = std::env::temp_dir().join(format!("elevate-replica-{}", uuid::Uuid::now_v7()));
    let second = App::new(
        store,
        Keys::from_bytes([1; 32], [2; 32]),
        Arc::new(move || clock.now()),
        Settings::new(dir.clone()),
    );
    let mut changes = second.subscribe_changes();
    let running = elevate_server::serve(second.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // Its listener is connected once it has bumped the counter after connecting.
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the second replica listens")
        .unwrap();
    changes.mark_unchanged();

    // A request made through the first replica.
    first
        .post(
            Some(&device),
            "/v1/requests",
            &command_request("alice", &["staff"], "/usr/sbin/fdisk", &["-l"]),
        )
        .await
        .expect(201);
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the second replica heard of the first one's change")
        .unwrap();
    running.stop().await;
    first.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_database_password_never_shows_in_debug_output() {
    // PostgreSQL here trusts local connections, so any password connects (security invariant 9).
    if !available(Db::Postgres).await {
        return;
    }
    let store = Store::connect("postgres://postgres:hunter2-secret@127.0.0.1:5432/test")
        .await
        .unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("postgres:***@127.0.0.1"), "{shown}");
    store.close().await;
}
