//! Schema migrations, one folder per backend, embedded in the binary and applied at start-up.
//!
//! Must never: edit a migration that has shipped (add a new one instead).

use super::{Backend, Result, Store};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_request_cwd.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_deliveries.sql"),
    ),
    (4, include_str!("../../migrations/sqlite/0004_routing.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_device_revocation.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_account_disabled.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_audit_checkpoints.sql"),
    ),
    (8, include_str!("../../migrations/sqlite/0008_people.sql")),
    (
        9,
        include_str!("../../migrations/sqlite/0009_discovery.sql"),
    ),
];
const POSTGRES: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_request_cwd.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_deliveries.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_routing.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_device_revocation.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_account_disabled.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_audit_checkpoints.sql"),
    ),
    (8, include_str!("../../migrations/postgres/0008_people.sql")),
    (
        9,
        include_str!("../../migrations/postgres/0009_discovery.sql"),
    ),
];

pub(super) async fn run(store: &Store) -> Result<()> {
    let migrations = match store.backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    let mut tx = store.begin().await?;
    if store.backend == Backend::Postgres {
        // Replicas starting together must not migrate twice.
        sqlx::query("SELECT pg_advisory_xact_lock(7401)")
            .execute(&mut *tx.tx)
            .await?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *tx.tx)
    .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx.tx)
        .await?;
    for (version, sql) in migrations {
        if applied.contains(version) {
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx.tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
            .bind(*version)
            .bind(jiff::Timestamp::now().as_millisecond())
            .execute(&mut *tx.tx)
            .await?;
    }
    tx.commit().await
}
