//! The portal in a real browser: `tests/browser/portal.mjs` drives Debian's headless Chromium with
//! playwright-core through sign-in, queue, detail (untrusted text shown, never run), approval and
//! the audit page; this test sets up the server and checks the outcome through the API.
//!
//! Skips, saying what is missing and how to install it, when Node.js, `/usr/bin/chromium` or the
//! npm packages are absent, except under `ELEVATE_REQUIRE_BROWSER=1` (CI), where that fails.
//! One backend is enough here: the portal's storage is covered on both by `portal.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use elevate_server::app::Role;
use elevate_testkit::{command_request, spawn, Db, PASSWORD};
use serde_json::json;

use super::ready;

const CHROMIUM: &str = "/usr/bin/chromium";
/// The oldest Node.js that the pinned playwright-core supports.
const NODE_MAJOR_MIN: u32 = 20;

pub(super) fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What this machine lacks to run the browser test, each with how to install it.
pub(super) fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let major = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok());
            if major.is_none_or(|m| m < NODE_MAJOR_MIN) {
                missing.push(format!(
                    "Node.js {NODE_MAJOR_MIN} or newer (found {version})"
                ));
            }
        }
        _ => missing.push("node (apt-get install -y nodejs npm)".into()),
    }
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install -y chromium)"));
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "playwright-core (cd {} && npm ci)",
            browser_dir().display()
        ));
    }
    missing
}

/// Whether the browser tests can run here; saying what is missing when not, and failing under
/// `ELEVATE_REQUIRE_BROWSER=1` (CI).
pub(super) fn browser_here(what_test: &str) -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join("; ");
    if std::env::var("ELEVATE_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("the browser test is required (ELEVATE_REQUIRE_BROWSER=1) but this machine lacks: {what}");
    }
    eprintln!("SKIPPED browser test of {what_test}: missing {what}");
    false
}

/// Runs a browser script to its end, failing with its output when it fails.
async fn run_node(script: &str, node: Command) {
    let started = Instant::now();
    // The server runs on this runtime: block another thread, not it, while the browser works.
    let out = tokio::task::spawn_blocking(move || {
        let mut node = node;
        node.output()
    })
    .await
    .expect("the blocking task ran")
    .expect("node starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    eprintln!(
        "{} (browser run {:.1}s)",
        stdout.trim(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approver_approves_in_a_real_browser() {
    if !browser_here("the portal") {
        return;
    }

    let server = spawn(Db::Sqlite).await;
    let (admin, device) = ready(&server).await;
    server
        .account("carol", &[Role::Approver], &["helpdesk"])
        .await;
    let mut body = command_request(
        "bob",
        &["finance"],
        "/usr/bin/printf",
        &["<script>alert(1)</script>", "\u{1b}]0;pwned\u{7}"],
    );
    body["reason"] = json!("<img src=x onerror=alert(2)>");
    let created = server
        .post(Some(&device), "/v1/requests", &body)
        .await
        .expect(201);
    let id = created.body["id"].as_str().expect("request id").to_string();
    assert_eq!(created.body["state"], "pending", "{}", created.text);

    let screenshots =
        std::env::temp_dir().join(format!("elevate-browser-{}", uuid::Uuid::now_v7()));
    let comment = "checked the ticket; go ahead";
    let mut node = Command::new("node");
    node.arg("portal.mjs")
        .current_dir(browser_dir())
        .env("ELEVATE_URL", &server.url)
        .env("ELEVATE_ACCOUNT", "carol")
        .env("ELEVATE_PASSWORD", PASSWORD)
        .env("ELEVATE_AUDITOR", "admin")
        .env("ELEVATE_AUDITOR_PASSWORD", PASSWORD)
        .env("ELEVATE_REQUEST_ID", &id)
        .env("ELEVATE_COMMENT", comment)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", CHROMIUM)
        .env("ELEVATE_DEVICE_TOKEN", &device)
        .env(
            "ELEVATE_LIVE_REQUEST",
            command_request("dave", &["finance"], "/usr/bin/tee", &["<b>live</b>"]).to_string(),
        )
        .env("FORCE_COLOR", "0");
    run_node("portal.mjs", node).await;
    for shot in [
        "queue.png",
        "detail-pending.png",
        "detail-approved.png",
        "audit.png",
        "phone.png",
    ] {
        let len = std::fs::metadata(screenshots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 0, "screenshot {shot} was saved");
    }

    let after = server
        .get(Some(&admin), &format!("/v1/requests/{id}"))
        .await
        .expect(200);
    assert_eq!(after.body["state"], "approved", "{}", after.text);
    let approvals = after.body["approvals"].as_array().expect("approvals");
    assert_eq!(approvals.len(), 1, "{}", after.text);
    assert_eq!(approvals[0]["approver"], "carol");
    assert_eq!(approvals[0]["verdict"], "approve");
    assert_eq!(approvals[0]["comment"], comment);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_discovery_pages_show_the_apis_numbers() {
    if !browser_here("the discovery pages") {
        return;
    }
    use elevate_testkit::discovery::{month, MONTH_END, MONTH_START};
    let server = spawn(Db::Sqlite).await;
    let admin = server.admin().await;
    server
        .apply_policy(&admin, super::discovery::POLICY)
        .await
        .expect(201);
    let m = month(60, 3);
    server
        .post(Some(&admin), "/v1/directory/import", &m.directory)
        .await
        .expect(200);
    server
        .post(
            Some(&admin),
            "/v1/imports",
            &json!({ "source": "syslog", "events": m.observations }),
        )
        .await
        .expect(200);
    let period = format!("since={MONTH_START}&until={MONTH_END}");
    let mut reports = serde_json::Map::new();
    for name in [
        "applications",
        "users",
        "departments",
        "system",
        "timing",
        "segments",
    ] {
        let r = server
            .get(Some(&admin), &format!("/v1/reports/{name}?{period}"))
            .await
            .expect(200);
        reports.insert(name.into(), r.body);
    }
    let who = reports["segments"]["rows"][0]["who"]
        .as_str()
        .unwrap()
        .to_owned();
    let evidence = server
        .get(Some(&admin), &format!("/v1/reports/people/{who}?{period}"))
        .await
        .expect(200);
    let strict = server
        .get(
            Some(&admin),
            &format!("/v1/reports/segments?{period}&moderate=2&high=8"),
        )
        .await
        .expect(200);
    let dir = std::env::temp_dir().join(format!("elevate-discovery-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let expected = dir.join("expected.json");
    std::fs::write(
        &expected,
        json!({ "since": MONTH_START, "until": MONTH_END, "reports": reports,
                "evidence": { "who": who, "count": evidence.body["observations"].as_array().unwrap().len() },
                "strict_high": strict.body["facts"]["high"] })
        .to_string(),
    )
    .unwrap();
    let mut node = Command::new("node");
    node.arg("discovery.mjs")
        .current_dir(browser_dir())
        .env("ELEVATE_URL", &server.url)
        .env("ELEVATE_ACCOUNT", "admin")
        .env("ELEVATE_PASSWORD", PASSWORD)
        .env("ELEVATE_EXPECTED", &expected)
        .env("SCREENSHOT_DIR", dir.join("shots"))
        .env("CHROMIUM", CHROMIUM)
        .env("FORCE_COLOR", "0");
    run_node("discovery.mjs", node).await;
    for shot in [
        "discovery-segments.png",
        "discovery-timing.png",
        "discovery-evidence.png",
    ] {
        assert!(dir.join("shots").join(shot).exists(), "screenshot {shot}");
    }
    server.stop().await;
}
