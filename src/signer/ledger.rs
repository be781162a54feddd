//! The signer's own memory, in a SQLite file of its own (never the desk's database): the
//! challenges it answered, for "each challenge once" and the caps, and an append-only
//! log whose every entry carries the SHA-256 of the one before, so an entry removed or
//! changed afterwards breaks the chain (`resetdesk signer audit verify`).

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, Sqlite, Transaction};

use crate::domain::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the signer's database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the signer's log is broken at entry {id}: {why}")]
    Broken { id: i64, why: &'static str },
}

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS answered (
    challenge TEXT    PRIMARY KEY,
    serial    TEXT    NOT NULL,
    ticket    TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS answered_by_time ON answered (at);
CREATE INDEX IF NOT EXISTS answered_by_serial ON answered (serial, at);
CREATE TABLE IF NOT EXISTS log (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    event  TEXT    NOT NULL,
    detail TEXT    NOT NULL,
    hash   TEXT    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS log_is_append_only_update BEFORE UPDATE ON log
BEGIN SELECT RAISE(ABORT, 'the signer log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS log_is_append_only_delete BEFORE DELETE ON log
BEGIN SELECT RAISE(ABORT, 'the signer log is append-only'); END;
";

/// A challenge to answer: its id (serial and nonce) and its serial.
pub struct Challenge {
    pub id: String,
    pub serial: String,
}

/// Why the ledger refuses an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Over {
    /// This challenge was answered before (for that ticket).
    AnsweredBefore(String),
    /// `limit` answers in the last hour.
    PerHour(u32),
    /// `limit` answers for this serial in the last day.
    PerSerial { serial: String, limit: u32 },
}

pub struct Ledger {
    pool: SqlitePool,
}

impl Ledger {
    pub async fn open(path: &std::path::Path) -> Result<Self, LedgerError> {
        // Owner-only from the start (SQLite gives its -wal and -shm files the same mode):
        // what the signer answered is nobody else's to read.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| LedgerError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        // One writer: the checks and the record of an answer are one transaction.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self { pool })
    }

    /// Records the answer of every challenge for `ticket` at `now`, and its log entry,
    /// if none was answered before and the caps allow them; otherwise says why (the
    /// caller logs refusals, within its budget).
    pub async fn record_answer(
        &self,
        ticket: &str,
        challenges: &[Challenge],
        per_hour: u32,
        per_serial_per_day: u32,
        detail: &str,
        now: Timestamp,
    ) -> Result<Result<(), Over>, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let over = Self::over(&mut tx, challenges, per_hour, per_serial_per_day, now).await?;
        if let Some(over) = over {
            return Ok(Err(over));
        }
        for challenge in challenges {
            sqlx::query(
                "INSERT INTO answered (challenge, serial, ticket, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&challenge.id)
            .bind(&challenge.serial)
            .bind(ticket)
            .bind(now.unix_seconds())
            .execute(&mut *tx)
            .await?;
        }
        Self::append(&mut tx, now, "answered", &format!("{ticket}: {detail}")).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn over(
        tx: &mut Transaction<'_, Sqlite>,
        challenges: &[Challenge],
        per_hour: u32,
        per_serial_per_day: u32,
        now: Timestamp,
    ) -> Result<Option<Over>, LedgerError> {
        for challenge in challenges {
            let before: Option<String> =
                sqlx::query_scalar("SELECT ticket FROM answered WHERE challenge = $1")
                    .bind(&challenge.id)
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some(ticket) = before {
                return Ok(Some(Over::AnsweredBefore(ticket)));
            }
        }
        let last_hour: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM answered WHERE at > $1")
            .bind(now.unix_seconds() - 3600)
            .fetch_one(&mut **tx)
            .await?;
        if last_hour + challenges.len() as i64 > i64::from(per_hour) {
            return Ok(Some(Over::PerHour(per_hour)));
        }
        for challenge in challenges {
            let last_day: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM answered WHERE serial = $1 AND at > $2")
                    .bind(&challenge.serial)
                    .bind(now.unix_seconds() - 86_400)
                    .fetch_one(&mut **tx)
                    .await?;
            if last_day >= i64::from(per_serial_per_day) {
                return Ok(Some(Over::PerSerial {
                    serial: challenge.serial.clone(),
                    limit: per_serial_per_day,
                }));
            }
        }
        Ok(None)
    }

    /// Whether every challenge was answered by this signer (what `recover` may re-derive).
    pub async fn all_answered(&self, challenges: &[Challenge]) -> Result<bool, LedgerError> {
        for challenge in challenges {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM answered WHERE challenge = $1")
                    .bind(&challenge.id)
                    .fetch_optional(&self.pool)
                    .await?;
            if found.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Appends one entry to the log on its own.
    pub async fn log(&self, now: Timestamp, event: &str, detail: &str) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        Self::append(&mut tx, now, event, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append(
        tx: &mut Transaction<'_, Sqlite>,
        now: Timestamp,
        event: &str,
        detail: &str,
    ) -> Result<(), LedgerError> {
        let previous: Option<String> =
            sqlx::query_scalar("SELECT hash FROM log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?;
        let previous = previous.unwrap_or_else(|| GENESIS.to_owned());
        let hash = chain(&previous, now.unix_seconds(), event, detail);
        sqlx::query("INSERT INTO log (at, event, detail, hash) VALUES ($1, $2, $3, $4)")
            .bind(now.unix_seconds())
            .bind(event)
            .bind(detail)
            .bind(hash)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Checks the whole log, an entry at a time; the number of entries when it holds.
    pub async fn verify(&self) -> Result<u64, LedgerError> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query("SELECT id, at, event, detail, hash FROM log ORDER BY id")
            .fetch(&self.pool);
        let mut previous = GENESIS.to_owned();
        let mut count = 0;
        while let Some(row) = rows.try_next().await? {
            count += 1;
            let expected_id = count;
            let id: i64 = row.try_get("id")?;
            if id != expected_id {
                return Err(LedgerError::Broken {
                    id,
                    why: "an entry before it is missing",
                });
            }
            let hash: String = row.try_get("hash")?;
            let computed = chain(
                &previous,
                row.try_get("at")?,
                &row.try_get::<String, _>("event")?,
                &row.try_get::<String, _>("detail")?,
            );
            if !crate::crypto::constant_time_eq(hash.as_bytes(), computed.as_bytes()) {
                return Err(LedgerError::Broken {
                    id,
                    why: "it was changed after it was written",
                });
            }
            previous = hash;
        }
        Ok(count as u64)
    }
}

/// An entry's hash: SHA-256 over the previous hash and the entry's fields, each on its
/// own line (a field holds no line break that could shift another: `detail` is escaped).
fn chain(previous: &str, at: i64, event: &str, detail: &str) -> String {
    let input = format!(
        "{previous}\n{at}\n{event}\n{}",
        detail.replace('\\', "\\\\").replace('\n', "\\n")
    );
    data_encoding::HEXLOWER.encode(&crate::crypto::sha256(input.as_bytes()))
}
