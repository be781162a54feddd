//! The store, written once for SQLite and PostgreSQL: `SqlStore<D>` runs the SQL both
//! databases speak and asks its [`Dialect`] for what differs. `Store` is one trait per
//! aggregate (store/mod.rs), and each file here implements its aggregate's trait, in the
//! order a ticket lives: `tickets` (`TicketStore`: from a submission to the queue and the
//! claim), `decisions`, `customer`, `outbox`; beside them `history` (helpers only) and
//! `audit` (what every change records), `users` and `sign_in`, `keys`, `reasons`, `intake`
//! and `database`. A file's helpers that other aggregates call (recording history, an
//! audit entry, a mail) are inherent methods in a second block of the same file.
//!
//! Every `impl` block repeats the same `where` clause: what sqlx must be able
//! to do on `D` for the shared code (run a statement on a connection, bind and read the
//! store's value types, read a row's columns by position and by name). Rust takes such
//! bounds for granted only when they bound `D` itself or its associated types (those sit
//! on [`Dialect`] and are written once there); a bound on a foreign type such as
//! `i64: Encode<D>` has to be repeated wherever generic code needs it (rust-lang/rust#20671).
//! The list is short and the same everywhere; `Value` and `Param` name its parts.

/// The queue row's columns; a macro so each query can `concat!` its own filter.
macro_rules! summary_select {
    () => {
        concat!(
            "SELECT ",
            summary_columns!(),
            " FROM tickets t ",
            summary_joins!()
        )
    };
}

/// The columns of a queue row (`SummaryRow`), from `tickets t` and [`summary_joins`].
macro_rules! summary_columns {
    () => {
        "t.id, t.number, t.status, t.created_at,
                (SELECT COUNT(*) FROM ticket_devices c WHERE c.ticket_id = t.id) AS device_count,
                d0.model AS first_model, d0.serial AS first_serial, t.export_expires_at,
                t.customer_name, t.customer_email, u.email AS claimed_by, t.flags"
    };
}

/// What a queue row joins to `tickets t`: its first device and who claimed it.
macro_rules! summary_joins {
    () => {
        "JOIN ticket_devices d0 ON d0.ticket_id = t.id AND d0.position = 0
         LEFT JOIN users u ON u.id = t.claimed_by "
    };
}

/// Loads people's accounts (never the desk's own user, which approves automatic
/// decisions and has no address); each query adds its conditions with `AND`, or orders.
macro_rules! user_select {
    () => {
        "SELECT id, email, roles, password_hash, disabled_at, totp_secret, totp_sealed, totp_key_id,
                totp_enabled_at FROM users WHERE kind = 'person' "
    };
}

/// The kinds of mail whose parts carry a secret: the response mail (typed keys and the
/// signed file) and the one-time code mail (`MailKind::Approval`, `MailKind::AccessCode`),
/// and the last mail to an erased customer (`MailKind::ErasureConfirmed`). Their text, HTML
/// and attachment are kept only while they wait to be sent: emptied once delivered or
/// dead.
macro_rules! secret_mail_kinds {
    () => {
        "('approval', 'access_code', 'erasure_confirmed')"
    };
}

/// The kind of mail whose address, too, goes once delivered or dead: the last mail to
/// an erased customer (`MailKind::ErasureConfirmed`) must not leave their address behind.
macro_rules! addressed_once_kinds {
    () => {
        "('erasure_confirmed')"
    };
}

mod audit;
mod customer;
mod database;
mod decisions;
mod evidence;
mod fast_tracks;
mod group_commit;
mod history;
mod installers;
mod intake;
mod keys;
mod mail;
mod outbox;
mod reasons;
mod retention;
mod sign_in;
pub(super) mod tickets;
mod users;

use std::sync::Arc;

use sqlx::{Database, Decode, Encode, Executor, Pool, Transaction, Type};

use super::dialect::Dialect;
use super::write_lane::WriteLane;
use super::{StoreError, StoreResult, TicketEventKind, TicketId, UserId};
use crate::domain::Timestamp;

/// A type the store binds as a parameter and reads back from a column.
pub trait Value<'q, D: Database>: Encode<'q, D> + Decode<'q, D> + Type<D> {}

impl<'q, D: Database, T: Encode<'q, D> + Decode<'q, D> + Type<D>> Value<'q, D> for T {}

/// A type the store binds as a parameter only (borrowed text and bytes).
pub trait Param<'q, D: Database>: Encode<'q, D> + Type<D> {}

impl<'q, D: Database, T: Encode<'q, D> + Type<D>> Param<'q, D> for T {}

/// The store on one SQL database.
pub struct SqlStore<D: Dialect> {
    /// Where reads run. On SQLite, WAL lets them run beside the writer.
    pub(super) pool: Pool<D>,
    /// Where writes run: on SQLite its one writing connection, so writers queue in the
    /// pool, first come first served; on PostgreSQL the same pool as reads.
    writer: Pool<D>,
    /// Where the write transactions of every public upload run (`write_lane.rs`).
    lane: Arc<WriteLane>,
    /// On SQLite, where those transactions queue to be committed together
    /// (`group_commit.rs`); on PostgreSQL each commits alone.
    batches: Option<group_commit::Queue<D>>,
}

/// The pools and the lane are shared: a copy is what a transaction on the lane holds.
impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            lane: Arc::clone(&self.lane),
            batches: self.batches.clone(),
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    pub(super) fn new(pool: Pool<D>, writer: Pool<D>) -> StoreResult<Self>
    where
        for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    {
        let lane = WriteLane::start()?;
        let batches = D::GROUP_COMMIT.then(|| group_commit::start(&lane, writer.clone()));
        Ok(Self {
            pool,
            writer,
            lane: Arc::new(lane),
            batches,
        })
    }

    /// Where a write outside a transaction runs.
    pub(super) fn writer(&self) -> &Pool<D> {
        &self.writer
    }

    /// A transaction that will write (see [`Dialect::begin_write`]).
    async fn write(&self) -> StoreResult<Transaction<'static, D>> {
        D::begin_write(&self.writer).await.map_err(db)
    }
}

fn db(error: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(error)
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Text a person typed into a filter, without control characters.
fn without_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// An agent's step on a ticket, as the history and the audit log record it.
struct Step<'a> {
    ticket_id: TicketId,
    by: UserId,
    at: Timestamp,
    event: TicketEventKind,
    action: &'static str,
    detail: &'a str,
}

#[cfg(test)]
mod tests {
    use crate::store::MailKind;

    /// The SQL spells the secret kinds itself; they must stay the enum's names.
    #[test]
    fn secret_mail_kinds_are_the_enums_names() {
        assert_eq!(
            secret_mail_kinds!(),
            format!(
                "('{}', '{}', '{}')",
                MailKind::Approval.as_str(),
                MailKind::AccessCode.as_str(),
                MailKind::ErasureConfirmed.as_str()
            )
        );
        assert_eq!(
            addressed_once_kinds!(),
            format!("('{}')", MailKind::ErasureConfirmed.as_str())
        );
    }
}
