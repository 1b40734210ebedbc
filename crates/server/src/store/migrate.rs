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
    (
        10,
        include_str!("../../migrations/sqlite/0010_discovery_months.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_discovery_pending.sql"),
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
    (
        10,
        include_str!("../../migrations/postgres/0010_discovery_months.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_discovery_pending.sql"),
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

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    /// A database with discovery's daily rollup (schema 9) keeps its numbers in the monthly
    /// rollup and the logins' hours that replace it.
    #[tokio::test]
    async fn the_daily_rollup_converts_into_months_and_logins_hours() {
        let path = std::env::temp_dir().join(format!("elevate-migrate-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let url = format!("sqlite://{}?mode=rwc", path.display());
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        for (version, sql) in SQLITE.iter().filter(|(v, _)| *v <= 9) {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            sqlx::query("INSERT INTO schema_migrations VALUES ($1, 0)")
                .bind(*version)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        // 2025-10-30 (day 20391) and 2025-10-31: alice's apt three times at 09:00-11:00 UTC
        // and once the next day, and root's failed job.
        sqlx::raw_sql(
            "INSERT INTO discovery_daily (day, origin, user_name, host, program, outcome, system, \
             runs, first_ms, last_ms, h09, h10) VALUES \
             (20391, 'import', 'alice', 'ws1', '/usr/bin/apt', 'ran', 0, 3, 1761814800000, 1761818400000, 1, 2), \
             (20392, 'import', 'alice', 'ws1', '/usr/bin/apt', 'ran', 0, 1, 1761901200000, 1761901200000, 1, 0), \
             (20391, 'device', 'root', 'srv', '/usr/bin/apt', 'failed', 1, 5, 1761814800000, 1761814800000, 0, 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();

        let store = Store::connect(&url).await.unwrap();
        let mut usage = store.usage(20_391, 20_393).await.unwrap();
        usage.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        let got: Vec<_> = usage
            .iter()
            .map(|u| {
                (
                    u.origin,
                    &*u.user_name,
                    &*u.host,
                    u.outcome,
                    u.system,
                    u.runs,
                    u.days,
                    u.first.as_millisecond(),
                    u.last.as_millisecond(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "import",
                    "alice",
                    "ws1",
                    "ran",
                    false,
                    4,
                    2,
                    1_761_814_800_000,
                    1_761_901_200_000
                ),
                (
                    "device",
                    "root",
                    "srv",
                    "failed",
                    true,
                    5,
                    1,
                    1_761_814_800_000,
                    1_761_814_800_000
                ),
            ]
        );
        // Only the first day: its runs, and the last run known to the day.
        let first_day = store.usage(20_391, 20_392).await.unwrap();
        let alice = first_day.iter().find(|u| &*u.user_name == "alice").unwrap();
        assert_eq!((alice.runs, alice.days), (3, 1));
        assert_eq!(alice.last.as_millisecond(), 20_392 * 86_400_000 - 1);
        let mut hours: Vec<(i64, u64)> = store
            .login_hours(20_391, 20_393, Some(&["alice".to_owned()]))
            .await
            .unwrap()
            .iter()
            .map(|h| (h.hour, h.runs))
            .collect();
        hours.sort();
        assert_eq!(
            hours,
            [
                (20_391 * 24 + 9, 1),
                (20_391 * 24 + 10, 2),
                (20_392 * 24 + 9, 1)
            ]
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
