//! Load benchmark: decisions per second for `POST /v1/requests` with an auto rule, on SQLite,
//! over real HTTP on loopback — beside a baseline of the same rows written straight into SQLite
//! (one transaction per decision: the request row, two audit rows and the head update) with no
//! HTTP, no policy and no hashing. Prints both rates and their ratio, and the rate again with a
//! webhook subscribed to every event (each decision then also queues two deliveries in its
//! transaction; a local receiver takes them), to show what the notification queue costs.
//!
//! Run: `cargo bench -p elevate-server --bench decisions` (ELEVATE_BENCH_N, ELEVATE_BENCH_CONCURRENCY).

use std::sync::Arc;
use std::time::{Duration, Instant};

use elevate_server::app::Settings;
use elevate_server::integrations::webhook::Subscription;
use elevate_testkit::{command_request, monday_morning, spawn_with, Behaviour, Db, Receiver};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const POLICY: &str = r#"version = 1
[defaults]
unmatched = "approve"
approvers = "helpdesk"

[[rule]]
name = "package managers for developers"
who = { groups = ["developers"] }
what = { paths = ["/usr/bin/apt", "/usr/bin/apt-get"] }
action = "auto"
"#;

async fn through_the_api(
    n: usize,
    concurrency: usize,
    webhook: Option<String>,
) -> (Duration, usize) {
    let server = spawn_with(Db::Sqlite, monday_morning(), move |s: &mut Settings| {
        if let Some(url) = webhook {
            s.integrations.webhooks = vec![Subscription {
                name: "bench".into(),
                url,
                secret: b"bench-secret-0123456789".to_vec(),
                events: vec![],
            }];
        }
    })
    .await;
    let admin = server.admin().await;
    server.apply_policy(&admin, POLICY).await.expect(201);
    let (device, _) = server.enrol(&admin, "bench-01", &[]).await;
    let url = Arc::new(format!("{}/v1/requests", server.url));
    let body = Arc::new(command_request(
        "alice",
        &["developers"],
        "/usr/bin/apt",
        &["install", "htop"],
    ));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    // Warm up connections and caches.
    for _ in 0..50 {
        http.post(url.as_str())
            .bearer_auth(&device)
            .json(&*body)
            .send()
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (http, url, body, device) = (http.clone(), url.clone(), body.clone(), device.clone());
        let share = n / concurrency + usize::from(worker < n % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..share {
                let r = http
                    .post(url.as_str())
                    .bearer_auth(&device)
                    .json(&*body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if status == 201 {
                    ok += 1;
                } else {
                    eprintln!("unexpected answer {status}: {body}");
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
    (elapsed, ok)
}

async fn raw_sqlite(n: usize) -> Duration {
    let dir = std::env::temp_dir().join(format!("elevate-bench-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The same schema and pragmas as the server (the store creates them).
    let store = elevate_server::store::Store::open_sqlite(&dir.join("raw.db"))
        .await
        .unwrap();
    let pool = store.pool().clone();
    let target = r#"{"kind":"command","path":"/usr/bin/apt","sha256":null,"package":null,"args":["install","htop"]}"#;
    let decision = r#"{"outcome":"auto","policy_outcome":"auto","mode":"enforce","rule":"package managers for developers","explanation":"rule matched","approvers":null,"needed":0,"sla_secs":null,"escalate":null,"message":null,"reason_required":false,"session_max_secs":3600,"policy_version":1}"#;
    let hash = "ab".repeat(32);
    let started = Instant::now();
    for i in 0..n {
        let mut tx = pool.begin().await.unwrap();
        let id = format!("req-{i}");
        sqlx::query(
            "INSERT INTO requests (id, created_ms, updated_ms, expires_ms, device, user_name, uid, groups_json, target_json, path, sha256, reason, channel, state, decision_json, approvers, needed, exit_code) \
             VALUES ($1, $2, $2, $2, 'bench-01', 'alice', 1005, '[\"developers\"]', $3, '/usr/bin/apt', NULL, 'testing', 'native', 'approved', $4, NULL, 0, NULL)",
        )
        .bind(&id)
        .bind(i as i64)
        .bind(target)
        .bind(decision)
        .execute(&mut *tx)
        .await
        .unwrap();
        for k in 0..2 {
            let seq = (2 * i + k + 1) as i64;
            sqlx::query(
                "INSERT INTO audit (seq, event_id, at_ms, actor, action, subject, data, prev_hash, hash) VALUES ($1, $2, $3, 'user:alice@bench-01', 'request.created', $4, '{}', $5, $5)",
            )
            .bind(seq)
            .bind(format!("ev-{seq}"))
            .bind(i as i64)
            .bind(&id)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE audit_head SET count = $1, hash = $2 WHERE id = 1")
            .bind((2 * i + 2) as i64)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let elapsed = started.elapsed();
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
    elapsed
}

fn main() {
    let n = env_or("ELEVATE_BENCH_N", 5000);
    let concurrency = env_or("ELEVATE_BENCH_CONCURRENCY", 16);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let raw = raw_sqlite(n).await;
        let (api, ok) = through_the_api(n, concurrency, None).await;
        assert_eq!(ok, n, "every request was decided");
        let receiver = Receiver::start(0, Behaviour::default()).await;
        let (hooked, ok) =
            through_the_api(n, concurrency, Some(receiver.url("/events"))).await;
        assert_eq!(ok, n, "every request was decided");
        let hooked_rate = n as f64 / hooked.as_secs_f64();
        let raw_rate = n as f64 / raw.as_secs_f64();
        let api_rate = n as f64 / api.as_secs_f64();
        println!("decisions: {n} auto requests, {concurrency} concurrent clients, SQLite");
        println!("  baseline  raw SQLite, same rows, one tx each: {raw_rate:>9.0} /s  ({raw:.2?})");
        println!("  elevate   POST /v1/requests over HTTP:        {api_rate:>9.0} /s  ({api:.2?})");
        println!(
            "  ratio     elevate / baseline:                 {:>9.2}",
            api_rate / raw_rate
        );
        println!(
            "  elevate   with a webhook on every event:      {hooked_rate:>9.0} /s  ({hooked:.2?}; {:.2} of without, {} posts received meanwhile)",
            hooked_rate / api_rate,
            receiver.requests("POST").len()
        );
    });
}
