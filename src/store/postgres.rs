//! The backend for several replicas on one PostgreSQL database. Writers run concurrently,
//! so what SQLite gets from its single write lock is explicit here: the outbox claim skips
//! rows another worker has locked (`FOR UPDATE SKIP LOCKED`), a first approval locks its
//! ticket row, and appends to the audit chain and counts of sign-in attempts take
//! transaction-scoped advisory locks.
//! The behaviour itself is `SqlStore` (`sql/`); this file holds only what is PostgreSQL's
//! own.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{PgPool, Postgres, Transaction};

use super::dialect::{Dialect, RowsAffected};
use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use crate::domain::SearchText;

/// The store on a PostgreSQL database, shared by every replica.
pub type PgStore = SqlStore<Postgres>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The audit chain's key for `pg_advisory_xact_lock` ("RDAUDIT" in ASCII).
const AUDIT_CHAIN_LOCK: i64 = 0x0052_4441_5544_4954;

impl Dialect for Postgres {
    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    /// A plain transaction on any connection: writers run concurrently, and what must not
    /// change underneath them is locked explicitly (the statements and locks below).
    async fn begin_write(writer: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        writer.begin().await
    }

    /// Writers run side by side and lock rows and buckets as they go: a transaction
    /// holding many callers' locks, in no one order, would deadlock with another
    /// replica's.
    const GROUP_COMMIT: bool = false;

    // Through the trigram index or, for a search most tickets match, backwards along the
    // primary key until the page is full: the planner chooses from the patterns, which is
    // why the statement is not prepared once for all patterns (`persistent(false)`: an
    // unnamed statement is planned with its values, so an empty `$2` folds away).
    // `$5`, every trigram of the search, alone decides what matches. `$2`, the tiles of
    // a long search with digits (see `search_pattern`), is given to the index beside it.
    const QUEUE_SEARCH: &'static str = concat!(
        summary_select!(),
        "WHERE ($2 = '' OR t.search_text LIKE $2) AND t.search_text LIKE $5
       AND ($1 IS NULL OR t.status = $1)
       AND (CAST($3 AS BIGINT) IS NULL OR t.id < $3)
     ORDER BY t.id DESC LIMIT $4"
    );

    // The literal status and condition are the partial index's own.
    const QUEUE_AWAITING_SECOND: &'static str = concat!(
        summary_select!(),
        "WHERE t.status = 'open' AND t.first_approved_at IS NOT NULL
       AND (t.export_expires_at, t.id) > ($1, $2)
     ORDER BY t.export_expires_at, t.id LIMIT $3"
    );

    /// For a search of at least [`TILED_SEARCH_CHARS`] characters with a digit (a serial,
    /// a serial's end, a ticket number): the trigrams that tile it without overlapping,
    /// in order, with anything between them, which every text holding the search matches.
    /// Otherwise nothing (`''`).
    ///
    /// Why: such a search's trigrams include some nearly every ticket holds ("000", a
    /// model's prefix), whose long lists the index scan must read; given the tiles as a
    /// second condition, the same scan ran a third faster (a whole serial at a million
    /// tickets: p99 31.9 → 19.6 ms). The planner, though, takes the two conditions as
    /// independent, and for a search many tickets hold that squares its estimate: a first
    /// name ("jorge", tiled "jor") looked rare, was fetched whole through the index and
    /// sorted, 220–430 ms against 2 ms walking the key. A long search with digits is an
    /// identifier and rare, so its estimate stays right.
    fn search_pattern(search: &SearchText) -> String {
        let chars: Vec<char> = search.as_str().chars().collect();
        if chars.len() < TILED_SEARCH_CHARS || !chars.iter().any(char::is_ascii_digit) {
            return String::new();
        }
        let tiles: Vec<String> = chars
            .chunks_exact(3)
            .map(|tile| like_literal(&tile.iter().collect::<String>()))
            .collect();
        format!("%{}%", tiles.join("%"))
    }

    /// The search anywhere in the text, LIKE's wildcards (and its escape character)
    /// taken literally.
    fn search_check(search: &SearchText) -> String {
        format!("%{}%", like_literal(search.as_str()))
    }

    /// `SKIP LOCKED` lets workers on every replica claim different rows at the same moment
    /// instead of waiting for, or double-claiming, each other's.
    const CLAIM_DUE_MAIL: &'static str = "UPDATE outbox SET lease_until = $1 + CAST($2 AS BIGINT)
     WHERE id IN (SELECT id FROM outbox
                  WHERE status = 'pending' AND next_attempt_at <= $1
                    AND (lease_until IS NULL OR lease_until <= $1)
                  ORDER BY id LIMIT $3
                  FOR UPDATE SKIP LOCKED)
     RETURNING id, message_id, recipient, subject, body_text, body_html,
               attachment_name, attachment_type, attachment, attempts, in_reply_to, kind";

    /// Rows another worker is claiming are skipped, never waited for.
    const CLAIM_EVIDENCE_JOBS: &'static str = "UPDATE evidence_jobs
     SET lease_until = $1 + CAST($2 AS BIGINT), attempts = attempts + 1
     WHERE id IN (SELECT id FROM evidence_jobs
                  WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= $1)
                    AND (CAST($4 AS BIGINT) IS NULL OR ticket_id = $4)
                  ORDER BY id LIMIT $3
                  FOR UPDATE SKIP LOCKED)
     RETURNING id, ticket_id, label_blob, attempts";

    /// Locked until the transaction ends, so two people approving at once cannot both be
    /// "first".
    const TICKET_STATUS_FOR_DECISION: &'static str =
        "SELECT status FROM tickets WHERE id = $1 FOR UPDATE";

    /// Rows another transaction is pruning are skipped, never waited for, so two prunes
    /// cannot deadlock.
    const PRUNE_INTAKE_HITS: &'static str = "DELETE FROM intake_hits WHERE id IN
    (SELECT id FROM intake_hits WHERE at <= $1 ORDER BY at LIMIT 100 FOR UPDATE SKIP LOCKED)";

    const FORGET_ERASED_SEARCH_TERMS: &'static [&'static str] = &[];

    /// A transaction-scoped advisory lock, across every connection and replica, so two
    /// writers never read the same head.
    async fn lock_audit_chain(tx: &mut Transaction<'static, Postgres>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_CHAIN_LOCK)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Without it two requests at once would both count the same free place under READ
    /// COMMITTED, and both pass. Each kind of bucket has a lock namespace of its own
    /// (`class`, the two-key advisory locks); names share a key only when their hashes
    /// collide, which makes them wait for each other, never wrong.
    async fn lock_bucket(
        tx: &mut Transaction<'static, Postgres>,
        class: i32,
        key: &str,
    ) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(class)
            .bind(key)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl PgStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(db)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // While the database is unreachable a request waits this long before its
            // 503: long enough for a failover, short enough for a person.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db)?;
        // Writes run on the same pool: PostgreSQL takes concurrent writers.
        Self::new(pool.clone(), pool)
    }
}

fn db(error: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(error)
}

/// `text` matched literally by LIKE (whose escape character is the backslash).
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The shortest search PostgreSQL's index is also given the tiles of.
const TILED_SEARCH_CHARS: usize = 9;
