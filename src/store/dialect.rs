//! What differs between SQLite and PostgreSQL, and only that. The store's behaviour is
//! written once (`sql/`), in the SQL both databases speak (`$N` parameters, `CAST`,
//! `COUNT(*) FILTER`, `RETURNING`); a backend implements `Dialect` (`sqlite.rs`,
//! `postgres.rs`) for what it must do its own way. Most of it is concurrency: SQLite has
//! one writer at a time, so what PostgreSQL needs a lock for SQLite gets for free.

use std::future::Future;

use sqlx::database::HasStatementCache;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Database, IntoArguments, Pool, Transaction};

use super::StoreResult;
use crate::domain::SearchText;

/// The rows a statement changed. sqlx gives each backend's result its own
/// `rows_affected` method but no trait for it, which generic code needs.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

/// A SQL database the store runs on: sqlx's `Database` (the bounds on its associated
/// types are what the shared SQL code needs of it) and what the backend does its own way.
pub trait Dialect:
    Database<Arguments: IntoArguments<Self>, QueryResult: RowsAffected, Connection: Migrate>
    + HasStatementCache
{
    /// The backend's migrations: the same file names in `migrations/sqlite` and
    /// `migrations/postgres`, written in each one's DDL.
    fn migrator() -> &'static Migrator;

    /// Starts a transaction that will write, on `writer`. Whether it takes the database's
    /// write lock up front or locks rows as it goes decides what the shared code may
    /// assume (see the locks below).
    fn begin_write(
        writer: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Whether the write transactions queued on the write lane are committed together,
    /// a savepoint each (`sql/group_commit.rs`): where the database has one writer and
    /// every commit waits for the disk. Where writers run side by side, locking as they
    /// go, each commits alone.
    const GROUP_COMMIT: bool;

    /// The queue search, newest first (`$1` status or NULL, `$2` the pattern from
    /// [`Dialect::search_pattern`], `$3` the id the page starts below or NULL, `$4` the
    /// limit, `$5` the check from [`Dialect::search_check`]): tickets whose `search_text`
    /// holds the search, found through the trigram index (migration 0021).
    const QUEUE_SEARCH: &'static str;

    /// Open tickets waiting for their second approval after the cursor (`$1`/`$2`, the
    /// export's death and id), the first to die first, at most `$3`: through the partial
    /// index of just those tickets (migration 0022), which walks a handful of rows where
    /// the open queue's index would walk every open ticket.
    const QUEUE_AWAITING_SECOND: &'static str;

    /// What `QUEUE_SEARCH` looks the search up by in the trigram index: candidates that
    /// include every ticket holding the search; every character taken literally. Empty
    /// where the dialect's statement looks the search up by `search_check` alone.
    fn search_pattern(search: &SearchText) -> String;

    /// What `QUEUE_SEARCH` checks each candidate against: exactly the tickets holding the
    /// search pass.
    fn search_check(search: &SearchText) -> String;

    /// Leases up to `$3` due mails at `$1` for `$2` seconds, returning them. Two outbox
    /// workers (on as many replicas) must never lease the same row.
    const CLAIM_DUE_MAIL: &'static str;

    /// Leases up to `$3` pending evidence jobs at `$1` for `$2` seconds, counting the
    /// attempt; only ticket `$4`'s when it is not NULL. Returns `id, ticket_id,
    /// label_blob, attempts`. Two workers must never lease the same job.
    const CLAIM_EVIDENCE_JOBS: &'static str;

    /// The ticket's status (`$1` its id), read before a decision that depends on it (a
    /// first approval, a claim, an address change): it must not change until the
    /// transaction ends.
    const TICKET_STATUS_FOR_DECISION: &'static str;

    /// Deletes up to 100 intake requests at or before `$1`. Two requests pruning at once
    /// must not wait on each other in a circle.
    const PRUNE_INTAKE_HITS: &'static str;

    /// Makes the caller the only writer appending to the audit chain until `tx` ends:
    /// reading the head and appending after it must be one step.
    fn lock_audit_chain(
        tx: &mut Transaction<'static, Self>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Statements that leave no trace of erased words in the search index (SQLite's
    /// FTS5 keeps a deleted row's terms in its segments until they are merged; a
    /// PostgreSQL index has no words of its own beyond the rows'). Run in an erasure's
    /// transaction.
    const FORGET_ERASED_SEARCH_TERMS: &'static [&'static str];

    /// Makes the caller the only one counting in the bucket `key` of lock namespace
    /// `class` (sign-in attempts, intake requests, a ticket's one-time codes) until `tx`
    /// ends: two requests at once must not both count the same free place.
    fn lock_bucket(
        tx: &mut Transaction<'static, Self>,
        class: i32,
        key: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
