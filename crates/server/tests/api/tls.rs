//! https served by the server itself, from a certificate chain and key in PEM files (made here
//! with the openssl command, as an administrator would).

use std::os::unix::fs::PermissionsExt;

use elevate_testkit::tls_certificate as certificate;

#[tokio::test]
async fn the_server_speaks_https_from_its_certificate_files() {
    let (cert, key, pem) = certificate();
    let server = elevate_testkit::spawn_with(
        elevate_testkit::Db::Sqlite,
        elevate_testkit::monday_morning(),
        |s| {
            s.tls = Some(elevate_server::app::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
        },
    )
    .await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    // A client that stalls its handshake holds up nobody.
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let _stalled = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let health = trusting
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Nobody else's certificate is taken for it, and plain http gets nothing.
    assert!(reqwest::get(format!("{}/healthz", server.url))
        .await
        .is_err());
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    server.stop().await;
}

#[tokio::test]
async fn a_key_others_can_read_or_a_certificate_that_does_not_match_stops_the_start() {
    let (cert, key, _) = certificate();
    let (other_cert, _, _) = certificate();
    let start = |cert: &std::path::Path, key: &std::path::Path| {
        let config = elevate_server::config::ServerConfig {
            data_dir: cert.parent().unwrap().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: Some(elevate_server::app::TlsFiles {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }),
            ..Default::default()
        };
        async move {
            let app = elevate_server::build_app(&config, elevate_server::app::system_clock())
                .await
                .unwrap();
            match elevate_server::serve(app, config.listen).await {
                Ok(_) => panic!("the server started"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let mismatched = start(&other_cert, &key).await;
    assert!(mismatched.contains("do not go together"), "{mismatched}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let readable = start(&cert, &key).await;
    assert!(readable.contains("chmod 600"), "{readable}");
}
