//! The embedded default. Write transactions start with `BEGIN IMMEDIATE`, taking
//! SQLite's single write lock up front: two approvals of one ticket queue behind each
//! other instead of both reading "open", and no transaction fails half-way on an
//! upgrade from reader to writer. Every write goes through one connection of its own,
//! so writers queue in the pool, first come first served, instead of in SQLite's busy
//! handler, which sleeps between tries (up to 100 ms a try): with eight connections
//! contending, unlucky approvals slept again and again, and their mail with them.
//! The behaviour itself is `SqlStore` (`sql/`); this file holds only what is SQLite's own.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqlitePool, Transaction};

use super::dialect::{Dialect, RowsAffected};
use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use crate::domain::SearchText;

/// The store on one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for Sqlite {
    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// `BEGIN IMMEDIATE` on the one writing connection: the write lock is taken up front,
    /// so everything the transaction reads stays as read until it commits.
    ///
    /// A transaction SQLite ended itself (on a full disk or an I/O error it may roll back
    /// on its own) leaves sqlx counting it as open: its ROLLBACK fails, and every later
    /// BEGIN on that connection is refused as a savepoint statement. The connection is
    /// closed then, and the pool opens a fresh one, instead of every write failing until
    /// the desk restarts.
    async fn begin_write(writer: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        match writer.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                let mut stuck = writer.acquire().await?;
                if stuck.is_in_transaction() {
                    tracing::warn!(
                        "the database's writing connection was left inside a transaction SQLite had ended; opening a new one"
                    );
                    stuck.close_on_drop();
                }
                drop(stuck);
                writer.begin_with("BEGIN IMMEDIATE").await
            }
            begun => begun,
        }
    }

    /// One writer, and a synced commit each: the lane's queued transactions share one.
    const GROUP_COMMIT: bool = true;

    // The FTS5 trigram table drives the join newest first (it walks its rowids, the
    // tickets' ids, in descending order without a sort), so a search most tickets match
    // stops as soon as the page is full and a rare one reads only its own candidates;
    // each candidate's text is then checked for the search itself.
    const QUEUE_SEARCH: &'static str = concat!(
        "SELECT ",
        summary_columns!(),
        " FROM ticket_search s JOIN tickets t ON t.id = s.rowid ",
        summary_joins!(),
        "WHERE s.ticket_search MATCH $2 AND s.rowid < coalesce($3, 9223372036854775807)
       AND instr(t.search_text, $5) > 0 AND ($1 IS NULL OR t.status = $1)
     ORDER BY s.rowid DESC LIMIT $4"
    );

    // SQLite has no statistics on a new table and would rather walk the open queue's
    // index (it starts with the status); the partial index is named outright.
    const QUEUE_AWAITING_SECOND: &'static str = concat!(
        "SELECT ",
        summary_columns!(),
        " FROM tickets t INDEXED BY tickets_awaiting_second_approval ",
        summary_joins!(),
        "WHERE t.status = 'open' AND t.first_approved_at IS NOT NULL
       AND (t.export_expires_at, t.id) > ($1, $2)
     ORDER BY t.export_expires_at, t.id LIMIT $3"
    );

    /// The trigrams that tile the search (each third one, and the last), all required:
    /// every ticket holding the search holds them, and reading a third of its trigrams'
    /// lists is what makes a long search (a whole serial) fast; `QUEUE_SEARCH` then checks
    /// the text. Each is one quoted FTS5 string, its quotes doubled.
    fn search_pattern(search: &SearchText) -> String {
        let chars: Vec<char> = search.as_str().chars().collect();
        let mut starts: Vec<usize> = (0..chars.len().saturating_sub(2)).step_by(3).collect();
        if chars.len() >= 3 && starts.last() != Some(&(chars.len() - 3)) {
            starts.push(chars.len() - 3);
        }
        let mut terms: Vec<String> = Vec::new();
        for start in starts {
            let trigram: String = chars[start..start + 3].iter().collect();
            let term = format!("\"{}\"", trigram.replace('"', "\"\""));
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        terms.join(" AND ")
    }

    /// The search itself, looked for in each candidate's text with `instr`.
    fn search_check(search: &SearchText) -> String {
        search.as_str().to_owned()
    }

    /// SQLite has one writer at a time (the `BEGIN IMMEDIATE` around this), so no row can
    /// be claimed twice.
    const CLAIM_DUE_MAIL: &'static str = "UPDATE outbox SET lease_until = $1 + CAST($2 AS BIGINT)
     WHERE id IN (SELECT id FROM outbox
                  WHERE status = 'pending' AND next_attempt_at <= $1
                    AND (lease_until IS NULL OR lease_until <= $1)
                  ORDER BY id LIMIT $3)
     RETURNING id, message_id, recipient, subject, body_text, body_html,
               attachment_name, attachment_type, attachment, attempts, in_reply_to, kind";

    /// Writers are serialised: no one else is claiming.
    const CLAIM_EVIDENCE_JOBS: &'static str = "UPDATE evidence_jobs
     SET lease_until = $1 + CAST($2 AS BIGINT), attempts = attempts + 1
     WHERE id IN (SELECT id FROM evidence_jobs
                  WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= $1)
                    AND ($4 IS NULL OR ticket_id = $4)
                  ORDER BY id LIMIT $3)
     RETURNING id, ticket_id, label_blob, attempts";

    /// The write lock already keeps the status from changing underneath.
    const TICKET_STATUS_FOR_DECISION: &'static str = "SELECT status FROM tickets WHERE id = $1";

    /// Writers are serialised: no one else is pruning.
    const PRUNE_INTAKE_HITS: &'static str = "DELETE FROM intake_hits WHERE id IN
    (SELECT id FROM intake_hits WHERE at <= $1 ORDER BY at LIMIT 100)";

    const FORGET_ERASED_SEARCH_TERMS: &'static [&'static str] =
        &["INSERT INTO ticket_search (ticket_search) VALUES ('optimize')"];

    /// The write lock `BEGIN IMMEDIATE` took already serialises appends to the chain.
    async fn lock_audit_chain(_tx: &mut Transaction<'static, Sqlite>) -> StoreResult<()> {
        Ok(())
    }

    /// Every write transaction starts with BEGIN IMMEDIATE on the one writing connection,
    /// which already serialises counting in a bucket, across processes on one file too.
    async fn lock_bucket(
        _tx: &mut Transaction<'static, Sqlite>,
        _class: i32,
        _key: &str,
    ) -> StoreResult<()> {
        Ok(())
    }
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit is synced to the write-ahead log before the desk answers: a
            // 201 for a ticket, a 200 for an approval (with its audit entry and its mail)
            // promise something that must survive a power cut. NORMAL synced only at
            // checkpoints, so the last commits before a crash of the machine were lost.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // What the desk empties (a delivered mail's keys, a sealed seed's clear
            // predecessor) is overwritten with zeros, not left in free pages for a copy
            // of the file to give back.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        if !(url.contains(":memory:") || url.contains("mode=memory")) {
            owner_only_database(options.get_filename())?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(db)?;
        Self::new(pool, writer)
    }
}

/// A new database file is created 0600 before SQLite opens it, so SQLite gives the
/// `-wal` and `-shm` files beside it the same mode (it copies the database file's);
/// an existing one open to others is named in a warning.
fn owner_only_database(path: &std::path::Path) -> StoreResult<()> {
    crate::data_dir::create_file_if_missing(path).map_err(|e| {
        StoreError::other(std::io::Error::new(
            e.kind(),
            format!("cannot create the database file {}: {e}", path.display()),
        ))
    })?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        crate::data_dir::warn_if_open(std::path::Path::new(&name));
    }
    Ok(())
}

fn db(error: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(error)
}
