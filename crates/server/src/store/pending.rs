//! Discovery's rollups kept up to date on SQLite: newly stored observations wait in
//! `discovery_pending` (one row per batch, written in the transaction that stored them) until a
//! roller adds them to the rollups (see `rollups`) and to the evidence index, many batches in
//! one transaction. A batch of 5,000 rolled up on its own rewrote a page of each rollup and of
//! the index for almost every login in it; twenty batches together rewrite each page once. A
//! round adds its batches up before it takes the writer lock (imports go on meanwhile) and
//! holds the lock only to write the sums, the evidence and the deletion. The server rolls up
//! every second, and every read of the rollups first rolls up what was pending when it began.
//! PostgreSQL rolls each batch up in the transaction that stores it (rounds were no faster
//! there) and keeps evidence in an index on the observations.
//!
//! Must never: add a pending batch to the rollups twice or not at all (it is deleted, by its
//! own sequence number, in the transaction that adds it, and that transaction checks it
//! deleted exactly the batches it added up), let two rollers take the same batches (one
//! roller at a time, `Store::roller`), or answer a read from rollups that lack a batch
//! committed before the read began.

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::rollups::{origin_code, outcome_code};
use super::sums::Sums;
use super::{get, Backend, Result, Store, StoreError, Tx};
use crate::store::ObservationRow;

/// Observations rolled up in one transaction at most (a round holds their sums in memory,
/// some tens of megabytes, and one batch's observations at a time). Rounds of 200,000 imported
/// faster but took the server to 199 MiB at ten million events; 100,000, to 184.
const ROUND_EVENTS: i64 = 100_000;
/// Batches looked at in one round at most.
const ROUND_BATCHES: i64 = 1_000;

/// An observation as the rollups need it, stored as a JSON array: id, milliseconds, login,
/// host, program, origin code, outcome code, system, package, SHA-256.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Observed<S>(
    pub S,
    pub i64,
    pub S,
    pub S,
    pub S,
    pub i64,
    pub i64,
    pub bool,
    pub Option<S>,
    pub Option<S>,
);

impl Tx<'_> {
    /// Adds newly stored observations to the rollups in this transaction: queued on SQLite,
    /// rolled up at once on PostgreSQL.
    pub(super) async fn add_to_rollups(&mut self, new: &[&ObservationRow]) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let observed = new
            .iter()
            .map(|r| {
                Ok(Observed(
                    r.id.as_str(),
                    r.at.as_millisecond(),
                    r.user_name.as_str(),
                    r.host.as_str(),
                    r.program.as_str(),
                    origin_code(&r.origin),
                    outcome_code(&r.outcome)?,
                    r.system,
                    r.package.as_deref(),
                    r.sha256.as_deref(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        if self.backend == Backend::Postgres {
            // PostgreSQL rolls up at once, and its evidence is an index on the observations
            // (see the migration): there, rounds of many batches were no faster (27,300
            // against 28,700 events/s at 2 million), where SQLite's went from 17,000 to 45,000.
            return self.roll_up(&observed).await;
        }
        let text = serde_json::to_string(&observed)
            .map_err(|e| StoreError::Corrupt(format!("pending observations: {e}")))?;
        sqlx::query("INSERT INTO discovery_pending (events, observed) VALUES ($1, $2)")
            .bind(new.len() as i64)
            .bind(text)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Adds the observations of the pending batches up to `through` to the evidence index
    /// (one login's observations by time), in login order, straight from their JSON.
    async fn add_evidence(&mut self, through: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO discovery_evidence (user_name, at_ms, id) \
             SELECT json_extract(o.value, '$[2]'), json_extract(o.value, '$[1]'), \
                    json_extract(o.value, '$[0]') \
             FROM discovery_pending AS p, json_each(p.observed) AS o WHERE p.seq <= $1 \
             ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING",
        )
        .bind(through)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Rolls up every batch that was pending when called (in rounds of at most
    /// `ROUND_EVENTS`). Returns how many observations it rolled up.
    pub async fn roll_up_pending(&self) -> Result<u64> {
        if self.backend == Backend::Postgres {
            return Ok(0); // rolled up as stored
        }
        // One roller at a time: only rollers delete pending batches, so what a round reads
        // before it takes the writer lock is still pending when it has it.
        let _roller = self.roller.lock().await;
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM discovery_pending")
            .fetch_one(&self.pool)
            .await?;
        let Some(last) = last else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            match self.roll_round(last).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// One round: the oldest pending batches up to `last`, added up without the writer lock
    /// (imports go on meanwhile), then written to the rollups and deleted in one transaction.
    /// Returns how many observations they held (0: none were left).
    async fn roll_round(&self, last: i64) -> Result<u64> {
        // Batch by batch, oldest first: a round holds its sums, not its observations.
        let mut sums = Sums::default();
        let (mut taken, mut through, mut events) = (0, None, 0);
        let mut rows = sqlx::query(
            "SELECT seq, events, observed FROM discovery_pending WHERE seq <= $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(last)
        .bind(ROUND_BATCHES)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let (seq, n): (i64, i64) = (get(&row, "seq")?, get(&row, "events")?);
            if taken > 0 && events + n > ROUND_EVENTS {
                break;
            }
            let text: String = get(&row, "observed")?;
            let batch: Vec<Observed<String>> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("pending discovery batch {seq}: {e}")))?;
            sums.add(&batch)?;
            (taken, through, events) = (taken + 1, Some(seq), events + n);
        }
        drop(rows);
        let Some(through) = through else {
            return Ok(0);
        };
        let rolled = sums.events;
        let mut tx = self.begin().await?;
        // The transaction ends here, whatever happens (a dropped one ends only when its
        // connection is next used).
        match Self::write_round(&mut tx, sums, through, taken).await {
            Ok(()) => {
                tx.commit().await?;
                Ok(rolled)
            }
            Err(e) => {
                if let Err(end) = tx.rollback().await {
                    tracing::warn!(error = %end, "ending a failed roll-up round");
                }
                Err(e)
            }
        }
    }

    /// Writes a round's sums and evidence and deletes its batches (all up to `through`).
    async fn write_round(tx: &mut Tx<'_>, sums: Sums, through: i64, taken: u64) -> Result<()> {
        tx.write_sums(sums).await?;
        tx.add_evidence(through).await?;
        let deleted = sqlx::query("DELETE FROM discovery_pending WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        // Under the roller's lock nothing else deletes batches and imports add later ones:
        // the batches deleted must be the ones added up.
        if deleted != taken {
            return Err(StoreError::Corrupt(format!(
                "a roll-up round added up {taken} pending batches and deleted {deleted}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(id: &str, user: &str, at: &str) -> ObservationRow {
        ObservationRow {
            at: at.parse().unwrap(),
            ..super::super::rollups::tests::observation(id, user, "h1", "/usr/bin/id")
        }
    }

    async fn pending(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM discovery_pending")
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    /// Stored observations wait as one pending batch; the first read rolls them up (and their
    /// evidence) exactly once, however often it is asked; duplicates queue nothing; a round
    /// that fails leaves its batches pending.
    #[tokio::test]
    async fn pending_batches_are_rolled_up_once_before_any_read() {
        let path = std::env::temp_dir().join(format!("elevate-pending-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = Store::open_sqlite(&path).await.unwrap();
        let rows = [
            observation("syslog:1", "amy", "2026-10-05T10:00:00Z"),
            observation("syslog:2", "amy", "2026-10-06T11:00:00Z"),
            observation("syslog:3", "bob", "2026-10-06T12:00:00Z"),
        ];
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.insert_observations(&rows).await.unwrap(), 3);
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.insert_observations(&rows[..1]).await.unwrap(), 0);
        tx.commit().await.unwrap();
        assert_eq!(
            pending(&store).await,
            1,
            "one batch, the duplicate queued nothing"
        );

        // A damaged batch stops the round, and nothing of it is counted or deleted.
        sqlx::query("INSERT INTO discovery_pending (events, observed) VALUES (1, 'not json')")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(
            store.usage(20_727, 20_758).await,
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(pending(&store).await, 2);
        sqlx::query("DELETE FROM discovery_pending WHERE observed = 'not json'")
            .execute(store.pool())
            .await
            .unwrap();

        let usage = store.usage(20_727, 20_758).await.unwrap(); // October 2026
        let mut runs: Vec<(&str, u64)> = usage.iter().map(|u| (&*u.user_name, u.runs)).collect();
        runs.sort();
        assert_eq!(runs, [("amy", 2), ("bob", 1)]);
        assert_eq!(pending(&store).await, 0);
        assert_eq!(store.roll_up_pending().await.unwrap(), 0);
        let again = store.usage(20_727, 20_758).await.unwrap();
        assert_eq!(again.iter().map(|u| u.runs).sum::<u64>(), 3);
        let evidence = store
            .observations_of(
                &["amy".to_owned()],
                "2026-10-01T00:00:00Z".parse().unwrap(),
                "2026-11-01T00:00:00Z".parse().unwrap(),
                10,
            )
            .await
            .unwrap();
        let ids: Vec<&str> = evidence.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["syslog:2", "syslog:1"], "newest first");
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    /// Rollers asked at once (the server's every second, and reads) add each batch once: a
    /// round adds its batches up before it takes the writer lock, so two rounds could
    /// otherwise both add up the same batches.
    #[tokio::test]
    async fn rollers_asked_at_once_add_each_batch_once() {
        let path = std::env::temp_dir().join(format!("elevate-rollers-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = Store::open_sqlite(&path).await.unwrap();
        for batch in 0..20 {
            let rows: Vec<ObservationRow> = (0..50)
                .map(|i| {
                    observation(
                        &format!("syslog:{batch}-{i}"),
                        "amy",
                        "2026-10-05T10:00:00Z",
                    )
                })
                .collect();
            let mut tx = store.begin().await.unwrap();
            tx.insert_observations(&rows).await.unwrap();
            tx.commit().await.unwrap();
        }
        let (a, b, c) = tokio::join!(
            store.roll_up_pending(),
            store.roll_up_pending(),
            store.usage(20_727, 20_758)
        );
        assert_eq!(
            a.unwrap() + b.unwrap(),
            1_000,
            "each observation rolled up once"
        );
        assert_eq!(c.unwrap().iter().map(|u| u.runs).sum::<u64>(), 1_000);
        let evidence: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM discovery_evidence")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(evidence, 1_000);
        assert_eq!(pending(&store).await, 0);
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
