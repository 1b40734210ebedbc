//! Use cases of the control plane: what the API, the portal and the CLI ask the server to do.
//! Each use case checks who is asking, runs core's pure logic, and stores the result with its
//! audit record in one transaction.
//!
//! Must never: know HTTP (no axum here) or SQL (that is `store`); let a state change skip its
//! audit record.

mod accounts;
mod audit;
pub mod auth;
mod checkpoints;
mod decisions;
mod devices;
mod discovery;
mod email;
mod keys;
mod links;
mod notify;
mod offline;
mod offline_rules;
mod oidc;
mod people;
mod policy;
mod reports;
mod requests;
mod routing;
pub mod scim;
mod segments;
mod slack;
mod teams;
pub mod throttle;

use std::path::PathBuf;
use std::sync::Arc;

use elevate_core::audit::AuditEvent;
use jiff::{SignedDuration, Timestamp};

use crate::store::{Store, StoreError};

pub use accounts::AccountChange;
pub use auth::{Principal, Role};
pub use checkpoints::{Recent, FULL_EVERY};
pub use decisions::Via;
pub use devices::device_view;
pub use keys::Keys;
pub use links::{ApprovalLink, LINK_TTL};
pub use notify::{backoff, DeliveryDetail, Integrations};
pub use oidc::OidcStart;
pub use policy::PolicyTestOutcome;
pub use reports::ReportParams;
pub use requests::{unusual_hour, RequestDetail};

/// A source of the current time, so tests can move it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

/// Settings the use cases need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a request may wait for approvers before it expires.
    pub request_ttl: SignedDuration,
    /// Lifetime of API tokens issued for a password.
    pub token_ttl: SignedDuration,
    /// Lifetime of a portal session.
    pub session_ttl: SignedDuration,
    /// Where key files live.
    pub data_dir: PathBuf,
    /// The portal's address as people reach it (links in notifications); where the server
    /// listens when not set.
    pub public_url: Option<String>,
    /// Webhooks and other channels notifications go to.
    pub integrations: Integrations,
    /// Serve https with this certificate chain and key (PEM files); plain http when absent
    /// (behind a TLS-terminating reverse proxy, or on loopback).
    pub tls: Option<TlsFiles>,
    /// Single sign-on with the organisation's identity provider (`[oidc]`).
    pub oidc: Option<crate::integrations::oidc::OidcConfig>,
}

/// A certificate chain and its private key, PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Settings {
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            request_ttl: SignedDuration::from_hours(24),
            token_ttl: SignedDuration::from_hours(24 * 7),
            session_ttl: SignedDuration::from_hours(12),
            data_dir,
            public_url: None,
            integrations: Integrations::default(),
            tls: None,
            oidc: None,
        }
    }
}

/// The application: store, keys, clock and the wake-up signal for long polls.
#[derive(Clone)]
pub struct App {
    pub(crate) store: Store,
    pub(crate) keys: Arc<Keys>,
    pub(crate) clock: Clock,
    pub(crate) settings: Arc<Settings>,
    pub(crate) changes: Arc<tokio::sync::watch::Sender<u64>>,
    pub(crate) policy_cache: Arc<std::sync::RwLock<Option<policy::Cached>>>,
    pub(crate) sign_in_failures: Arc<std::sync::Mutex<throttle::Failures>>,
    pub(crate) password_checks: Arc<tokio::sync::Semaphore>,
    /// Where this server listens (`http://addr`), once it does.
    pub(crate) listening: Arc<std::sync::OnceLock<String>>,
    /// Woken when a notification is queued, so the sender does not wait for its next tick.
    pub(crate) deliveries_due: Arc<tokio::sync::Notify>,
    /// Webhook receivers that confirmed the handshake: name → (URL, when).
    pub(crate) handshakes:
        Arc<std::sync::Mutex<std::collections::HashMap<String, (String, Timestamp)>>>,
    pub(crate) http: reqwest::Client,
    /// This process's name among replicas (its own change notices are not news to it).
    pub(crate) replica: Arc<str>,
    /// The identity provider's discovery document and keys, as last read.
    pub(crate) oidc_cache: Arc<tokio::sync::Mutex<Option<oidc::ProviderCache>>>,
    /// The head this replica last verified the chain up to, and when it last verified the
    /// whole chain (the audit page verifies only what came after, and everything again every
    /// `checkpoints::FULL_EVERY`).
    /// Frequency segments as last measured (`segments`).
    pub(crate) segment_cache: Arc<tokio::sync::Mutex<Option<segments::Measured>>>,
    pub(crate) verified_head:
        Arc<tokio::sync::Mutex<Option<(elevate_core::audit::Head, Timestamp)>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Why a use case did not happen. `http` maps each kind to one status code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    InvalidPolicy {
        message: String,
        line: usize,
        column: usize,
        field: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TooManyAttempts(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AppError::Conflict(m),
            other => AppError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl App {
    pub fn new(store: Store, keys: Keys, clock: Clock, settings: Settings) -> App {
        App {
            store,
            keys: Arc::new(keys),
            clock,
            settings: Arc::new(settings),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            policy_cache: Arc::new(std::sync::RwLock::new(None)),
            verified_head: Arc::new(tokio::sync::Mutex::new(None)),
            segment_cache: Arc::new(tokio::sync::Mutex::new(None)),
            sign_in_failures: Arc::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(4)),
            listening: Arc::default(),
            deliveries_due: Arc::default(),
            handshakes: Arc::default(),
            http: crate::integrations::webhook::client(),
            replica: Arc::from(uuid::Uuid::now_v7().to_string()),
            oidc_cache: Arc::default(),
        }
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Wakes every long poll and live portal page so they re-read, here and (through the
    /// database) on the other replicas.
    pub(crate) fn announce_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        let (store, replica) = (self.store.clone(), self.replica.clone());
        tokio::spawn(async move {
            if let Err(e) = store.notify_changes(&replica).await {
                tracing::debug!(error = %e, "could not tell other replicas of a change");
            }
        });
    }

    /// Wakes local waiters for a change another replica made.
    pub(crate) fn changed_elsewhere(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every change to requests (for live pages).
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A new audit event stamped now.
    pub(crate) fn event(
        &self,
        actor: impl Into<String>,
        action: &str,
        subject: impl Into<String>,
        data: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            at: Timestamp::from_millisecond(self.now().as_millisecond())
                .expect("a millisecond timestamp taken from a timestamp is valid"),
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            data: data.to_string(),
        }
    }
}
