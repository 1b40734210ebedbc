//! `elevate-server`: the control plane. HTTP API v1, the approver portal, the decision engine
//! (core's `decide` over the current policy), enrolment, and the audit store.
//!
//! Architecture invariant: `http` is the only module that knows axum; `store` is the only one
//! that knows SQL; `app` holds the use cases and calls core for every rule. The binary's `main`
//! only calls `cli::main`.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod integrations;
pub mod jobs;
pub mod scim;
pub mod store;

use std::net::SocketAddr;

use anyhow::Context;

pub use app::App;
pub use config::ServerConfig;

/// A server that is listening.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    pub task: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// `https://…` when it serves TLS, else `http://…`.
    pub fn url(&self) -> String {
        self.app
            .listening
            .get()
            .cloned()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.app.store().close().await;
    }
}

/// Opens the store and keys named by `config` and builds the application.
pub async fn build_app(config: &ServerConfig, clock: app::Clock) -> anyhow::Result<App> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}; choose another with --data-dir",
            config.data_dir.display()
        )
    })?;
    let store = match &config.database_url {
        Some(url) => store::Store::connect(url).await,
        None => store::Store::open_sqlite(&config.data_dir.join("elevate.db")).await,
    }
    .context("cannot open the database")?;
    let keys = app::Keys::load_or_create(&config.data_dir.join("keys"))?;
    let mut settings = app::Settings::new(config.data_dir.clone());
    settings.request_ttl = config.request_ttl;
    settings.public_url = config.public_url.clone();
    settings.integrations.webhooks = config.webhooks.clone();
    settings.integrations.slack = config.slack.clone();
    settings.integrations.email = config.email.clone();
    settings.integrations.teams = config.teams.clone();
    settings.tls = config.tls.clone();
    settings.oidc = config.oidc.clone();
    Ok(App::new(store, keys, clock, settings))
}

/// Serves `app` on `listen` (port 0 picks a free port) with the background jobs running.
pub async fn serve(app: App, listen: SocketAddr) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; is another server running there?"))?;
    let addr = listener.local_addr()?;
    // Read before anything is served: a bad certificate or key stops the start.
    let tls = match &app.settings.tls {
        Some(files) => Some(http::tls::config(&files.cert, &files.key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let app_for_http = app.clone();
    let _ = app.listening.set(format!("{scheme}://{addr}"));
    let (shutdown, mut stopped) = tokio::sync::watch::channel(false);
    let jobs = jobs::spawn(app.clone(), shutdown.subscribe());
    let stop = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let served = async move {
        match tls {
            Some(config) => {
                let listener = http::tls::TlsListener::new(listener, config)?;
                http::serve(listener, app_for_http, stop).await
            }
            None => http::serve(listener, app_for_http, stop).await,
        }
    };
    let task = tokio::spawn(async move {
        if let Err(e) = served.await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
        jobs.abort();
    });
    Ok(Running {
        addr,
        app,
        task,
        shutdown,
    })
}
