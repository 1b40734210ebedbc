//! Load benchmark of discovery at fleet scale, on SQLite and PostgreSQL, with the release
//! `elevate-server` binary as its own process:
//! (a) the 30-day reports over `ELEVATE_BENCH_EVENTS` events (default 10 million), and one
//!     department's timing (which reads per-login hours);
//! (b) import throughput (`POST /v1/imports`, 5,000 events a call, `ELEVATE_BENCH_CONCURRENCY`
//!     calls in flight, until the last call's observations are rolled up) against a raw
//!     batched insert of the same rows into a bare table in the same database, in the same run;
//! (c) the server's resident memory while it imports (sampled every 200 ms from /proc).
//!
//! The events are generated as they are sent, never held whole: `ELEVATE_BENCH_PEOPLE` people
//! (default 5,000) in 12 departments, each with six programs of 60 (two of them on a given day),
//! a workstation and three of 300 servers (one in five of their runs); three in ten events are
//! the system's jobs (root on the servers, eight jobs, no terminal); three in a hundred attempts
//! fail; spread over 30 days.
//!
//! Run: `cargo bench -p elevate-server --bench discovery` (it builds the release binary first;
//! `ELEVATE_BENCH_BACKEND=sqlite|postgres` runs one backend; `ELEVATE_BENCH_KEEP=DIR` keeps a
//! copy of SQLite's database after the import, to serve it again and profile the reports).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use elevate_proto::v1::{ImportIn, ImportSource, ObservationIn, Outcome};
use elevate_testkit::{available, spawn_with, Db};
use serde_json::json;
use sqlx::Connection;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const START_MS: i64 = 1_790_812_800_000; // 2026-10-01T00:00:00Z
const SPAN_MS: i64 = 30 * 86_400_000;
const BATCH: usize = 5_000;
const PROGRAMS: usize = 60;
const SERVERS: u64 = 300;

/// A small, fast, deterministic generator (SplitMix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn program(k: u64) -> String {
    const DIRS: [&str; 3] = ["/usr/bin", "/usr/sbin", "/usr/local/bin"];
    format!("{}/tool{k:02}", DIRS[(k % 3) as usize])
}

/// Event `n` of the stream.
fn event(n: u64, total: u64, people: u64) -> ObservationIn {
    let r = mix(n);
    // A log is written in time order: event n of `total` is at n/total of the month.
    let at = START_MS + ((n as u128 * SPAN_MS as u128) / total as u128) as i64 + (r % 1000) as i64;
    let at = jiff::Timestamp::from_millisecond(at).expect("a time");
    let system = r % 10 < 3;
    let (user, host, prog, tty, uid) = if system {
        let server = (r >> 20) % SERVERS;
        let job = (r >> 32) % 8;
        (
            "root".to_owned(),
            format!("srv-{server:03}"),
            program(50 + job % 10),
            None,
            0,
        )
    } else {
        // A person has six programs and three servers; on a given day they use two of the
        // programs, mostly on their workstation.
        let person = (r >> 20) % people;
        let day = (at.as_millisecond() - START_MS) / 86_400_000;
        let slot = mix(person * 7919 + day as u64 * 2 + (r >> 40) % 2) % 6;
        let k = mix(person * 6 + slot) % PROGRAMS as u64;
        let host = if (r >> 50).is_multiple_of(5) {
            format!("srv-{:03}", mix(person * 3 + (r >> 8) % 3) % SERVERS)
        } else {
            format!("ws-{person:05}")
        };
        (
            format!("u{person:05}"),
            host,
            program(k),
            Some("pts/0".to_owned()),
            1000 + person as u32,
        )
    };
    let failed = (r >> 56) % 100 < 3;
    ObservationIn {
        id: format!("syslog:bench-{n:010}"),
        at,
        host,
        user,
        uid: Some(uid),
        runas: "root".into(),
        command_line: format!("{prog} --run {}", r % 1000),
        program: prog,
        cwd: Some("/".into()),
        tty,
        outcome: if failed {
            Outcome::Failed
        } else {
            Outcome::Ran
        },
        detail: failed.then(|| "1 incorrect password attempt".into()),
        via: "sudo".into(),
        system,
        elevation: None,
    }
}

fn directory(people: u64) -> serde_json::Value {
    let all: Vec<serde_json::Value> = (0..people)
        .map(|i| {
            json!({ "user_name": format!("p{i:05}"), "department": format!("dept-{:02}", i % 12),
            "logins": [{ "login": format!("u{i:05}") }] })
        })
        .collect();
    json!({ "people": all })
}

/// The server's resident set (VmRSS) and its peak (VmHWM), in KiB.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

struct Figures {
    import_rate: f64,
    last_rollup: Duration,
    raw_rate: f64,
    rss_mib: Vec<(u64, f64)>,
    peak_mib: f64,
    reports: Vec<(&'static str, Duration)>,
}

async fn run(db: Db, n: u64, people: u64, concurrency: usize) -> Figures {
    let server = spawn_with(db, jiff::Timestamp::now(), |_| {}).await;
    let admin = server.admin().await;
    server
        .apply_policy(
            &admin,
            "version = 1\n[[calendar]]\nname = \"business-hours\"\ntimezone = \"Europe/Berlin\"\n\
             weekly = [\"mon-fri 08:00-18:00\"]\n",
        )
        .await
        .expect(201);
    server
        .post(Some(&admin), "/v1/directory/import", &directory(people))
        .await
        .expect(200);
    let database_url = server.database_url();
    let process = server.into_process().await;
    let pid = process.pid().expect("the server runs");
    let url = process.url.clone();

    // (c) memory, sampled while importing.
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (sent, done) = (sent.clone(), done.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                if let Some((rss, hwm)) = memory(pid) {
                    samples.push((sent.load(Ordering::Relaxed), rss));
                    peak = peak.max(hwm);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (samples, peak)
        })
    };

    // (b) the import through the API.
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, admin, next, sent) = (
            http.clone(),
            url.clone(),
            admin.clone(),
            next.clone(),
            sent.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(BATCH as u64, Ordering::Relaxed);
                if first >= n {
                    return;
                }
                let last = (first + BATCH as u64).min(n);
                // Serialised straight from the API's own type (a `json!` tree of the events first
                // took the load generator most of a core, beside the server, on two cores).
                let body = ImportIn {
                    source: ImportSource::Syslog,
                    file: Some("bench".into()),
                    events: (first..last).map(|i| event(i, n, people)).collect(),
                };
                let r = http
                    .post(format!("{url}/v1/imports"))
                    .bearer_auth(&admin)
                    .json(&body)
                    .send()
                    .await
                    .expect("the server answers");
                assert!(
                    r.status().is_success(),
                    "import: {}",
                    r.text().await.unwrap_or_default()
                );
                sent.fetch_add(last - first, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await.expect("a worker");
    }
    // The import is done when its observations are in the rollups: a report rolls up what is
    // still pending before it reads (a one-day report reads little else).
    let calls_done = started.elapsed();
    let r = http
        .get(format!(
            "{url}/v1/reports/system?since=2026-10-01&until=2026-10-02"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("the server answers");
    assert!(r.status().is_success(), "the last roll-up");
    let import_secs = started.elapsed().as_secs_f64();
    let last_rollup = started.elapsed() - calls_done;
    done.store(true, Ordering::Relaxed);
    let (samples, peak) = sampler.join().expect("the sampler");

    // (a) the 30-day reports.
    let mut reports = Vec::new();
    for name in [
        "applications",
        "users",
        "departments",
        "system",
        "timing",
        "attempts",
        "risky",
        "segments",
        "timing?department=dept-01&",
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let r = http
                .get(format!(
                    "{url}/v1/reports/{name}{}since=2026-10-01&until=2026-10-31",
                    if name.contains('?') { "" } else { "?" }
                ))
                .bearer_auth(&admin)
                .send()
                .await
                .expect("the server answers");
            assert!(r.status().is_success(), "report {name}");
            r.bytes().await.expect("the body");
            times.push(t.elapsed());
        }
        times.sort();
        reports.push((name, times[1]));
    }

    if let Ok(keep) = std::env::var("ELEVATE_BENCH_KEEP") {
        keep_database(&database_url, std::path::Path::new(&keep)).await;
    }
    // The baseline: the same rows, batched into a bare table of the same columns.
    let raw_secs = raw_insert(&database_url, n, people).await;
    drop(process);
    let step = (samples.len() / 10).max(1);
    Figures {
        import_rate: n as f64 / import_secs,
        last_rollup,
        raw_rate: n as f64 / raw_secs,
        rss_mib: samples
            .iter()
            .step_by(step)
            .map(|(at, kib)| (*at, *kib as f64 / 1024.0))
            .collect(),
        peak_mib: peak as f64 / 1024.0,
        reports,
    }
}

/// A copy of the SQLite database and keys in the folder `keep`, to serve again with
/// `elevate-server --data-dir` (account `admin`, the test kit's password) and profile its reports
/// without importing anew.
async fn keep_database(url: &str, keep: &std::path::Path) {
    let Some(path) = url.strip_prefix("sqlite://") else {
        println!("ELEVATE_BENCH_KEEP: PostgreSQL's database is not copied");
        return;
    };
    let from = std::path::Path::new(path)
        .parent()
        .expect("the data folder");
    std::fs::create_dir_all(keep.join("keys")).expect("the folder to keep");
    // The server refuses keys that others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(keep.join("keys"), std::fs::Permissions::from_mode(0o700))
        .expect("the key folder's mode");
    for key in ["policy-signing.key", "device-master.key"] {
        std::fs::copy(from.join("keys").join(key), keep.join("keys").join(key)).expect("a key");
    }
    let target = keep.join("elevate.db");
    let _ = std::fs::remove_file(&target);
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("the database");
    sqlx::query(&format!(
        "VACUUM INTO '{}'",
        target.display().to_string().replace('\'', "''")
    ))
    .execute(&mut conn)
    .await
    .expect("a copy");
}

/// Seconds to insert the `n` rows in transactions of 5,000 in one connection, as many rows a
/// statement as is fastest for the backend (`ELEVATE_BENCH_RAW_ROWS`; SQLite 200 with
/// anonymous parameters, PostgreSQL 500 — docs/benchmarks.md has the sizes tried).
async fn raw_insert(url: &str, n: u64, people: u64) -> f64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("the database");
    let int = if url.starts_with("sqlite") {
        "INTEGER"
    } else {
        "BIGINT"
    };
    sqlx::query(&format!(
        "CREATE TABLE bench_raw (id TEXT PRIMARY KEY, origin TEXT NOT NULL, source TEXT NOT NULL, \
         at_ms {int} NOT NULL, host TEXT NOT NULL, user_name TEXT NOT NULL, uid {int}, runas TEXT NOT NULL, \
         program TEXT NOT NULL, command_line TEXT NOT NULL, cwd TEXT, tty TEXT, outcome TEXT NOT NULL, \
         detail TEXT, via TEXT NOT NULL, system {int} NOT NULL, elevation TEXT)"
    ))
    .execute(&mut conn)
    .await
    .expect("the table");
    let sqlite = url.starts_with("sqlite");
    let per_statement = env_or("ELEVATE_BENCH_RAW_ROWS", if sqlite { 200 } else { 500 });
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + BATCH as u64).min(n);
        let mut tx = conn.begin().await.expect("a transaction");
        let rows: Vec<ObservationIn> = (i..end).map(|k| event(k, n, people)).collect();
        for chunk in rows.chunks(per_statement) {
            let mut sql = String::from("INSERT INTO bench_raw VALUES ");
            let mut p = 0;
            for r in 0..chunk.len() {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for c in 0..17 {
                    p += 1;
                    let sep = if c == 0 { "" } else { ", " };
                    // SQLite binds anonymous parameters in order; numbered ones cost the
                    // square of their number (see the store's `placeholders`).
                    if sqlite {
                        sql.push_str(&format!("{sep}?"));
                    } else {
                        sql.push_str(&format!("{sep}${p}"));
                    }
                }
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.id.clone())
                    .bind("import")
                    .bind("syslog")
                    .bind(e.at.as_millisecond())
                    .bind(e.host.clone())
                    .bind(e.user.clone())
                    .bind(e.uid.map(i64::from))
                    .bind(e.runas.clone())
                    .bind(e.program.clone())
                    .bind(e.command_line.clone())
                    .bind(e.cwd.clone())
                    .bind(e.tty.clone())
                    .bind(e.outcome.as_str())
                    .bind(e.detail.clone())
                    .bind(e.via.clone())
                    .bind(i64::from(e.system))
                    .bind(e.elevation.clone());
            }
            q.execute(&mut *tx).await.expect("an insert");
        }
        tx.commit().await.expect("a commit");
        i = end;
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    let n = env_or("ELEVATE_BENCH_EVENTS", 10_000_000) as u64;
    let people = env_or("ELEVATE_BENCH_PEOPLE", 5_000) as u64;
    let concurrency = env_or("ELEVATE_BENCH_CONCURRENCY", 2);
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "elevate-server",
            "--bin",
            "elevate-server",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the release server builds");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let only = std::env::var("ELEVATE_BENCH_BACKEND").unwrap_or_default();
        for db in [Db::Sqlite, Db::Postgres] {
            if !only.is_empty() && !format!("{db:?}").eq_ignore_ascii_case(&only) {
                continue;
            }
            if !available(db).await {
                println!("{db:?}: not available here, skipped");
                continue;
            }
            let f = run(db, n, people, concurrency).await;
            println!("\n== {db:?}: {n} events, {people} people, {concurrency} import calls in flight");
            println!(
                "import: {:.0} events/s; raw batched insert of the same rows: {:.0} events/s; ratio {:.2}",
                f.import_rate,
                f.raw_rate,
                f.import_rate / f.raw_rate
            );
            println!(
                "(the import's time includes {:.1} s of rolling up what was pending after the last call)",
                f.last_rollup.as_secs_f64()
            );
            let rss: Vec<String> = f
                .rss_mib
                .iter()
                .map(|(at, mib)| format!("{:.1}M:{mib:.0}", *at as f64 / 1e6))
                .collect();
            println!("server RSS while importing (events sent: MiB): {}", rss.join(" "));
            println!("server peak RSS (VmHWM): {:.0} MiB", f.peak_mib);
            for (name, t) in &f.reports {
                println!("report {name:<27} {:>7.1} ms (median of 3)", t.as_secs_f64() * 1000.0);
            }
        }
    });
}
