//! The embedded default. Write transactions start with `BEGIN IMMEDIATE`, taking
//! SQLite's single write lock up front: two approvals of one ticket queue behind each
//! other instead of both reading "open", and no transaction fails half-way on an
//! upgrade from reader to writer. Every write goes through one connection of its own,
//! so writers queue in the pool, first come first served, instead of in SQLite's busy
//! handler, which sleeps between tries (up to 100 ms a try): with eight connections
//! contending, unlucky approvals slept again and again, and their mail with them. The behaviour itself is `sql_store!` (shared.rs);
//! this file holds only what is SQLite's own.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::rows::{
    self, DeviceRow, EventRow, GrantRow, MailStatusRow, OutboxRow, ResponseRow, SummaryRow,
    TicketRow, UserRow, hex,
};
use super::shared::{ACCESS_CODE_LOCK, LoginBucket, intake_lock_class};
use super::{
    AddressChange, AddressChangeOutcome, AddressChanger, ApiTokenInfo, Approval, CodeCheck,
    Conflict, CreateOutcome, FirstApproval, Grant, GrantKind, IntakeHit, IntakeReservation,
    LoginAttempt, LoginAttemptId, LoginLimits, LoginReservation, NewAccessCode, NewApiToken,
    NewMail, NewSession, NewTicket, OutboxMessage, QueueFilter, ResentApproval, SessionStage,
    Store, StoreError, StoreResult, StoredSeed, TicketDetail, TicketSummary, TokenScope, User,
    UserId,
};
use super::{KeyKind, KeyRecordStatus, RegisteredKey};
use crate::audit::AuditEntry;
use crate::crypto::{SealKeyId, SealedSecret};
use crate::domain::{EmailAddress, Role, Roles, TicketNumber, TicketStatus, Timestamp};

pub struct SqliteStore {
    /// Readers: WAL lets them run beside the writer.
    pub(super) pool: SqlitePool,
    /// The one writing connection.
    writer: SqlitePool,
}

// A search narrows to the few tickets that match a number, an e-mail or a serial prefix,
// each through its own index, before sorting.
const QUEUE_SEARCH: &str = concat!(
    summary_select!(),
    "WHERE ($1 IS NULL OR t.status = $1)
       AND t.id IN (SELECT id FROM tickets WHERE number = $2
                    UNION SELECT id FROM tickets WHERE lower(customer_email) = $3
                    UNION SELECT ticket_id FROM ticket_devices WHERE serial GLOB $4)
       AND (t.created_at, t.id) > ($5, $6)
     ORDER BY t.created_at, t.id LIMIT $7"
);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Leases due mail. SQLite has one writer at a time (the `BEGIN IMMEDIATE` around this),
/// so no row can be claimed twice.
const CLAIM_DUE_MAIL: &str = "UPDATE outbox SET lease_until = $1 + CAST($2 AS BIGINT)
     WHERE id IN (SELECT id FROM outbox
                  WHERE status = 'pending' AND next_attempt_at <= $1
                    AND (lease_until IS NULL OR lease_until <= $1)
                  ORDER BY id LIMIT $3)
     RETURNING id, message_id, recipient, subject, body_text, body_html,
               attachment_name, attachment_type, attachment, attempts";

/// The ticket's status, read before recording a first approval; the write lock already
/// keeps it from changing underneath.
const TICKET_STATUS_FOR_DECISION: &str = "SELECT status FROM tickets WHERE id = $1";

/// GLOB is case-sensitive, so it can use the serial index; serials contain no GLOB
/// wildcard characters.
fn serial_prefix_pattern(prefix: &str) -> String {
    format!("{prefix}*")
}

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

/// Up to 100 expired intake requests (writers are serialised: no one else is pruning).
const PRUNE_INTAKE_HITS: &str = "DELETE FROM intake_hits WHERE id IN
    (SELECT id FROM intake_hits WHERE at <= $1 ORDER BY at LIMIT 100)";

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
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
        Ok(Self { pool, writer })
    }

    /// Where a write outside a transaction runs: the writing connection.
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
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

sql_store!(SqliteStore, Sqlite);
