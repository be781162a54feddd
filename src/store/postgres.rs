//! The backend for several replicas on one PostgreSQL database. Writers run concurrently,
//! so what SQLite gets from its single write lock is explicit here: the outbox claim skips
//! rows another worker has locked (`FOR UPDATE SKIP LOCKED`), a first approval locks its
//! ticket row, and appends to the audit chain and counts of sign-in attempts take
//! transaction-scoped advisory locks.
//! The behaviour itself is `sql_store!` (shared.rs); this file holds only what is
//! PostgreSQL's own.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

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

pub struct PgStore {
    pub(super) pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

// A search narrows to the few tickets that match a number, an e-mail or a serial prefix,
// each through its own index, before sorting.
const QUEUE_SEARCH: &str = concat!(
    summary_select!(),
    "WHERE ($1 IS NULL OR t.status = $1)
       AND t.id IN (SELECT id FROM tickets WHERE number = $2
                    UNION SELECT id FROM tickets WHERE lower(customer_email) = $3
                    UNION SELECT ticket_id FROM ticket_devices WHERE serial LIKE $4)
       AND (t.created_at, t.id) > ($5, $6)
     ORDER BY t.created_at, t.id LIMIT $7"
);

/// Leases due mail. `SKIP LOCKED` lets workers on every replica claim different rows at
/// the same moment instead of waiting for, or double-claiming, each other's.
const CLAIM_DUE_MAIL: &str = "UPDATE outbox SET lease_until = $1 + CAST($2 AS BIGINT)
     WHERE id IN (SELECT id FROM outbox
                  WHERE status = 'pending' AND next_attempt_at <= $1
                    AND (lease_until IS NULL OR lease_until <= $1)
                  ORDER BY id LIMIT $3
                  FOR UPDATE SKIP LOCKED)
     RETURNING id, message_id, recipient, subject, body_text, body_html,
               attachment_name, attachment_type, attachment, attempts";

/// The ticket's status, locked until the first approval is recorded, so two people
/// approving at once cannot both be "first".
const TICKET_STATUS_FOR_DECISION: &str = "SELECT status FROM tickets WHERE id = $1 FOR UPDATE";

/// LIKE with the wildcards a serial may contain (`_`) escaped; the serial index uses
/// `text_pattern_ops`, so the prefix match is an index range.
fn serial_prefix_pattern(prefix: &str) -> String {
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{escaped}%")
}

/// The audit chain's key for `pg_advisory_xact_lock` ("RDAUDIT" in ASCII).
const AUDIT_CHAIN_LOCK: i64 = 0x0052_4441_5544_4954;

/// Serialises appends to the audit chain across every connection and replica until the
/// transaction ends, so two writers never read the same head.
async fn lock_audit_chain(tx: &mut Transaction<'static, Postgres>) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_CHAIN_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Serialises the counting in one bucket (sign-in attempts, intake requests, a ticket's
/// one-time codes) across every connection and replica until the transaction ends:
/// without it two requests at once would both count the same free place under READ
/// COMMITTED, and both pass. Each kind of bucket has a lock namespace of its own (`class`,
/// the two-key advisory locks); names share a key only when their hashes collide, which
/// makes them wait for each other, never wrong.
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

/// Up to 100 expired intake requests; rows another transaction is pruning are skipped,
/// never waited for, so two prunes cannot deadlock.
const PRUNE_INTAKE_HITS: &str = "DELETE FROM intake_hits WHERE id IN
    (SELECT id FROM intake_hits WHERE at <= $1 ORDER BY at LIMIT 100 FOR UPDATE SKIP LOCKED)";

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
        Ok(Self { pool })
    }

    /// Where a write outside a transaction runs: any connection.
    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
    }
}

sql_store!(PgStore, Postgres);
