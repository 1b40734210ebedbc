//! Load benchmark: approvals per second (`POST /v1/requests/{id}/approve`) on SQLite over real
//! HTTP on loopback, with an empty people directory (the baseline: separation of duties then
//! compares names only) beside the same with a directory of `ELEVATE_BENCH_PEOPLE` people (each
//! with an account and two logins, every requester among them), where each approval also
//! looks up the requester's people and the approver's person. Also times the import of that
//! directory (`POST /v1/directory/import`: dry run, then for real).
//!
//! Run: `cargo bench -p elevate-server --bench approvals` (ELEVATE_BENCH_N,
//! ELEVATE_BENCH_PEOPLE, ELEVATE_BENCH_CONCURRENCY).

use std::sync::Arc;
use std::time::{Duration, Instant};

use elevate_server::app::Role;
use elevate_testkit::{command_request, spawn_with, Db, TestServer};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The people of the directory: person i has account a{i} and logins u{i} and u{i}-adm.
fn directory(people: usize) -> serde_json::Value {
    let mut all: Vec<serde_json::Value> = (0..people)
        .map(|i| {
            json!({ "user_name": format!("p{i}"), "accounts": [format!("a{i}")],
                "logins": [{ "login": format!("u{i}") }, { "login": format!("u{i}-adm"), "scope": "tag:servers" }],
                "department": "Engineering", "groups": ["staff"] })
        })
        .collect();
    all.push(json!({ "user_name": "carol", "accounts": ["carol"] }));
    json!(all)
}

/// (approvals' duration, how many succeeded, import dry run, import).
async fn approvals(
    n: usize,
    people: usize,
    concurrency: usize,
) -> (Duration, usize, Duration, Duration) {
    let server: TestServer = spawn_with(Db::Sqlite, jiff::Timestamp::now(), |_| {}).await;
    let admin = server.admin().await;
    server
        .apply_policy(&admin, elevate_testkit::TEST_POLICY)
        .await
        .expect(201);
    let (device, _) = server.enrol(&admin, "bench-01", &["servers"]).await;
    server
        .account("carol", &[Role::Approver], &["helpdesk"])
        .await;
    let carol = server.token("carol").await;
    let (mut dry, mut import) = (Duration::ZERO, Duration::ZERO);
    if people > 0 {
        let body = json!({ "people": directory(people), "dry_run": true });
        let started = Instant::now();
        server
            .post(Some(&admin), "/v1/directory/import", &body)
            .await
            .expect(200);
        dry = started.elapsed();
        let body = json!({ "people": directory(people) });
        let started = Instant::now();
        let done = server
            .post(Some(&admin), "/v1/directory/import", &body)
            .await
            .expect(200);
        import = started.elapsed();
        assert_eq!(done.body["created"], people + 1);
    }
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let user = format!("u{}", i % people.max(1));
        let body = command_request(
            &user,
            &["staff"],
            "/usr/bin/systemctl",
            &["restart", "cups"],
        );
        ids.push(server.ask_id(&device, &body).await);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let ids = Arc::new(ids);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (http, ids, carol, base) =
            (http.clone(), ids.clone(), carol.clone(), server.url.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for id in ids.iter().skip(worker).step_by(concurrency) {
                let r = http
                    .post(format!("{base}/v1/requests/{id}/approve"))
                    .bearer_auth(&carol)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                if status == 200 {
                    ok += 1;
                } else {
                    eprintln!(
                        "unexpected answer {status}: {}",
                        r.text().await.unwrap_or_default()
                    );
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    let elapsed = started.elapsed();
    server.stop().await;
    (elapsed, ok, dry, import)
}

fn main() {
    let n = env_or("ELEVATE_BENCH_N", 2000);
    let people = env_or("ELEVATE_BENCH_PEOPLE", 10_000);
    let concurrency = env_or("ELEVATE_BENCH_CONCURRENCY", 16);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (empty, ok, _, _) = approvals(n, 0, concurrency).await;
        assert_eq!(ok, n, "every approval counted");
        let (full, ok, dry, import) = approvals(n, people, concurrency).await;
        assert_eq!(ok, n, "every approval counted");
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!("approvals: {n} pending requests, {concurrency} concurrent clients, SQLite");
        println!(
            "  baseline  empty directory:            {:>9.0} /s  ({empty:.2?})",
            rate(empty)
        );
        println!(
            "  people    directory of {people:>6} people: {:>9.0} /s  ({full:.2?})",
            rate(full)
        );
        println!(
            "  ratio     people / baseline:          {:>9.2}",
            rate(full) / rate(empty)
        );
        println!("  import of {people} people: dry run {dry:.2?}, for real {import:.2?}");
    });
}
