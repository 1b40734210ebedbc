//! Bad input gets a clear 4xx JSON error and leaves the store unchanged.

use serde_json::json;

use super::{for_each_backend, ready};

async fn count(server: &elevate_testkit::TestServer, admin: &str) -> serde_json::Value {
    server
        .get(Some(admin), "/v1/audit/verify")
        .await
        .expect(200)
        .body["count"]
        .clone()
}

#[tokio::test]
async fn malformed_oversized_and_unknown_input_is_refused_without_changes() {
    for_each_backend(|server| async move {
        let (admin, device) = ready(&server).await;
        let before = count(&server, &admin).await;

        let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
            ("/v1/requests", "application/json", b"{\"user\": ".to_vec(), 400, "bad_request"),
            ("/v1/requests", "text/plain", b"{}".to_vec(), 415, "unsupported_media_type"),
            ("/v1/requests", "application/json", vec![b' '; 3 * 1024 * 1024], 413, "too_large"),
            (
                "/v1/requests",
                "application/json",
                br#"{"user":"a","uid":1,"target":{"kind":"session","duration_secs":60},"channel":"native","admin":true}"#.to_vec(),
                400,
                "bad_request",
            ),
            (
                "/v1/requests",
                "application/json",
                br#"{"user":"a","uid":1,"target":{"kind":"command","path":"bin/ls"},"channel":"native"}"#.to_vec(),
                400,
                "bad_request",
            ),
            ("/v1/audit/events", "application/json", br#"{"events":[{"id":"x"}]}"#.to_vec(), 400, "bad_request"),
        ];
        for (path, content_type, body, status, code) in cases {
            let a = server.post_raw(Some(&device), path, content_type, body).await;
            assert_eq!(a.status, status, "{path} {content_type}: {}", a.text);
            assert_eq!(a.body["error"], code, "{}", a.text);
            assert!(!a.body["message"].as_str().unwrap_or("").is_empty(), "{}", a.text);
        }

        // Unknown fields in a policy: 422 naming the line; the current version stays.
        let bad_policy = "version = 1\n[defaults]\nunmatched = \"approve\"\nsurprise = true\n";
        let a = server.apply_policy(&admin, bad_policy).await.expect(422);
        assert_eq!(a.body["error"], "invalid_policy");
        assert_eq!(a.body["details"]["line"], 4, "{}", a.text);
        assert!(a.body["message"].as_str().unwrap().contains("surprise"), "{}", a.text);
        let versions = server.get(Some(&admin), "/v1/policies").await.expect(200);
        assert_eq!(versions.body.as_array().unwrap().len(), 1);

        // No token, a bad token, a bad header.
        server.get(None, "/v1/requests").await.expect(401);
        server.get(Some("eat_0000"), "/v1/requests").await.expect(401);
        let a = server.http.get(format!("{}/v1/requests", server.url)).header("authorization", "Basic abc").send().await.unwrap();
        assert_eq!(a.status(), 401);
        // A device may not apply policies.
        server.post(Some(&device), "/v1/policies", &json!({ "text": "version = 1\n" })).await.expect(403);
        // Unknown query parameters and states.
        server.get(Some(&admin), "/v1/requests?state=sleeping").await.expect(400);

        assert_eq!(count(&server, &admin).await, before, "a refused input changed the audit chain");
        server
    })
    .await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    for_each_backend(|server| async move {
        assert_eq!(
            server.get(None, "/healthz").await.expect(200).body["status"],
            "ok"
        );
        assert_eq!(
            server.get(None, "/readyz").await.expect(200).body["status"],
            "ok"
        );
        server
    })
    .await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_name_for_a_while() {
    for_each_backend(|server| async move {
        let _admin = server.admin().await;
        for _ in 0..elevate_server::app::throttle::FREE_FAILURES {
            sign_in(&server, "wrong").await.expect(401);
        }
        // Even the right password is refused now, with a message saying when to retry.
        let locked = sign_in(&server, elevate_testkit::PASSWORD)
            .await
            .expect(429);
        assert!(
            locked.body["message"]
                .as_str()
                .unwrap()
                .contains("try again after"),
            "{}",
            locked.text
        );
        // Unknown names are throttled the same way (no hint about which names exist).
        for _ in 0..elevate_server::app::throttle::FREE_FAILURES {
            server
                .post(
                    None,
                    "/v1/tokens",
                    &json!({ "account": "nobody", "password": "x" }),
                )
                .await
                .expect(401);
        }
        server
            .post(
                None,
                "/v1/tokens",
                &json!({ "account": "nobody", "password": "x" }),
            )
            .await
            .expect(429);
        server.clock.advance(jiff::SignedDuration::from_mins(16));
        sign_in(&server, elevate_testkit::PASSWORD)
            .await
            .expect(201);
        server
    })
    .await;
}

/// A password try for `account` from `source` (another loopback address than the test's own).
async fn try_from(
    server: &elevate_testkit::TestServer,
    source: &str,
    account: &str,
    password: &str,
) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    client
        .post(format!("{}/v1/tokens", server.url))
        .json(&json!({ "account": account, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Someone guessing an approver's password from one place slows that place down, by a delay
/// that doubles with each further failure (seconds, not a quarter of an hour), and never locks
/// the approver out from where they are; one place trying many accounts is slowed as well.
#[tokio::test]
async fn guessing_slows_the_guesser_and_never_locks_the_owner_out() {
    for_each_backend(|server| async move {
        let _admin = server.admin().await;
        let right = elevate_testkit::PASSWORD;
        for _ in 0..elevate_server::app::throttle::FREE_FAILURES {
            assert_eq!(try_from(&server, "127.0.0.2", "admin", "guess").await, 401);
        }
        assert_eq!(try_from(&server, "127.0.0.2", "admin", right).await, 429);
        // The approver, from where they are, is not slowed at all.
        sign_in(&server, right).await.expect(201);
        // The guesser waits a second, then two, not fifteen minutes.
        server.clock.advance(jiff::SignedDuration::from_secs(1));
        assert_eq!(try_from(&server, "127.0.0.2", "admin", "guess").await, 401);
        assert_eq!(try_from(&server, "127.0.0.2", "admin", "guess").await, 429);
        server.clock.advance(jiff::SignedDuration::from_secs(2));
        assert_eq!(try_from(&server, "127.0.0.2", "admin", right).await, 201);

        // Spraying: one place, twenty accounts, one wrong password each.
        for n in 0..20 {
            assert_eq!(
                try_from(&server, "127.0.0.3", &format!("user{n}"), "x").await,
                401
            );
        }
        assert_eq!(try_from(&server, "127.0.0.3", "admin", right).await, 429);
        sign_in(&server, right).await.expect(201);
        server
    })
    .await;
}

async fn sign_in(server: &elevate_testkit::TestServer, password: &str) -> elevate_testkit::Answer {
    server
        .post(
            None,
            "/v1/tokens",
            &json!({ "account": "admin", "password": password }),
        )
        .await
}

#[tokio::test]
async fn parallel_password_guesses_are_counted_before_they_are_checked() {
    for_each_backend(|server| async move {
        let _admin = server.admin().await;
        // Twenty guesses at once: only the first five may reach the password check.
        let guesses = (0..20).map(|_| sign_in(&server, "wrong"));
        let answers = futures_join_all(guesses).await;
        let checked = answers.iter().filter(|a| a.status == 401).count();
        let throttled = answers.iter().filter(|a| a.status == 429).count();
        assert_eq!(
            (checked, throttled),
            (elevate_server::app::throttle::FREE_FAILURES as usize, 15),
            "{:?}",
            answers.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        server
    })
    .await;
}

/// Runs the futures concurrently on this task (no extra dependency for join_all).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}
