//! End-to-end tests of API v1 over real HTTP on port 0, on SQLite and on PostgreSQL: every test
//! runs once per backend (`for_each_backend`). One test binary for the whole API.

mod accounts;
mod audit;
mod bad_input;
mod browser;
mod demo;
mod discovery;
mod email;
mod enrolment;
mod offline;
mod openapi;
mod people;
mod portal;
mod replicas;
mod requests;
mod routing;
mod scim;
mod slack;
mod sso;
mod teams;
mod tls;
mod webhooks;

use elevate_testkit::{available, spawn, Db, TestServer, BACKENDS};

/// Runs `test` on a fresh server for each backend that is available here.
pub async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(TestServer) -> Fut,
    Fut: std::future::Future<Output = TestServer>,
{
    for db in BACKENDS {
        if !available(db).await {
            continue;
        }
        let server = spawn(db).await;
        let server = test(server).await;
        server.stop().await;
    }
}

/// A server with an admin, the test policy, and one enrolled device; returns (admin, device).
pub async fn ready(server: &TestServer) -> (String, String) {
    let (admin, device, _) = ready_enrolled(server).await;
    (admin, device)
}

/// As `ready`, with the device's enrolment answer (its id and offline secret).
pub async fn ready_enrolled(server: &TestServer) -> (String, String, serde_json::Value) {
    let admin = server.admin().await;
    server
        .apply_policy(&admin, elevate_testkit::TEST_POLICY)
        .await
        .expect(201);
    let (device, enrolled) = server.enrol(&admin, "web-01", &["server"]).await;
    (admin, device, enrolled)
}

#[allow(dead_code)]
fn _backends_are_named(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    }
}
