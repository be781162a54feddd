//! The store, written once for SQLite and PostgreSQL: `SqlStore<D>` runs the SQL both
//! databases speak and asks its [`Dialect`] for what differs. The `Store` methods live with
//! their aggregate, one file each, in the order a ticket lives: `tickets` (from a
//! submission to the queue and the claim), `decisions`, `customer`, `outbox`; beside them
//! `history` and `audit` (what every change records), `users` and `sign_in`, `keys`,
//! `reasons`, `intake` and `database`.
//!
//! Every aggregate's `impl` block repeats the same `where` clause: what sqlx must be able
//! to do on `D` for the shared code (run a statement on a connection, bind and read the
//! store's value types, read a row's columns by position and by name). Rust takes such
//! bounds for granted only when they bound `D` itself or its associated types (those sit
//! on [`Dialect`] and are written once there); a bound on a foreign type such as
//! `i64: Encode<D>` has to be repeated wherever generic code needs it (rust-lang/rust#20671).
//! The list is short and the same everywhere; `Value` and `Param` name its parts.

/// The queue row's columns; a macro so each query can `concat!` its own filter.
macro_rules! summary_select {
    () => {
        "SELECT t.id, t.number, t.status, t.created_at,
                (SELECT COUNT(*) FROM ticket_devices c WHERE c.ticket_id = t.id) AS device_count,
                d0.model AS first_model, d0.serial AS first_serial, t.customer_email,
                u.email AS claimed_by, t.flags
         FROM tickets t
         JOIN ticket_devices d0 ON d0.ticket_id = t.id AND d0.position = 0
         LEFT JOIN users u ON u.id = t.claimed_by "
    };
}

/// Loads users; each query adds its own `WHERE`.
macro_rules! user_select {
    () => {
        "SELECT id, email, roles, password_hash, disabled_at, totp_secret, totp_sealed, totp_key_id,
                totp_enabled_at FROM users "
    };
}

/// The kinds of mail whose parts carry a secret: the response mail (typed keys and the
/// signed file) and the one-time code mail (`mail::compose::kind`). Their text, HTML
/// and attachment are kept only while they wait to be sent: emptied once delivered or
/// dead.
macro_rules! secret_mail_kinds {
    () => {
        "('approval', 'access_code')"
    };
}

mod audit;
mod customer;
mod database;
mod decisions;
mod history;
mod intake;
mod keys;
mod outbox;
mod reasons;
mod sign_in;
pub(super) mod tickets;
mod users;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, Pool, Transaction, Type};

use super::dialect::Dialect;
use super::{
    AddressChange, AddressChangeOutcome, ApiTokenInfo, Approval, CodeCheck, CreateOutcome,
    FirstApproval, Grant, IntakeHit, IntakeReservation, KeyKind, KeyRecordStatus, LoginAttempt,
    LoginAttemptId, LoginLimits, LoginReservation, NewAccessCode, NewApiToken, NewMail, NewSession,
    NewTicket, OutboxMessage, QueueFilter, RegisteredKey, ResentApproval, SessionStage, Store,
    StoreError, StoreResult, StoredSeed, TicketDetail, TicketSummary, TokenScope, User, UserId,
};
use crate::audit::chain::AuditEntry;
use crate::crypto::{SealKeyId, SealedSecret};
use crate::domain::{EmailAddress, Roles, TicketNumber, Timestamp};
use crate::protocol::DeviceChallenge;

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
}

impl<D: Dialect> SqlStore<D> {
    pub(super) fn new(pool: Pool<D>, writer: Pool<D>) -> Self {
        Self { pool, writer }
    }

    /// Where a write outside a transaction runs.
    fn writer(&self) -> &Pool<D> {
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
    ticket_id: i64,
    by: UserId,
    at: Timestamp,
    event: &'static str,
    action: &'static str,
    detail: &'a str,
}

/// Each method runs the method of the same name in its aggregate's file (an inherent
/// method, which Rust picks before the trait's).
#[async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> bool: Value<'q, D>,
    for<'q> Vec<u8>: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    for<'q> &'q [u8]: Param<'q, D>,
    for<'q> Option<i64>: Param<'q, D>,
    for<'q> Option<String>: Param<'q, D>,
    for<'q> Option<&'q str>: Param<'q, D>,
    for<'q> Option<&'q [u8]>: Param<'q, D>,
    usize: ColumnIndex<D::Row>,
    for<'r> &'r str: ColumnIndex<D::Row>,
{
    async fn migrate(&self) -> StoreResult<()> {
        self.migrate().await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.ping().await
    }

    async fn migrations_applied(&self) -> StoreResult<bool> {
        self.migrations_applied().await
    }

    async fn queue_stats(&self) -> StoreResult<(i64, Option<Timestamp>)> {
        self.queue_stats().await
    }

    async fn holds_tickets(&self) -> StoreResult<bool> {
        self.holds_tickets().await
    }

    async fn registered_keys(&self) -> StoreResult<Vec<RegisteredKey>> {
        self.registered_keys().await
    }

    async fn register_key(&self, kind: KeyKind, key_id: &str, now: Timestamp) -> StoreResult<()> {
        self.register_key(kind, key_id, now).await
    }

    async fn retire_key(&self, key_id: &str, actor: &str, now: Timestamp) -> StoreResult<()> {
        self.retire_key(key_id, actor, now).await
    }

    async fn key_status(&self, key_id: &str) -> StoreResult<Option<KeyRecordStatus>> {
        self.key_status(key_id).await
    }

    async fn create_user(
        &self,
        email: &EmailAddress,
        password_hash: &str,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<UserId> {
        self.create_user(email, password_hash, roles, actor, now)
            .await
    }

    async fn user_by_email(&self, email: &EmailAddress) -> StoreResult<User> {
        self.user_by_email(email).await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.users().await
    }

    async fn set_roles(
        &self,
        user: UserId,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.set_roles(user, roles, actor, now).await
    }

    async fn set_disabled(
        &self,
        user: UserId,
        disabled: bool,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.set_disabled(user, disabled, actor, now).await
    }

    async fn set_password(
        &self,
        user: UserId,
        password_hash: &str,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.set_password(user, password_hash, actor, now).await
    }

    async fn grants_since(&self, since: Timestamp) -> StoreResult<Vec<Grant>> {
        self.grants_since(since).await
    }

    async fn revoke_sessions(&self, user: UserId, actor: &str, now: Timestamp) -> StoreResult<()> {
        self.revoke_sessions(user, actor, now).await
    }

    async fn create_api_token(&self, token: &NewApiToken<'_>) -> StoreResult<()> {
        self.create_api_token(token).await
    }

    async fn user_by_api_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<(User, TokenScope)> {
        self.user_by_api_token(token_hash, now).await
    }

    async fn api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiTokenInfo>> {
        self.api_tokens(user).await
    }

    async fn revoke_api_token(
        &self,
        user: UserId,
        token_id: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.revoke_api_token(user, token_id, now).await
    }

    async fn create_ticket(
        &self,
        ticket: &NewTicket,
        acknowledgment: &NewMail,
    ) -> StoreResult<CreateOutcome> {
        self.create_ticket(ticket, acknowledgment).await
    }

    async fn ticket_of_challenge(
        &self,
        device: &DeviceChallenge,
    ) -> StoreResult<Option<TicketNumber>> {
        self.ticket_of_challenge(device).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        self.take_lease(name, holder, now, until).await
    }

    async fn blobs_referenced(&self, names: &[String]) -> StoreResult<Vec<String>> {
        self.blobs_referenced(names).await
    }

    async fn label_blob_of(&self, ticket_id: i64) -> StoreResult<String> {
        self.label_blob_of(ticket_id).await
    }

    async fn tickets(&self, filter: &QueueFilter) -> StoreResult<Vec<TicketSummary>> {
        self.tickets(filter).await
    }

    async fn ticket(&self, number: &TicketNumber) -> StoreResult<TicketDetail> {
        self.ticket(number).await
    }

    async fn claim(
        &self,
        ticket_id: i64,
        user: UserId,
        take_over: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.claim(ticket_id, user, take_over, now).await
    }

    async fn approve(&self, approval: &Approval) -> StoreResult<()> {
        self.approve(approval).await
    }

    async fn add_first_approval(&self, approval: &FirstApproval) -> StoreResult<()> {
        self.add_first_approval(approval).await
    }

    async fn record_refused_approval(
        &self,
        ticket_id: i64,
        by: UserId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.record_refused_approval(ticket_id, by, reason, now)
            .await
    }

    async fn approved_for_customer_since(
        &self,
        serial: &str,
        customer: &EmailAddress,
        since: Timestamp,
    ) -> StoreResult<Option<TicketNumber>> {
        self.approved_for_customer_since(serial, customer, since)
            .await
    }

    async fn serial_exported_in_v2(&self, serial: &str) -> StoreResult<bool> {
        self.serial_exported_in_v2(serial).await
    }

    async fn exporters_of_serial_since(
        &self,
        serial: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<String>> {
        self.exporters_of_serial_since(serial, since).await
    }

    async fn reject(
        &self,
        ticket_id: i64,
        by: UserId,
        reason: &str,
        mail: &NewMail,
        evidence_version: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.reject(ticket_id, by, reason, mail, evidence_version, now)
            .await
    }

    async fn request_photo(
        &self,
        ticket_id: i64,
        by: UserId,
        note: &str,
        mail: &NewMail,
        evidence_version: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.request_photo(ticket_id, by, note, mail, evidence_version, now)
            .await
    }

    async fn replace_label_photo(
        &self,
        ticket_id: i64,
        blob: &str,
        media_type: &str,
        now: Timestamp,
    ) -> StoreResult<String> {
        self.replace_label_photo(ticket_id, blob, media_type, now)
            .await
    }

    async fn retry_mail(
        &self,
        ticket_id: i64,
        mail_id: i64,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.retry_mail(ticket_id, mail_id, by, now).await
    }

    async fn resend_approval(&self, resend: &ResentApproval) -> StoreResult<()> {
        self.resend_approval(resend).await
    }

    async fn issue_access_code(&self, code: &NewAccessCode, max_per_hour: i64) -> StoreResult<()> {
        self.issue_access_code(code, max_per_hour).await
    }

    async fn redeem_access_code(
        &self,
        ticket_id: i64,
        code_hash: &str,
        now: Timestamp,
        max_attempts: i64,
    ) -> StoreResult<CodeCheck> {
        self.redeem_access_code(ticket_id, code_hash, now, max_attempts)
            .await
    }

    async fn record_feedback(
        &self,
        ticket_id: i64,
        detail: &str,
        max_per_ticket: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.record_feedback(ticket_id, detail, max_per_ticket, now)
            .await
    }

    async fn resend_status_link(
        &self,
        ticket_id: i64,
        other: &EmailAddress,
        mail: &NewMail,
        now: Timestamp,
        interval_secs: i64,
    ) -> StoreResult<bool> {
        self.resend_status_link(ticket_id, other, mail, now, interval_secs)
            .await
    }

    async fn change_customer_email(
        &self,
        change: &AddressChange,
    ) -> StoreResult<AddressChangeOutcome> {
        self.change_customer_email(change).await
    }

    async fn canned_reasons(&self) -> StoreResult<Vec<(i64, String)>> {
        self.canned_reasons().await
    }

    async fn add_canned_reason(&self, text: &str, by: UserId, now: Timestamp) -> StoreResult<()> {
        self.add_canned_reason(text, by, now).await
    }

    async fn remove_canned_reason(&self, id: i64, by: UserId, now: Timestamp) -> StoreResult<()> {
        self.remove_canned_reason(id, by, now).await
    }

    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        self.create_session(session).await
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle_secs: i64,
    ) -> StoreResult<(User, String, SessionStage)> {
        self.session(token_hash, now, idle_secs).await
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        self.delete_session(token_hash).await
    }

    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt<'_>,
        limits: &LoginLimits,
    ) -> StoreResult<LoginReservation> {
        self.reserve_login_attempt(attempt, limits).await
    }

    async fn release_login_attempt(&self, id: LoginAttemptId) -> StoreResult<()> {
        self.release_login_attempt(id).await
    }

    async fn clear_login_failures(&self, account: &str, device: Option<&str>) -> StoreResult<()> {
        self.clear_login_failures(account, device).await
    }

    async fn reserve_intake(
        &self,
        hits: &[IntakeHit<'_>],
        at: Timestamp,
        window_secs: i64,
    ) -> StoreResult<IntakeReservation> {
        self.reserve_intake(hits, at, window_secs).await
    }

    async fn begin_totp_enrolment(&self, user: UserId, seed: &SealedSecret) -> StoreResult<()> {
        self.begin_totp_enrolment(user, seed).await
    }

    async fn totp_seeds_to_seal(
        &self,
        current: &SealKeyId,
    ) -> StoreResult<Vec<(UserId, StoredSeed)>> {
        self.totp_seeds_to_seal(current).await
    }

    async fn reseal_totp_seed(
        &self,
        user: UserId,
        old: &StoredSeed,
        sealed: &SealedSecret,
    ) -> StoreResult<bool> {
        self.reseal_totp_seed(user, old, sealed).await
    }

    async fn confirm_totp_enrolment(
        &self,
        user: UserId,
        step: i64,
        recovery_hashes: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        self.confirm_totp_enrolment(user, step, recovery_hashes, now)
            .await
    }

    async fn accept_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool> {
        self.accept_totp_step(user, step).await
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.use_recovery_code(user, code_hash, now).await
    }

    async fn audit(
        &self,
        at: Timestamp,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> StoreResult<()> {
        self.audit(at, actor, action, detail).await
    }

    async fn recent_audit(
        &self,
        actor: Option<&str>,
        action: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.recent_audit(actor, action, limit).await
    }

    async fn audit_entries(
        &self,
        after_id: i64,
        since: Option<Timestamp>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.audit_entries(after_id, since, limit).await
    }

    async fn claim_due_mail(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        self.claim_due_mail(now, lease_secs, limit).await
    }

    async fn mark_mails_sent(&self, ids: &[i64], now: Timestamp) -> StoreResult<()> {
        self.mark_mails_sent(ids, now).await
    }

    async fn mark_mail_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> StoreResult<()> {
        self.mark_mail_failed(id, error, retry_at).await
    }

    async fn mail_counts(&self) -> StoreResult<(i64, i64, i64)> {
        self.mail_counts().await
    }
}
