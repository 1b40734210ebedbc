//! The README's start command: `elevate-server demo` starts on SQLite with an admin whose
//! password it prints once, a demo policy, demo requests and a month of discovery data, and
//! prints the portal URL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_starts_with_an_admin_a_policy_and_requests_waiting() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_elevate-server"))
        .args(["--listen", "127.0.0.1:0", "demo"])
        .env("ELEVATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("elevate-server starts");
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("Press Ctrl-C");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    let field = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("the demo prints {label}: {lines:?}"))
    };
    let portal = field("Portal:");
    let password = field("Admin:")
        .trim_start_matches("admin /")
        .trim()
        .to_string();
    assert!(
        portal.starts_with("http://127.0.0.1:") && portal.ends_with("/portal/"),
        "{portal}"
    );
    let base = portal.trim_end_matches("/portal/").to_string();

    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{base}/v1/tokens"))
        .json(&serde_json::json!({ "account": "admin", "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"]
        .as_str()
        .expect("the printed password works")
        .to_string();
    let get = |path: &str| {
        let request = http.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let requests = get("/v1/requests").await;
    let states: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"pending") && states.contains(&"approved") && states.contains(&"denied"),
        "{states:?}"
    );
    let policy = http
        .get(format!("{base}/v1/policies/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(policy.status(), 200);
    // The discovery pages have a month of data: people in each segment, and system jobs.
    let segments = get("/v1/reports/segments").await;
    for s in ["low", "moderate", "high"] {
        assert!(segments["facts"][s].as_u64().unwrap() > 0, "{segments}");
    }
    let system = get("/v1/reports/system").await;
    assert_eq!(system["rows"].as_array().unwrap().len(), 2, "{system}");
    let login = http
        .get(format!("{base}/portal/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    child.kill().unwrap();
    let _ = child.wait();
}
