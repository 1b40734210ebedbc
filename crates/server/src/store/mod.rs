//! Storage: one interface over SQLite (default) and PostgreSQL, through sqlx's `Any` driver with
//! SQL that both backends accept (`$n` placeholders, `ON CONFLICT`, `RETURNING`).
//!
//! Architecture invariant: only this module knows SQL. Every state change that must be audited is
//! written in the same transaction as its audit record (security invariant 7).
//! Must never: build SQL from untrusted text (always bind parameters).

mod accounts;
mod audit;
mod deliveries;
mod devices;
mod discovery;
mod migrate;
mod pending;
mod people;
mod policies;
mod requests;
mod rollups;
mod sums;
mod usage;

use std::path::Path;
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use accounts::{AccountRow, ApiTokenRow, SignInRow};
pub use audit::{Chain, CheckpointRow};
pub use deliveries::{AttemptEnd, AttemptRow, DeliveryRow, NotifyChannel};
pub use devices::{DeviceRow, EnrolTokenRow};
pub use discovery::ObservationRow;
pub use people::{Directory, GroupRow, LoginOwner, PersonRow};
pub use policies::PolicyRow;
pub use requests::{ApprovalRow, HistoryStats, NewRequestRow, RequestFilter, RequestRow};
pub use usage::{HourRow, ProgramRow, UsageRow};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store: a pool and the knowledge of its backend.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer: serialise write transactions in-process so that they queue
    /// instead of failing with SQLITE_BUSY. PostgreSQL uses row locks instead.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// SQLite: one discovery roller at a time (see `pending`).
    roller: Arc<tokio::sync::Mutex<()>>,
    /// The database URL (PostgreSQL: for LISTEN; never printed, see `redact_url`).
    url: Arc<str>,
    /// Discovery's dictionary of logins, hosts and programs, as committed.
    names: Arc<rollups::Names>,
}

/// A write transaction (holding the SQLite writer lock when on SQLite).
pub struct Tx<'a> {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
    names: Arc<rollups::Names>,
    /// Names this transaction added to the dictionary: known to all once it commits.
    learned: Vec<(String, i64)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        self.names.learn(self.learned);
        Ok(())
    }

    /// Ends the transaction now. (Dropped, it is rolled back only when its connection is next
    /// used: until then the database keeps its locks.)
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Store {
    /// Opens (creating if needed) a SQLite database file.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Conflict(format!(
                "database_url must start with sqlite:// or postgres:// (got `{}`)",
                redact_url(url)
            )));
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            });
        let pool = options.connect(url).await?;
        let store = Store {
            pool,
            backend,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            roller: Arc::new(tokio::sync::Mutex::new(())),
            url: Arc::from(url),
            names: Arc::default(),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx<'_>> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        };
        let tx = self.pool.begin().await?;
        Ok(Tx {
            tx,
            backend: self.backend,
            _guard: guard,
            names: self.names.clone(),
            learned: Vec::new(),
        })
    }

    /// Tells the other replicas that requests changed (PostgreSQL NOTIFY; nothing on SQLite,
    /// which one process serves).
    pub async fn notify_changes(&self, replica: &str) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify('elevate_changes', $1)")
                .bind(replica)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Waits for other replicas' change notices and calls `changed` for each, until the
    /// connection fails (PostgreSQL LISTEN; returns at once on SQLite).
    /// Notices from `replica` itself are skipped; after connecting, `changed` is called once
    /// (changes made while the connection was down are not lost to live pages).
    pub async fn listen_for_changes(&self, replica: &str, mut changed: impl FnMut()) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen("elevate_changes").await?;
        changed();
        loop {
            let notice = listener.recv().await?;
            if notice.payload() != replica {
                changed();
            }
        }
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for tests and benchmarks that need raw access.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Hides the password of a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn ts(ms: i64) -> Result<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Result<Option<jiff::Timestamp>> {
    ms.map(ts).transpose()
}

pub(crate) fn json_list(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("list {text:?}: {e}")))
}

pub(crate) fn get<T>(row: &AnyRow, col: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get(col)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
