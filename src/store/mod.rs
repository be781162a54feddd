//! Storage behind one interface. `Store` is what the rest of the desk calls; each
//! backend implements it, and `conformance` (run against every backend) proves they
//! behave the same. SQL checking strategy: `query_as` + `FromRow` rows shared between
//! backends (`rows`), with the conformance suite proving the SQL, because compile-time
//! `query!` checking needs one database per crate and would split the store in two.
//!
//! Every method that changes state does so in one transaction, including the outbox
//! message and audit entry that go with the change.

mod conflict;
mod dialect;
mod key_registry;
mod rows;
#[macro_use]
mod sql;
pub(crate) mod postgres;
pub(crate) mod sqlite;
mod write_lane;

#[cfg(test)]
mod conformance;

use async_trait::async_trait;

pub use key_registry::{KeyKind, KeyRecordStatus, RegisteredKey};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::audit::chain::AuditEntry;
use crate::crypto::{KeyId, SealError, SealKeyId, SealKeys, SealedSecret, Signature};
use crate::domain::{
    CannedKind, CannedText, CannedWords, CountryCode, CustomerRole, EmailAddress, FastTrack,
    PhoneNumber, PlainText, Role, Roles, SearchText, Secret, TicketNumber, TicketStatus, Timestamp,
};
use crate::i18n::Lang;
use crate::protocol::{DeviceChallenge, ExportId, Nonce, SignedResponse};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The change contradicts what is stored; the variant says how, and its `Display`
    /// (`store/conflict.rs`) words it for people.
    #[error("{0}")]
    Conflict(Conflict),
    /// A ticket still in review already holds a newer export from one of the devices.
    #[error(
        "ticket {ticket} already holds a newer export from device {serial}; this export is out of date"
    )]
    NewerExport { ticket: String, serial: String },
    /// The ticket's evidence (label photo, export) is no longer the version the decision
    /// was made on: the customer sent a new photo since the agent opened the ticket.
    #[error("the ticket changed since you opened it")]
    EvidenceChanged,
    /// Another console user holds the ticket's claim.
    #[error("the ticket is already claimed by {0}")]
    ClaimedBy(String),
    /// Another new label photo for the same ticket was stored a moment before this one:
    /// that one counts, this one was not kept.
    #[error("another new photo for this ticket arrived at the same time and was kept")]
    PhotoCrossed,
    /// The database cannot be reached right now (connection refused or lost, pool
    /// exhausted, server shutting down): worth trying again, unlike `Other`.
    #[error("the database cannot be reached")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the database failed")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a change was refused: the facts, for the caller to branch on and for the error
/// layer to put into words. No variant carries a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The database URL names no backend this desk has.
    UnsupportedScheme {
        scheme: String,
    },
    /// Two identical submissions raced at the unique index on the challenge; the other
    /// one holds the ticket.
    SameChallenge,
    /// The deciding user already gave this ticket one of its two approvals.
    AlreadyApproved,
    /// Someone decided the ticket first.
    AlreadyDecided {
        status: String,
        by: String,
    },
    /// The ticket left the queue without a recorded decider.
    NotOpen {
        status: String,
    },
    /// The customer's address changed after the agent opened the ticket.
    AddressChanged,
    /// Another approval landed between reading the ticket and approving it.
    ApprovalRaced,
    EmailTaken {
        email: EmailAddress,
    },
    /// A new label photo for a ticket that is not waiting for one.
    NotAwaitingPhoto,
    /// `recent` codes were issued for the ticket within the hour.
    TooManyCodes {
        recent: i64,
    },
    /// The customer already gave `earlier` answers for the ticket.
    TooManyAnswers {
        earlier: i64,
    },
    /// A retry asked for a message that is not dead.
    MailNotRetryable,
    /// A re-signed resend asked for a message that is not a dead response mail.
    ResponseMailNotRetryable,
    /// A re-signed resend named a device the ticket holds no response for.
    NoResponseToSign {
        serial: String,
    },
    CannedReasonExists,
    /// An automatic decision would be one more than `limit` in 24 hours for its address
    /// or installer (counted in its transaction, so replicas deciding at once cannot
    /// both take the last place).
    FastTrackLimit {
        limit: u32,
    },
    /// The ticket was not decided by the desk alone.
    NotAutomatic,
    /// The fast track was switched off, or the installer suspended, while the desk
    /// decided.
    FastTrackStopped,
    /// The automatic decision was already marked suspicious.
    AlreadySuspicious,
    /// Another handler finished this inbound e-mail first (this one's claim had lapsed).
    AlreadyHandled,
    /// An installer with this address is already registered.
    InstallerExists {
        email: String,
    },
    /// A TOTP confirmation with no enrolment pending.
    NoPendingSecondFactor,
}

/// Whether a database error means "not reachable now" rather than "this query failed".
fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-03 (the server is shutting
        // down or starting), 53300 (too many connections).
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl StoreError {
    /// A database error, sorted into "unreachable" or "failed".
    pub(crate) fn from_sqlx(error: sqlx::Error) -> Self {
        if is_unreachable(&error) {
            Self::Unavailable(Box::new(error))
        } else {
            Self::Other(Box::new(error))
        }
    }

    /// Whether `error` or one of its causes is an unreachable database.
    pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(Self::Unavailable(_)) = e.downcast_ref::<Self>() {
                return true;
            }
            current = e.source();
        }
        false
    }

    pub(crate) fn other(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Other(Box::new(error))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How many blob names one `blobs_referenced` query asks about: the sweeper checks a
/// million blobs in two thousand queries, not a million.
pub const BLOBS_PER_QUERY: usize = 500;

/// Picks the backend from the URL scheme.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::Conflict(Conflict::UnsupportedScheme {
            scheme: url.split(':').next().unwrap_or("").to_owned(),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);

/// A ticket's row id (`tickets.id`): internal, unlike its [`TicketNumber`], which the
/// customer sees. A type of its own so it cannot be passed where a mail's, a user's or
/// a reason's id is meant. Bound and read as the INTEGER it is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct TicketId(pub i64);

/// What reading a label photo found for one device of the export (issue 18).
pub use crate::domain::LabelFinding;

/// A label photo waiting to be read, leased to one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceJob {
    pub id: i64,
    pub ticket_id: TicketId,
    pub ticket: TicketNumber,
    /// The photo this job reads: the ticket's label photo when the job was made.
    pub label_blob: String,
    /// Leases taken so far, this one included: past [`MAX_EVIDENCE_ATTEMPTS`] the worker
    /// gives the job up without reading ([`EvidenceJob::exhausted`]).
    pub attempts: i64,
}

impl EvidenceJob {
    /// Leased more often than a reading may be tried: its workers stopped (a desk killed
    /// or restarted mid-read) this many times, so it is failed and left to an agent's eyes
    /// rather than read once more.
    pub fn exhausted(&self) -> bool {
        self.attempts > MAX_EVIDENCE_ATTEMPTS
    }
}

/// Leases in which a job may be read. A lease past them hands it to a worker that fails it
/// without reading ("left to an agent"), so it does not stay pending for ever: the photo
/// is read in a child process that cannot take its worker down, so what ends leases this
/// often is a desk stopped again and again mid-read.
pub const MAX_EVIDENCE_ATTEMPTS: i64 = 5;

/// A machine-readable code read on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCode {
    /// Its symbology, such as `qr`, `data_matrix`, `code_128`, `code_39`.
    pub format: String,
    pub text: String,
}

/// What a worker read off a job's photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceReading {
    pub job_id: i64,
    /// One finding per device of the export, by its serial.
    pub findings: Vec<(String, LabelFinding)>,
    /// Serials the label names that the export does not: each a risk flag, and the
    /// ticket then needs four eyes.
    pub other_serials: Vec<String>,
    pub codes: Vec<ReadCode>,
    /// The blobs of the photo's preview for the console and its thumbnail for the queue.
    pub preview: Option<Previews>,
    pub at: Timestamp,
}

/// A label photo's preview (longest side 1,600 px) and thumbnail, as blob names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previews {
    pub preview_blob: String,
    pub thumbnail_blob: String,
}

/// A job's photo that could not be read.
#[derive(Debug, Clone)]
pub struct EvidenceFailure {
    pub job_id: i64,
    /// Why, for agents and the audit log (never shown to customers as is).
    pub error: String,
    /// The customer's "we could not read your photo" mail, with the upload link: sent,
    /// and the ticket sent back for a new photo, only when `damaged` says the photo
    /// itself is at fault, and at most [`MAX_UNREADABLE_SEND_BACKS`] times a ticket.
    pub mail: NewMail,
    /// Whether the photo is damaged (its pixels cannot be decoded), rather than reading
    /// it gave up (it took too long, the decoder failed): a photo the desk could not read
    /// in time is left to an agent's eyes, not blamed on the customer.
    pub damaged: bool,
    pub at: Timestamp,
}

/// How a `photo_unreadable` event's detail starts when the desk sent the ticket back to
/// its customer for a new photo (the status page and the send-back count read it).
pub const SENT_BACK: &str = "sent back: ";

/// Times one ticket is sent back to its customer because a photo could not be decoded;
/// after that its photos are left to an agent. Each send-back mails the ticket's address,
/// which nobody verified: a ticket whose every photo is damaged must not become a way to
/// mail someone without end.
pub const MAX_UNREADABLE_SEND_BACKS: i64 = 2;

/// How finishing a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Recorded: the job's photo is the ticket's.
    Recorded,
    /// The ticket has another photo since: nothing recorded; its own job reads it.
    Superseded,
    /// Someone else finished the job already (a worker whose lease ran out): nothing
    /// recorded a second time.
    AlreadyFinished,
}

/// Where reading a ticket's label photo stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceState {
    Pending,
    Done,
    Failed,
}

impl EvidenceState {
    /// The state's name in the API's `evidence.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// What the machine read on a ticket's current label photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelEvidence {
    pub state: EvidenceState,
    pub findings: Vec<(String, LabelFinding)>,
    pub codes: Vec<ReadCode>,
    /// Serials the label names that the export does not, as read (the first five).
    pub other_serials: Vec<String>,
    /// Why reading failed, for agents (never shown to customers as is).
    pub error: Option<String>,
    /// The photo's preview and thumbnail, once read.
    pub previews: Option<Previews>,
}

/// A ticket's label check at a glance, for the queue: one word per row, where the
/// ticket page shows a finding per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelCheck {
    /// The current photo is not read yet.
    Pending,
    /// The current photo could not be decoded.
    Failed,
    /// Read: the finding that says most about the ticket (see [`LabelCheck::of`]).
    Read(LabelFinding),
}

impl LabelCheck {
    /// The ticket's check from its devices' findings. A label naming another device is
    /// said first (it is the four-eyes risk), then a label without codes (every device
    /// is then unreadable); a label naming one device of the export is a match, as an
    /// NVR's label leaves its cameras `not_on_label` by nature; otherwise not on it.
    pub fn of(findings: &[LabelFinding]) -> Self {
        let first = [
            LabelFinding::OtherSerial,
            LabelFinding::Unreadable,
            LabelFinding::Matches,
        ]
        .into_iter()
        .find(|kind| findings.contains(kind));
        Self::Read(first.unwrap_or(LabelFinding::NotOnLabel))
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub roles: Roles,
    pub password_hash: String,
    pub disabled: bool,
    /// The TOTP seed, once the second factor is enrolled.
    pub totp_secret: Option<StoredSeed>,
    /// A seed shown for enrolment but not yet confirmed with a code.
    pub totp_pending: Option<StoredSeed>,
}

/// A TOTP seed (base32) as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSeed {
    /// Sealed under one of the desk's seal keys (`crypto::SealKeys`).
    Sealed(SealedSecret),
    /// In clear, as written before seeds were sealed (migration 0008): the desk seals
    /// every such seed when it starts.
    Clear(Secret),
}

/// A signed response as the database keeps it: what the console and the status page
/// show in clear, and the signature sealed under the desk's seal keys. With the ticket's
/// devices a signature in clear rebuilds a response file the device accepts, so a copy of
/// the database must not hold one (issue 15: secrets at rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub export_id: Option<ExportId>,
    pub serial: crate::domain::DeviceSerial,
    pub nonce: Nonce,
    pub expires_at: Timestamp,
    pub key_id: KeyId,
    pub signature: StoredSignature,
}

/// A response's signature as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSignature {
    /// Sealed (`SealKeys::seal_response_signature`), bound to its challenge.
    Sealed(SealedSecret),
    /// In clear, as responses signed before sealing were written; their challenges have
    /// ended (48 hours at most) by the time anyone reads this.
    Clear(Signature),
}

impl StoredResponse {
    /// What the desk stores of a response it just signed.
    pub fn sealed(signed: &SignedResponse, keys: &SealKeys) -> Self {
        Self {
            export_id: signed.export_id,
            serial: signed.serial.clone(),
            nonce: signed.nonce,
            expires_at: signed.expires_at,
            key_id: signed.key_id.clone(),
            signature: StoredSignature::Sealed(keys.seal_response_signature(
                signed.serial.as_str(),
                &signed.nonce.0,
                &signed.signature.0,
            )),
        }
    }

    /// The signed response again, for the status page's file.
    pub fn open(&self, keys: &SealKeys) -> Result<SignedResponse, SealError> {
        let signature = match &self.signature {
            StoredSignature::Sealed(sealed) => Signature(keys.open_response_signature(
                self.serial.as_str(),
                &self.nonce.0,
                sealed,
            )?),
            StoredSignature::Clear(signature) => *signature,
        };
        Ok(SignedResponse {
            export_id: self.export_id,
            serial: self.serial.clone(),
            nonce: self.nonce,
            expires_at: self.expires_at,
            key_id: self.key_id.clone(),
            signature,
        })
    }
}

/// A sign-in attempt (a password, or a second-factor code), counted before it is checked.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// The account as typed, cleaned (`auth::throttle::account_key`).
    pub account: &'a str,
    /// The client's network: its IPv4 address, or the /64 of its IPv6 address.
    pub address: &'a str,
    /// The id of a valid device cookie for `account` that the browser presented: the
    /// attempt is then counted for that device cookie alone, so strangers' failures on
    /// the account or the address do not hold it back.
    pub device: Option<&'a str>,
    pub at: Timestamp,
}

/// How many attempts each bucket counts within `window_secs` before it refuses more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Per account, from browsers without a device cookie for it.
    pub per_account: i64,
    /// Per client network, from browsers without a device cookie for the account.
    pub per_address: i64,
    /// Per device cookie.
    pub per_device: i64,
    pub window_secs: i64,
}

/// A counted sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttemptId(pub i64);

/// What came of counting a sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginReservation {
    /// Counted, as a failure until it is released: the password or code may be checked.
    Counted(LoginAttemptId),
    /// A bucket the attempt counts in is full; `oldest` is its oldest attempt in the window.
    Refused { oldest: Option<Timestamp> },
}

/// A bucket public intake requests are counted in (`Store::reserve_intake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IntakeBucket {
    /// One client network: an IPv4 address, or the /64 of an IPv6 address.
    Address,
    /// One device serial, counted only for genuine exports.
    Serial,
}

impl IntakeBucket {
    /// The bucket's name in `intake_hits.kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Serial => "serial",
        }
    }
}

/// One bucket an intake request counts in, and how many requests it takes in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeHit<'a> {
    pub bucket: IntakeBucket,
    pub key: &'a str,
    pub limit: i64,
}

/// What came of counting an intake request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeReservation {
    /// Counted in every bucket.
    Counted,
    /// The bucket keyed `key` is full, and nothing was counted; `oldest` is its oldest
    /// request in the window.
    Refused {
        key: String,
        oldest: Option<Timestamp>,
    },
}

/// How far a sign-in has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    /// The password was right; the TOTP code (or a recovery code) is next.
    SecondFactor,
    /// The password was right; the user must enrol a second factor first.
    Enrol,
    /// Fully signed in.
    Full,
}

impl SessionStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecondFactor => "second_factor",
            Self::Enrol => "enrol",
            Self::Full => "full",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::SecondFactor, Self::Enrol, Self::Full]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// List and read tickets.
    Read,
    /// Also claim, approve and reject.
    Decide,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Decide => "decide",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Read, Self::Decide]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// An API token as its owner sees it in the list (never the token itself).
#[derive(Debug, Clone)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
    /// When a request last came with it, to the minute ([`TOKEN_USE_RESOLUTION_SECS`]);
    /// `None`: never.
    pub last_used_at: Option<Timestamp>,
}

/// How precisely a token's last use is kept: a use within this long of the recorded
/// one is not written again.
pub const TOKEN_USE_RESOLUTION_SECS: i64 = 60;

/// A new API token to store.
#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub user: UserId,
    pub token_hash: &'a str,
    pub name: &'a str,
    pub scope: TokenScope,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// What an admin gave a console user (`user_grants`, migration 0009).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// The account itself, with its first roles.
    Created,
    /// Roles added to an existing account.
    Roles,
    /// A new password.
    Password,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Roles => "roles",
            Self::Password => "password",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Created, Self::Roles, Self::Password]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// A grant one console user made to another. Grants made from the command line have
/// no giver among the users and are not listed as these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: UserId,
    pub user_email: String,
    pub kind: GrantKind,
    /// The roles given: all of them for `Created`, the added ones for `Roles`.
    pub roles: Option<Roles>,
    pub by: UserId,
    pub by_email: String,
    pub at: Timestamp,
}

/// How the customer sent the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportForm {
    Xml,
    ResetString,
    Qr,
}

impl ExportForm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xml => "xml",
            Self::ResetString => "reset_string",
            Self::Qr => "qr",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Xml, Self::ResetString, Self::Qr]
            .into_iter()
            .find(|f| f.as_str() == raw)
    }
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub name: PlainText,
    pub email: EmailAddress,
    pub phone: Option<PhoneNumber>,
    pub company: Option<PlainText>,
    pub country: CountryCode,
    pub role: CustomerRole,
    pub purchase_channel: Option<PlainText>,
    /// The desk writes to the customer in this language.
    pub language: Lang,
}

/// The kinds of message, as the outbox's `kind` column names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Acknowledgment,
    /// The response: typed keys and the signed file. Its parts are emptied once it is
    /// delivered or dead (`store::sql::outbox`), so a dead one is signed again to retry it.
    Approval,
    Rejection,
    PhotoRequest,
    /// A one-time code: emptied once delivered or dead; never sent twice.
    AccessCode,
    /// The status link again, to the ticket's own address, when someone else sent its
    /// export.
    LinkResent,
    /// The notice to the old address that an agent changed the ticket's address.
    AddressChanged,
    /// The supervisors' daily list of tickets waiting for a second approval.
    SecondApprovalDigest,
    /// To each supervisor: an agent marked one of the desk's automatic decisions
    /// suspicious.
    SuspiciousDecision,
    /// The desk's answer to an e-mail it could not make a request of: what to fix.
    MailAnswer,
    /// An agent's own words to the customer, from the ticket page.
    AgentMessage,
    /// The last mail to an erased customer: their data is gone. Its text and its
    /// address are emptied once it is delivered or dead.
    ErasureConfirmed,
}

impl MailKind {
    /// The kind's name in `outbox.kind`; `secret_mail_kinds!` (store/sql/mod.rs) spells
    /// `Approval` and `AccessCode` in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledgment => "acknowledgment",
            Self::Approval => "approval",
            Self::Rejection => "rejection",
            Self::PhotoRequest => "photo_request",
            Self::AccessCode => "access_code",
            Self::LinkResent => "link_resent",
            Self::AddressChanged => "address_changed",
            Self::SecondApprovalDigest => "second_approval_digest",
            Self::SuspiciousDecision => "suspicious_decision",
            Self::MailAnswer => "mail_answer",
            Self::AgentMessage => "agent_message",
            Self::ErasureConfirmed => "erasure_confirmed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Acknowledgment,
            Self::Approval,
            Self::Rejection,
            Self::PhotoRequest,
            Self::AccessCode,
            Self::LinkResent,
            Self::AddressChanged,
            Self::SecondApprovalDigest,
            Self::SuspiciousDecision,
            Self::MailAnswer,
            Self::AgentMessage,
            Self::ErasureConfirmed,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }
}

/// Where an outbox message stands (`outbox.status`, checked by the table: migration 0001).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Waiting for its next attempt, or leased by a worker.
    Pending,
    /// Accepted by the relay.
    Sent,
    /// Out of attempts; an agent may retry it.
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Sent, Self::Dead]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// An agent's decision that answers the customer with a mail and needs no signature: a
/// rejection or a request for a new photo.
#[derive(Debug, Clone, Copy)]
pub struct MailedDecision<'a> {
    pub ticket_id: TicketId,
    pub by: UserId,
    /// The reason or the note, as the customer reads it.
    pub text: &'a str,
    pub mail: &'a NewMail,
    /// The evidence version the agent decided on: a decision on older evidence is refused.
    pub evidence_version: i64,
    pub at: Timestamp,
}

/// A mail to send, rendered and ready.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub message_id: String,
    pub kind: MailKind,
    pub recipient: EmailAddress,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attachment: Option<Attachment>,
    /// The customer's e-mail this one answers (In-Reply-To and References). Left `None`,
    /// a ticket's mail answers the customer's latest e-mail to the ticket, if any.
    pub in_reply_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub file_name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Where a ticket's export, as the customer sent it, is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredExport {
    /// In the ticket's row, committed with it: an XML file (at most 256 KiB) or a reset
    /// string, since migration 0018.
    InRow(Vec<u8>),
    /// In the blob of this name: a picture of a QR code (up to `max_export_bytes`, a
    /// phone photo of megabytes, which has no place in a row), and every export of a
    /// ticket made before migration 0018.
    Blob(String),
    /// Deleted by data retention at this time (issue 23).
    Removed(Timestamp),
}

impl StoredExport {
    /// The blob's name, when the export is kept in one.
    pub fn blob(&self) -> Option<&str> {
        match self {
            Self::Blob(name) => Some(name),
            Self::InRow(_) | Self::Removed(_) => None,
        }
    }
}

/// A verified submission, ready to store.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub number: TicketNumber,
    pub customer: Customer,
    pub export_form: ExportForm,
    pub export: StoredExport,
    pub label_blob: String,
    pub label_media_type: String,
    pub devices: Vec<DeviceChallenge>,
    pub flags: Vec<String>,
    /// The same customer's approved ticket for the same device, within
    /// `customer::SHORTENED_REVIEW_WINDOW_DAYS`: the agent reviews this one beside it.
    pub repeat_of: Option<TicketNumber>,
    /// The registered installer whose token sent the request.
    pub installer: Option<InstallerId>,
    /// The e-mail the request came in, if it came by e-mail: it joins the ticket's
    /// conversation in the ticket's transaction, and the desk's mails thread under it.
    pub by_mail: Option<MailOrigin>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new ticket; `superseded` lists older open tickets it replaced.
    Created {
        number: TicketNumber,
        superseded: Vec<TicketNumber>,
    },
    /// The same challenge was submitted before: this is its ticket.
    Existing { number: TicketNumber },
}

/// A queue row.
#[derive(Debug, Clone)]
pub struct TicketSummary {
    /// The row id: internal, for paging only.
    pub id: TicketId,
    pub number: TicketNumber,
    pub status: TicketStatus,
    pub created_at: Timestamp,
    pub device_count: i64,
    pub first_model: String,
    pub first_serial: String,
    /// When the first of the export's challenges dies (`CHALLENGE_LIFETIME_SECS` after
    /// the devices made them): the customer must export again after that.
    pub export_expires_at: Timestamp,
    pub customer_name: String,
    pub customer_email: String,
    pub claimed_by: Option<String>,
    /// Why the ticket needs four eyes; empty when no risk rule fired.
    pub flags: Vec<String>,
}

/// What a queue row shows beside a ticket's summary, read for a page's tickets at once
/// ([`TicketStore::queue_marks`]) rather than for every row a search or a sort visits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueMarks {
    /// Approvals given so far (a flagged ticket needs two).
    pub approvals: i64,
    /// The customer said a response did not work.
    pub customer_reported_failure: bool,
    /// The customer wrote (on the status page or by e-mail), and no console user has done
    /// anything with the ticket since (the desk's workers and mail do not count).
    pub customer_wrote: bool,
}

#[derive(Debug, Clone)]
pub struct TicketEvent {
    pub at: Timestamp,
    pub actor: String,
    pub kind: TicketEventKind,
    pub detail: String,
}

/// What happened to a ticket, as its history (`ticket_events.kind`) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketEventKind {
    Submitted,
    /// This ticket replaced older open tickets for the same devices.
    Supersedes,
    /// A newer ticket for the same devices replaced this one.
    Superseded,
    Claimed,
    /// The first of the two approvals a flagged ticket needs.
    ApprovedFirst,
    Approved,
    ApprovalRefused,
    Rejected,
    PhotoRequested,
    PhotoReplaced,
    MailRetried,
    /// The relay accepted a mail of the ticket; the detail names its kind.
    MailSent,
    CodeSent,
    CodeLocked,
    ResponseShown,
    CustomerFeedback,
    LinkResent,
    ApprovalsWithdrawn,
    AddressCorrected,
    /// The evidence worker read the label photo; the detail says what it found.
    LabelRead,
    /// The evidence worker could not read the label photo: the customer is asked for
    /// another.
    PhotoUnreadable,
    /// Someone handed the ticket's claim to someone else; the detail names whom.
    Assigned,
    /// An agent's internal note (the detail): for the agents, never mailed or shown to
    /// the customer.
    Note,
    /// A message the customer wrote on the status page (the detail), for the agents.
    CustomerReply,
    /// A rejected ticket put back in the queue by the customer's reply.
    Reopened,
    /// An agent marked the desk's automatic decision suspicious; the detail says why.
    MarkedSuspicious,
    /// A fast track looked at the ticket and left it to agents; the detail says why.
    FastTrackDeclined,
    /// An agent's answer to the customer, mailed (the detail is its text).
    AgentMessage,
    /// Data retention deleted the ticket's label photo, previews and export.
    EvidenceRemoved,
    /// Data retention deleted the customer's name, phone and company.
    CustomerDetailsRemoved,
    /// The customer was erased on request: every personal field, file and text.
    CustomerErased,
    /// A reply naming the ticket from an address other than the customer's: kept for the
    /// agents, acting on nothing (the detail is the sender).
    StrangerMessage,
    /// A kind this build does not write: one an older build wrote (`mail_handed_off`,
    /// since renamed) or a newer replica writes during a rolling upgrade. The history
    /// is only shown, never decided on, so such a row is shown as stored rather than
    /// failing the ticket's page and API answer the way an unknown status would.
    Other(String),
}

impl TicketEventKind {
    const KNOWN: [Self; 32] = [
        Self::Submitted,
        Self::Supersedes,
        Self::Superseded,
        Self::Claimed,
        Self::ApprovedFirst,
        Self::Approved,
        Self::ApprovalRefused,
        Self::Rejected,
        Self::PhotoRequested,
        Self::PhotoReplaced,
        Self::MailRetried,
        Self::MailSent,
        Self::CodeSent,
        Self::CodeLocked,
        Self::ResponseShown,
        Self::CustomerFeedback,
        Self::LinkResent,
        Self::ApprovalsWithdrawn,
        Self::AddressCorrected,
        Self::LabelRead,
        Self::PhotoUnreadable,
        Self::Assigned,
        Self::Note,
        Self::CustomerReply,
        Self::Reopened,
        Self::MarkedSuspicious,
        Self::FastTrackDeclined,
        Self::AgentMessage,
        Self::StrangerMessage,
        Self::EvidenceRemoved,
        Self::CustomerDetailsRemoved,
        Self::CustomerErased,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Self::Submitted => "submitted",
            Self::Supersedes => "supersedes",
            Self::Superseded => "superseded",
            Self::Claimed => "claimed",
            Self::ApprovedFirst => "approved_first",
            Self::Approved => "approved",
            Self::ApprovalRefused => "approval_refused",
            Self::Rejected => "rejected",
            Self::PhotoRequested => "photo_requested",
            Self::PhotoReplaced => "photo_replaced",
            Self::MailRetried => "mail_retried",
            Self::MailSent => "mail_sent",
            Self::CodeSent => "code_sent",
            Self::CodeLocked => "code_locked",
            Self::ResponseShown => "response_shown",
            Self::CustomerFeedback => "customer_feedback",
            Self::LinkResent => "link_resent",
            Self::ApprovalsWithdrawn => "approvals_withdrawn",
            Self::AddressCorrected => "address_corrected",
            Self::LabelRead => "label_read",
            Self::PhotoUnreadable => "photo_unreadable",
            Self::Assigned => "assigned",
            Self::Note => "note",
            Self::CustomerReply => "customer_reply",
            Self::Reopened => "reopened",
            Self::MarkedSuspicious => "marked_suspicious",
            Self::FastTrackDeclined => "fast_track_declined",
            Self::AgentMessage => "agent_message",
            Self::StrangerMessage => "stranger_message",
            Self::EvidenceRemoved => "evidence_removed",
            Self::CustomerDetailsRemoved => "customer_details_removed",
            Self::CustomerErased => "customer_erased",
            Self::Other(raw) => raw,
        }
    }

    /// The kind a stored row names; never fails (see `Other`).
    pub fn parse(raw: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|k| k.as_str() == raw)
            .unwrap_or_else(|| Self::Other(raw.to_owned()))
    }
}

#[derive(Debug, Clone)]
pub struct MailStatus {
    pub id: i64,
    pub kind: MailKind,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

/// Everything about one ticket, for the agent's ticket page and the approval.
#[derive(Debug, Clone)]
pub struct TicketDetail {
    pub id: TicketId,
    pub summary: TicketSummary,
    pub customer: Customer,
    pub export_form: ExportForm,
    /// The blob holding the export, when it is not in the ticket's row
    /// (`TicketStore::ticket_export` reads it either way).
    pub export_blob: Option<String>,
    pub label_blob: String,
    pub label_media_type: String,
    /// Which version of the evidence (label photo, export, customer address) this is: it
    /// grows by one whenever the evidence changes, and a decision names the version it was
    /// made on.
    pub evidence_version: i64,
    pub devices: Vec<DeviceChallenge>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub superseded_by: Option<TicketNumber>,
    /// The earlier approved ticket this one repeats (see `NewTicket::repeat_of`).
    pub repeat_of: Option<TicketNumber>,
    /// The registered installer whose token sent the request.
    pub installer: Option<InstallerId>,
    pub responses: Vec<StoredResponse>,
    pub approvals: Vec<ApprovalRecord>,
    pub events: Vec<TicketEvent>,
    pub mails: Vec<MailStatus>,
    /// The conversation with the customer, oldest first.
    pub messages: Vec<TicketMessage>,
    /// When data retention deleted the label photo, its previews, the earlier photos and
    /// the export (`photo_retention_days` after the decision).
    pub evidence_removed_at: Option<Timestamp>,
    /// When data retention deleted the customer's name, phone and company
    /// (`customer_retention_days` after the decision; the name reads "—").
    pub customer_removed_at: Option<Timestamp>,
    /// When the customer was erased on request (`resetdesk customer erase`).
    pub erased_at: Option<Timestamp>,
}

/// Who wrote a message of a ticket's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuthor {
    /// The ticket's customer: by e-mail from the ticket's address, or on the status page.
    Customer,
    /// An e-mail that named the ticket without being proven the customer's: from
    /// another address, or from theirs without answering a mail the desk sent them (a
    /// From is easy to forge). Kept for the agents with a warning, acting on nothing.
    Stranger,
    /// An agent, answering the customer by e-mail.
    Agent,
}

impl MessageAuthor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Stranger => "stranger",
            Self::Agent => "agent",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Customer, Self::Stranger, Self::Agent]
            .into_iter()
            .find(|a| a.as_str() == raw)
    }

    /// `in` for what reached the desk, `out` for what it sent.
    pub fn direction(self) -> &'static str {
        match self {
            Self::Customer | Self::Stranger => "in",
            Self::Agent => "out",
        }
    }
}

/// A message of a ticket's conversation, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketMessage {
    pub author: MessageAuthor,
    /// The address it came from (as written) or, for an agent's answer, the agent's.
    pub sender: String,
    pub at: Timestamp,
    /// Plain text: an HTML mail is converted before it is stored, never kept as HTML.
    pub body: String,
}

/// A message joining a ticket's conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicketMessage {
    pub author: MessageAuthor,
    pub sender: String,
    pub body: String,
    /// The e-mail's Message-ID: a message is recorded once, whatever retries a crash
    /// causes. `None` for the status page's messages.
    pub message_id: Option<String>,
}

/// A file of an answered e-mail, kept for the customer's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    /// The form's field it fills (`label_photo`, `export_xml`, …).
    pub field: String,
    pub blob: String,
    pub bytes: u64,
}

/// The e-mail a ticket was made from: its first message, stored with the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailOrigin {
    pub message_id: String,
    pub sender: String,
    pub body: String,
}

/// What a claim on an inbound e-mail found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundClaim {
    /// The message is this caller's to handle, for the lease.
    Claimed,
    /// Handled already (by this desk or another replica): only its mailbox copy is left
    /// to move.
    Done { outcome: String },
    /// Another replica is handling it now.
    Busy,
}

/// What of a ticket's evidence someone looked at: the label photo (its blob) and the
/// version of the evidence, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    pub label_blob: String,
    pub evidence_version: i64,
    pub at: Timestamp,
}

/// What a customer's message did to its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Noted in the history (a ticket that waits).
    Noted,
    /// A rejected ticket is back in the queue for review.
    Reopened,
    /// Noted, but the rejected request cannot be answered any more (its export died, or
    /// a newer request for its device came in): the customer sends a new one.
    TooLateToReopen,
}

/// A label photo a newer one replaced, kept with its ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierPhoto {
    pub blob: String,
    pub media_type: String,
    pub replaced_at: Timestamp,
}

/// The order a page of tickets walks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueOrder {
    /// Oldest first: the API's order, and the console's for decided tickets.
    #[default]
    Age,
    /// The export that dies first, first (`tickets.export_expires_at`): how agents work
    /// one pending status. Applies to a list of one status without a search; others
    /// walk by age (`QueueFilter::order_applied`).
    Deadline,
    /// Newest first, by id (the order tickets came in, reversed): the order of a search's
    /// results. The cursor's id alone counts.
    Newest,
}

/// Where the next page starts: after the row with this sort key (the time the order
/// walks by: created, or the export's death) and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCursor {
    pub at: Timestamp,
    pub id: TicketId,
}

impl QueueCursor {
    /// The cursor after a page's last row, in the order the page walked.
    pub fn after(summary: &TicketSummary, order: QueueOrder) -> Self {
        Self {
            at: match order {
                QueueOrder::Age | QueueOrder::Newest => summary.created_at,
                QueueOrder::Deadline => summary.export_expires_at,
            },
            id: summary.id,
        }
    }

    /// As it travels in a link: `<unix seconds>.<id>`.
    pub fn to_param(self) -> String {
        format!("{}.{}", self.at.unix_seconds(), self.id.0)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (seconds, id) = raw.split_once('.')?;
        Some(Self {
            at: Timestamp::from_unix_seconds(seconds.parse().ok()?).ok()?,
            id: TicketId(id.parse().ok()?),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub status: Option<TicketStatus>,
    /// Part of a ticket number, a serial, a customer's name or e-mail.
    pub search: Option<SearchText>,
    /// Start after this row (keyset pagination), in [`Self::order_applied`].
    pub after: Option<QueueCursor>,
    pub limit: i64,
    /// The order asked for.
    pub order: QueueOrder,
    /// Only open tickets that hold one approval and wait for the second (`status` and
    /// `order` aside: in the order their exports die). A search ignores it.
    pub awaiting_second_approval: bool,
}

impl QueueFilter {
    /// The order the page walks: a search's results newest first (the order its index
    /// yields them in); by deadline only for one status (the index that serves it starts
    /// with the status); by age otherwise.
    pub fn order_applied(&self) -> QueueOrder {
        match (self.order, self.status, &self.search) {
            (_, _, Some(_)) => QueueOrder::Newest,
            _ if self.awaiting_second_approval => QueueOrder::Deadline,
            (QueueOrder::Deadline, Some(_), None) => QueueOrder::Deadline,
            _ => QueueOrder::Age,
        }
    }
}

/// What an approval writes, all in one transaction.
#[derive(Debug, Clone)]
pub struct Approval {
    pub ticket_id: TicketId,
    pub by: UserId,
    pub as_role: Role,
    pub note: String,
    pub at: Timestamp,
    /// How many approvals the decision was based on; another one arriving meanwhile
    /// makes this a conflict instead of a second signature.
    pub prior_approvals: usize,
    /// The version of the evidence the approver saw and the responses were signed from;
    /// another version stored meanwhile makes this `EvidenceChanged`.
    pub evidence_version: i64,
    pub responses: Vec<StoredResponse>,
    pub mail: NewMail,
}

/// A dead response mail sent again: the ticket's challenges signed anew (the same
/// challenges, still live) and the mail rendered from the new responses.
#[derive(Debug, Clone)]
pub struct ResentApproval {
    pub ticket_id: TicketId,
    /// The dead mail's row.
    pub mail_id: i64,
    pub by: UserId,
    pub at: Timestamp,
    pub responses: Vec<StoredResponse>,
    pub mail: NewMail,
}

/// The first of two approvals a flagged ticket needs: recorded, nothing signed.
#[derive(Debug, Clone)]
pub struct FirstApproval {
    pub ticket_id: TicketId,
    pub by: UserId,
    pub as_role: Role,
    pub note: String,
    pub at: Timestamp,
    /// The version of the evidence the approver saw (see `Approval::evidence_version`).
    pub evidence_version: i64,
}

/// An approval as the ticket page and the second approver see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub by: UserId,
    pub email: String,
    pub as_role: Role,
    pub note: String,
    pub at: Timestamp,
}

/// A console login.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user: UserId,
    pub csrf_token: String,
    pub stage: SessionStage,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A one-time code for the status page, with the mail that carries it to the customer.
#[derive(Debug, Clone)]
pub struct NewAccessCode {
    pub ticket_id: TicketId,
    /// The code's HMAC under the desk secret; the code itself is never stored.
    pub code_hash: String,
    pub expires_at: Timestamp,
    pub mail: NewMail,
    pub now: Timestamp,
}

/// What came of a code the customer typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code was right; it is used up.
    Accepted,
    /// Wrong; the code in force takes `attempts_left` more tries.
    Wrong { attempts_left: i64 },
    /// No code is in force: none was sent, it expired, was used, or took too many tries.
    NoLiveCode,
}

/// Who changes a ticket's customer address, and what comes with it.
#[derive(Debug, Clone)]
pub enum AddressChanger {
    /// The customer, from the browser that sent the request (`customer::address`): at
    /// most `max_changes` times a ticket, and never once anyone has approved it. `flags`
    /// are the rules that fire on the new address (watch list, staff, console users):
    /// they join the ticket's flags, as if the request had come from it.
    Customer {
        max_changes: i64,
        flags: Vec<String>,
    },
    /// An agent from the console. The change redirects the response, so earlier
    /// approvals are withdrawn and `flag` joins the ticket's flags: it is signed only
    /// after two approvals, as a flagged ticket is. `notice` tells the old address.
    Agent {
        by: UserId,
        flag: String,
        notice: Box<NewMail>,
    },
}

/// A new customer address for a pending ticket, with the acknowledgment (and its status
/// link) for the new address, all written in one transaction.
#[derive(Debug, Clone)]
pub struct AddressChange {
    pub ticket_id: TicketId,
    pub by: AddressChanger,
    /// The address the change was decided on: a ticket whose address changed meanwhile
    /// is left alone.
    pub from: EmailAddress,
    pub to: EmailAddress,
    pub acknowledgment: NewMail,
    pub at: Timestamp,
}

/// What came of an [`AddressChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChangeOutcome {
    /// Changed; this many approvals were withdrawn (an agent's change only).
    Changed { approvals_withdrawn: u64 },
    /// Refused to the customer: somebody has approved the ticket.
    Approved,
    /// The ticket is decided or replaced: no address is changed any more.
    NotPending,
    /// The ticket's address is no longer the one the change was decided on.
    ChangedMeanwhile,
    /// The customer has changed this ticket's address `max_changes` times already.
    TooMany,
}

/// A message claimed for sending.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub message_id: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attachment: Option<Attachment>,
    pub attempts: i64,
    /// The customer's e-mail it answers, for threading.
    pub in_reply_to: Option<String>,
    /// `None` for a kind a newer replica wrote.
    pub kind: Option<MailKind>,
}

/// The database itself: migrations, reachability and the gauges read off it.
/// Implemented once for both databases in `store/sql/database.rs`.
#[async_trait]
pub trait DatabaseStore: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Answers when the database is reachable.
    async fn ping(&self) -> StoreResult<()>;
    /// Whether every migration this build knows has been applied.
    async fn migrations_applied(&self) -> StoreResult<bool>;
    /// Open tickets and the creation time of the oldest, for the queue gauges.
    async fn queue_stats(&self) -> StoreResult<(i64, Option<Timestamp>)>;
    /// Whether the database holds any ticket: a desk that has served customers, whose
    /// keys must not be replaced by new ones.
    async fn holds_tickets(&self) -> StoreResult<bool>;
    /// Whether the database holds any console user (disabled ones too): a new desk has
    /// none, and its sign-in page and log say how to make the first.
    async fn holds_users(&self) -> StoreResult<bool>;
}

/// The key registry: which keys the replicas must hold, by id only.
/// Implemented once for both databases in `store/sql/keys.rs`.
#[async_trait]
pub trait KeyRegistryStore: Send + Sync + 'static {
    /// Every key the registry knows, oldest first.
    async fn registered_keys(&self) -> StoreResult<Vec<RegisteredKey>>;
    /// Records a key's id as current; nothing when it is recorded already, or when it is a
    /// master or desk secret and another one is (read the registry to tell).
    async fn register_key(&self, kind: KeyKind, key_id: &str, now: Timestamp) -> StoreResult<()>;
    /// Marks a signing key retired and audits it, in one transaction. `NotFound` when the
    /// registry does not know the key.
    async fn retire_key(&self, key_id: &str, actor: &str, now: Timestamp) -> StoreResult<()>;
    /// A key's status, read at signing time: `None` for a key the registry does not know.
    async fn key_status(&self, key_id: &str) -> StoreResult<Option<KeyRecordStatus>>;
}

/// Console users, their roles and grants, and their API tokens.
/// Implemented once for both databases in `store/sql/users.rs`.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates a user; `actor` is who did it, for the audit log and the user's grants:
    /// a console user's address (that user is recorded as the giver) or a name that is
    /// no address, such as `cli` (no giver).
    async fn create_user(
        &self,
        email: &EmailAddress,
        password_hash: &str,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<UserId>;
    async fn user_by_email(&self, email: &EmailAddress) -> StoreResult<User>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Replaces a user's roles; the roles added are a grant by `actor` (see `create_user`).
    async fn set_roles(
        &self,
        user: UserId,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Disables or enables a user. Disabling also ends the user's sessions and revokes
    /// the user's API tokens, so enabling the user again brings none of them back.
    async fn set_disabled(
        &self,
        user: UserId,
        disabled: bool,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Sets a new password, ends the user's sessions and revokes the user's API tokens;
    /// the password is a grant by `actor` (see `create_user`).
    async fn set_password(
        &self,
        user: UserId,
        password_hash: &str,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Grants console users made to each other at or after `since`, oldest first.
    async fn grants_since(&self, since: Timestamp) -> StoreResult<Vec<Grant>>;
    /// Ends every session of a user.
    async fn revoke_sessions(&self, user: UserId, actor: &str, now: Timestamp) -> StoreResult<()>;
    async fn create_api_token(&self, token: &NewApiToken<'_>) -> StoreResult<()>;
    /// The user a live token belongs to, with the token's scope.
    async fn user_by_api_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<(User, TokenScope)>;
    async fn api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiTokenInfo>>;
    async fn revoke_api_token(
        &self,
        user: UserId,
        token_id: i64,
        now: Timestamp,
    ) -> StoreResult<()>;
}

/// Signing in: sessions, the login throttle and second factors.
/// Implemented once for both databases in `store/sql/sign_in.rs`.
#[async_trait]
pub trait SignInStore: Send + Sync + 'static {
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;
    /// The live session for a cookie token hash, extending its idle timeout: the user,
    /// the session's CSRF token and how far its sign-in has come.
    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle_secs: i64,
    ) -> StoreResult<(User, String, SessionStage)>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Counts a sign-in attempt before its password or code is checked, unless a bucket
    /// it counts in already holds its limit of attempts in the window: per account and
    /// per address, or per device cookie when `attempt.device` names one. Counting and
    /// checking the count are one transaction holding the buckets' locks, so however many
    /// attempts arrive at once, on however many replicas, no bucket lets more through
    /// than its limit.
    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt<'_>,
        limits: &LoginLimits,
    ) -> StoreResult<LoginReservation>;
    /// Uncounts an attempt whose password or code was right: only failures count.
    async fn release_login_attempt(&self, id: LoginAttemptId) -> StoreResult<()>;
    /// Forgets the failures of the bucket a completed sign-in counted in: the account's
    /// (attempts without a device cookie) when `device` is none, else that device cookie's.
    async fn clear_login_failures(&self, account: &str, device: Option<&str>) -> StoreResult<()>;
    /// Stores a sealed seed to enrol (replacing an unconfirmed one).
    async fn begin_totp_enrolment(&self, user: UserId, seed: &SealedSecret) -> StoreResult<()>;
    /// Every stored TOTP seed (enrolled or pending) not sealed under `current`: seeds in
    /// clear, and seeds sealed under an older key.
    async fn totp_seeds_to_seal(
        &self,
        current: &SealKeyId,
    ) -> StoreResult<Vec<(UserId, StoredSeed)>>;
    /// Replaces a user's stored seed `old` with `sealed` (the same seed, sealed anew),
    /// emptying the clear column; false when the row no longer holds `old` (the user
    /// enrolled again, or another desk re-sealed it first).
    async fn reseal_totp_seed(
        &self,
        user: UserId,
        old: &StoredSeed,
        sealed: &SealedSecret,
    ) -> StoreResult<bool>;
    /// Confirms the pending seed, accepted at time step `step`, and stores the recovery
    /// code hashes.
    async fn confirm_totp_enrolment(
        &self,
        user: UserId,
        step: i64,
        recovery_hashes: &[String],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Accepts a code's time step once: false when that step (or a later one) was used.
    async fn accept_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool>;
    /// Uses up a recovery code: false when it is unknown or was used.
    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
}

/// Tickets from a submission to the queue and the claim, and what risk rules ask of past tickets.
/// Implemented once for both databases in `store/sql/tickets.rs`.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores a ticket with its devices and acknowledgment mail, superseding older open
    /// tickets for the same serials; or finds the ticket of an already submitted challenge.
    async fn create_ticket(
        &self,
        ticket: &NewTicket,
        acknowledgment: &NewMail,
    ) -> StoreResult<CreateOutcome>;
    /// The ticket holding the challenge of `device` (its serial and nonce), read from the
    /// primary: after a lost commit acknowledgment this says whether the ticket was saved.
    async fn ticket_of_challenge(
        &self,
        device: &DeviceChallenge,
    ) -> StoreResult<Option<TicketNumber>>;
    async fn tickets(&self, filter: &QueueFilter) -> StoreResult<Vec<TicketSummary>>;
    async fn ticket(&self, number: &TicketNumber) -> StoreResult<TicketDetail>;
    /// The ticket's export as the customer sent it: its bytes, or the blob holding them.
    /// Apart from `ticket`, which every page loads, as nothing on them shows it.
    async fn ticket_export(&self, number: &TicketNumber) -> StoreResult<StoredExport>;
    /// The number of each of `tickets` that exists, in one query: pages that list rows
    /// naming tickets by their internal id (the audit log) show people the number.
    async fn ticket_numbers(
        &self,
        tickets: &[TicketId],
    ) -> StoreResult<std::collections::HashMap<TicketId, TicketNumber>>;
    /// How many tickets each status holds (a status with none is left out). It reads
    /// every ticket's status, so its cost grows with the table: the queue's counts keep
    /// it for a while (`review::queue_counts`) rather than asking on every page.
    async fn status_counts(&self) -> StoreResult<Vec<(TicketStatus, i64)>>;
    /// The label photos a newer one replaced, oldest first.
    async fn earlier_photos(&self, ticket_id: TicketId) -> StoreResult<Vec<EarlierPhoto>>;
    /// What of the ticket's evidence `user` last looked at, and when.
    async fn last_seen(&self, ticket_id: TicketId, user: UserId)
    -> StoreResult<Option<TicketView>>;
    /// Records what of the ticket's evidence `user` looks at.
    async fn mark_seen(
        &self,
        ticket_id: TicketId,
        user: UserId,
        view: &TicketView,
    ) -> StoreResult<()>;
    /// How long each ticket decided (approved or rejected) at or after `since` took from
    /// its request to its decision, in seconds: the newest `limit` decisions.
    async fn decision_seconds_since(&self, since: Timestamp, limit: i64) -> StoreResult<Vec<i64>>;
    /// How many open tickets wait for a second approval (through their partial index).
    async fn awaiting_second_approval_count(&self) -> StoreResult<i64>;
    /// The marks of each of `tickets` that has any (approvals, the customer's report
    /// that a response failed), in two queries for a page of the queue.
    async fn queue_marks(
        &self,
        tickets: &[TicketId],
    ) -> StoreResult<std::collections::HashMap<TicketId, QueueMarks>>;
    /// Marks the pending ticket as claimed by `user`: only while nobody else holds the
    /// claim (`ClaimedBy` names who does), unless `take_over` (a supervisor's explicit
    /// take-over, audited with whom it was taken from).
    async fn claim(
        &self,
        ticket_id: TicketId,
        user: UserId,
        take_over: bool,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Gives the pending ticket's claim to `to`, by `by`: on the same terms as a claim
    /// (`ClaimedBy` while a third person holds it, unless `take_over`), recorded as an
    /// assignment naming both.
    async fn assign(
        &self,
        ticket_id: TicketId,
        to: UserId,
        by: UserId,
        take_over: bool,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Adds an agent's internal note to the ticket's history (any status). The audit
    /// log records that a note was added and its length, not its words.
    async fn add_note(
        &self,
        ticket_id: TicketId,
        by: UserId,
        note: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The newest ticket of `customer` naming the device `serial` that was approved at or
    /// after `since`.
    async fn approved_for_customer_since(
        &self,
        serial: &str,
        customer: &EmailAddress,
        since: Timestamp,
    ) -> StoreResult<Option<TicketNumber>>;
    /// Whether the device `serial` ever came in a version 2 export: its firmware binds its
    /// entries, so a version 1 export naming it is a downgrade, not that device's own.
    async fn serial_exported_in_v2(&self, serial: &str) -> StoreResult<bool>;
    /// The exporting devices (first entries) of the tickets created at or after `since`
    /// that name the device `serial`, each once, in order.
    async fn exporters_of_serial_since(
        &self,
        serial: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<String>>;
}

/// What intake needs beside the ticket: its rate limit, job leases and blob bookkeeping.
/// Implemented once for both databases in `store/sql/intake.rs`.
#[async_trait]
pub trait IntakeStore: Send + Sync + 'static {
    /// Takes (or renews) the lease of the job `name` for `holder` until `until`, unless
    /// another holder's lease is still running at `now`; whether `holder` has it.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Which of `names` a row names (a ticket's export or label photo), asked
    /// [`BLOBS_PER_QUERY`] names at a time.
    async fn blobs_referenced(&self, names: &[String]) -> StoreResult<Vec<String>>;
    /// The blob of a ticket's current label photo, read from the primary.
    async fn label_blob_of(&self, ticket_id: TicketId) -> StoreResult<String>;
    /// Counts an intake request in each of `hits`' buckets, unless one of them already
    /// holds its limit of requests in the `window_secs` before `at`: then nothing is
    /// counted. Counting and checking are one transaction holding the buckets' locks (as
    /// for sign-in attempts), so the limits hold for every replica together and survive a
    /// restart. Requests older than the window are pruned on the way.
    async fn reserve_intake(
        &self,
        hits: &[IntakeHit<'_>],
        at: Timestamp,
        window_secs: i64,
    ) -> StoreResult<IntakeReservation>;
}

/// An agent's decisions: approvals (one or two), rejections, photo requests and mail retries.
/// Implemented once for both databases in `store/sql/decisions.rs`.
#[async_trait]
pub trait DecisionStore: Send + Sync + 'static {
    /// Records the deciding approval with its signatures and mail, if the ticket is still
    /// open and has exactly `prior_approvals`; `Conflict` names who decided first.
    async fn approve(&self, approval: &Approval) -> StoreResult<()>;
    /// Records the first approval of a flagged ticket, if it has none yet.
    async fn add_first_approval(&self, approval: &FirstApproval) -> StoreResult<()>;
    /// Notes in the ticket's history and the audit log that `by` tried to approve the
    /// ticket and was refused, and why.
    async fn record_refused_approval(
        &self,
        ticket_id: TicketId,
        by: UserId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Rejects a pending ticket whose evidence is still the version the agent saw, with
    /// the reason as `text`, and queues the customer's mail.
    async fn reject(&self, decision: &MailedDecision<'_>) -> StoreResult<()>;
    /// Asks the customer for a new label photo, with the agent's note as `text`, if the
    /// ticket is open and its evidence still the version the agent saw: the ticket waits
    /// until the photo arrives.
    async fn request_photo(&self, decision: &MailedDecision<'_>) -> StoreResult<()>;
    /// Gives a dead message another round of attempts, unless it is of a kind whose
    /// secret parts were emptied when it died (`Conflict`).
    async fn retry_mail(
        &self,
        ticket_id: TicketId,
        mail_id: i64,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Puts a dead response mail back in the outbox as `resend.mail`, signed anew: the
    /// row takes the new text, file and Message-ID, the ticket's stored responses take
    /// the new signatures, and each signature and the retry are audited, in one
    /// transaction. `Conflict` when the message is not a dead response mail of the ticket.
    async fn resend_approval(&self, resend: &ResentApproval) -> StoreResult<()>;
}

/// What the customer does after submitting: a new photo, one-time codes, feedback, the status link and the address.
/// Implemented once for both databases in `store/sql/customer.rs`.
#[async_trait]
pub trait CustomerStore: Send + Sync + 'static {
    /// Stores the customer's new label photo and puts the ticket back in the queue, only
    /// if it still waits for one (a rejected or superseded ticket stays so: `Conflict`);
    /// the evidence version grows by one. The photo it replaced is kept with the ticket
    /// ([`TicketStore::earlier_photos`]); returns its blob.
    async fn replace_label_photo(
        &self,
        ticket_id: TicketId,
        blob: &str,
        media_type: &str,
        now: Timestamp,
    ) -> StoreResult<String>;
    /// Stores a one-time code for the ticket's status page and queues its mail, unless
    /// `max_per_hour` codes were issued for the ticket in the hour before (`Conflict`).
    /// A new code replaces any earlier one still in force. Counting, replacing and
    /// storing hold the ticket's code lock, so however many requests arrive at once, on
    /// however many replicas, no more than `max_per_hour` codes are issued and one is live.
    async fn issue_access_code(&self, code: &NewAccessCode, max_per_hour: i64) -> StoreResult<()>;
    /// Checks a typed code against the ticket's code in force, counting wrong tries up
    /// to `max_attempts`. An accepted code is used up, and the showing of the response is
    /// recorded in the ticket's history and the audit log.
    async fn redeem_access_code(
        &self,
        ticket_id: TicketId,
        code_hash: &str,
        now: Timestamp,
        max_attempts: i64,
    ) -> StoreResult<CodeCheck>;
    /// Adds the customer's message (from the status page or by e-mail) to the ticket's
    /// history and conversation, unless
    /// it holds `max_per_ticket` of them already (`Conflict`). A rejected ticket that can
    /// still be answered goes back in the queue as a new review: approvals withdrawn,
    /// decision and claim cleared, evidence version grown (an event and an audit entry
    /// say so).
    async fn record_reply(
        &self,
        ticket_id: TicketId,
        message: &NewTicketMessage,
        max_per_ticket: i64,
        now: Timestamp,
    ) -> StoreResult<ReplyOutcome>;
    /// Notes in the ticket's history what the customer says the device answered, unless
    /// the ticket already has `max_per_ticket` such notes (`Conflict`).
    async fn record_feedback(
        &self,
        ticket_id: TicketId,
        detail: &str,
        max_per_ticket: i64,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Mails the ticket's status link again to the ticket's own address (`mail` is
    /// addressed to it) because `other` sent the same export: at most once in
    /// `interval_secs` per ticket (`tickets.link_resent_at`, so the limit holds across
    /// replicas), and only while the ticket's address is still `mail.recipient`. Noted in
    /// the history and the audit log. Whether the mail was queued.
    async fn resend_status_link(
        &self,
        ticket_id: TicketId,
        other: &EmailAddress,
        mail: &NewMail,
        now: Timestamp,
        interval_secs: i64,
    ) -> StoreResult<bool>;
    /// Changes the customer's address of a pending ticket and queues the acknowledgment
    /// to the new one, recorded in the history and the audit log (old and new address);
    /// see [`AddressChanger`] for what each kind of change brings with it.
    async fn change_customer_email(
        &self,
        change: &AddressChange,
    ) -> StoreResult<AddressChangeOutcome>;
}

/// An approval the desk made alone, under a fast track: the approval by the desk's own
/// user ([`FastTrackStore::desk_user`]), and what the automatic decisions' record
/// keeps beside it.
#[derive(Debug, Clone)]
pub struct AutomaticApproval {
    pub approval: Approval,
    /// The customer's address as the decision saw it: the response may go elsewhere (the
    /// reserved e-mail track sends it to the device's address, `approval.mail.recipient`),
    /// and a correction meanwhile still makes this a conflict.
    pub customer_email: EmailAddress,
    pub track: FastTrack,
    pub installer: Option<InstallerId>,
    /// Where the response went, as a mailbox (`EmailAddress::mailbox`): the per-address
    /// limit counts by it.
    pub recipient_mailbox: String,
    /// At most this many automatic decisions in the 24 hours up to `approval.at` for
    /// the mailbox (reserved e-mail) or the installer, this one included; counted in
    /// the approval's transaction (`Conflict::FastTrackLimit`).
    pub limit: u32,
    /// Why the rule allowed it, for history and the audit log.
    pub why: String,
}

/// An installer's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstallerId(pub i64);

/// One automatic decision, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomaticDecision {
    pub ticket: TicketNumber,
    pub track: FastTrack,
    /// The installer's address, for the installer track.
    pub installer: Option<String>,
    /// Where the response went, as mailed (the one-time code of the status page and a
    /// response sent again go there too).
    pub recipient: EmailAddress,
    pub recipient_mailbox: String,
    pub decided_at: Timestamp,
    pub suspicious: Option<Suspicion>,
}

/// An agent's mark on an automatic decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspicion {
    pub by: String,
    pub at: Timestamp,
    pub note: String,
}

/// Which automatic decisions to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutomaticFilter {
    pub track: Option<FastTrack>,
    pub installer: Option<EmailAddress>,
    pub only_suspicious: bool,
    pub limit: i64,
}

/// A supervisor's live switch of a fast track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastTrackSwitch {
    pub track: FastTrack,
    pub enabled: bool,
    pub changed_by: String,
    pub changed_at: Timestamp,
}

/// A mark of suspicion on an automatic decision, with the supervisors' mails.
#[derive(Debug, Clone)]
pub struct SuspicionMark {
    pub ticket_id: TicketId,
    pub by: UserId,
    pub note: String,
    pub at: Timestamp,
    /// One to each supervisor, queued with the mark.
    pub mails: Vec<NewMail>,
}

/// What a mark did besides marking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    /// For the installer track: the installer whose track is now suspended.
    pub suspended: Option<String>,
}

/// The desk's own decisions: the fast tracks' approvals, their live switches and the
/// marks agents put on them. Implemented once for both databases in
/// `store/sql/fast_tracks.rs`.
#[async_trait]
pub trait FastTrackStore: Send + Sync + 'static {
    /// The user automatic decisions are made by (migration 0026).
    async fn desk_user(&self) -> StoreResult<UserId>;
    /// Records an automatic approval as `DecisionStore::approve` records an agent's
    /// (signatures, mail, history, audit), with the automatic decision's record, in one
    /// transaction, if the limit allows one more.
    async fn approve_automatically(&self, approval: &AutomaticApproval) -> StoreResult<()>;
    /// Notes in the ticket's history and the audit log, by the desk, why a fast track
    /// left the ticket to agents.
    async fn record_fast_track_declined(
        &self,
        ticket_id: TicketId,
        track: FastTrack,
        why: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Automatic decisions, newest first.
    async fn automatic_decisions(
        &self,
        filter: &AutomaticFilter,
    ) -> StoreResult<Vec<AutomaticDecision>>;
    /// The ticket's automatic decision, if the desk decided it alone.
    async fn automatic_decision(
        &self,
        ticket_id: TicketId,
    ) -> StoreResult<Option<AutomaticDecision>>;
    /// The switches supervisors set (a track with none is as the settings say).
    async fn fast_track_switches(&self) -> StoreResult<Vec<FastTrackSwitch>>;
    /// Switches a track on or off for every replica; audited.
    async fn switch_fast_track(
        &self,
        track: FastTrack,
        enabled: bool,
        by: UserId,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Marks an automatic decision suspicious: history, audit, the supervisors' mails,
    /// and for the installer track the installer's suspension, in one transaction.
    async fn mark_suspicious(&self, mark: &SuspicionMark) -> StoreResult<Marked>;
}

/// A registered installer: one of the vendor's partners, whose requests for their own
/// devices the installer track can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installer {
    pub id: InstallerId,
    pub email: EmailAddress,
    pub company: String,
    pub created_at: Timestamp,
    /// When and why the installer's track was suspended (a mark of suspicion, or an
    /// admin); their requests then go to agents.
    pub suspended: Option<(Timestamp, String)>,
}

/// How a device came to an installer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSource {
    /// The vendor imported it from a distributor's sales records: it counts at once.
    Import,
    /// The installer registered it: it counts after `installer_registration_hold_hours`.
    SelfRegistered,
}

impl DeviceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::SelfRegistered => "self",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Import, Self::SelfRegistered]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One device registered to an installer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallerDevice {
    pub installer: InstallerId,
    pub installer_email: String,
    pub serial: String,
    pub source: DeviceSource,
    pub registered_at: Timestamp,
}

/// What registering a list of devices did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub added: usize,
    /// Already registered to this installer (left as they were).
    pub already: usize,
}

/// Registered installers, their tokens and their devices. Implemented once for both
/// databases in `store/sql/installers.rs`.
#[async_trait]
pub trait InstallerStore: Send + Sync + 'static {
    /// Adds an installer; an address already registered is a conflict. Audited.
    async fn add_installer(
        &self,
        email: &EmailAddress,
        company: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<InstallerId>;
    async fn installer_by_email(&self, email: &EmailAddress) -> StoreResult<Installer>;
    async fn installer(&self, id: InstallerId) -> StoreResult<Installer>;
    /// Every installer, by address.
    async fn installers(&self) -> StoreResult<Vec<Installer>>;
    /// Stores a new token (its hash) for the installer, scope `submit`. Audited.
    async fn create_installer_token(
        &self,
        installer: InstallerId,
        token_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// The installer a live token belongs to (its last use recorded).
    async fn installer_by_token(&self, token_hash: &str, now: Timestamp) -> StoreResult<Installer>;
    /// Registers devices to an installer, all or none. Audited with the count.
    async fn register_installer_devices(
        &self,
        installer: InstallerId,
        serials: &[crate::domain::DeviceSerial],
        source: DeviceSource,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Registered>;
    /// Takes devices off an installer (a registration made in error, or one that keeps
    /// another installer's devices from their track); audited with the serials. How many
    /// were registered.
    async fn remove_installer_devices(
        &self,
        installer: InstallerId,
        serials: &[crate::domain::DeviceSerial],
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<usize>;
    /// The registrations of these serials, to any installer.
    async fn registrations_of(&self, serials: &[String]) -> StoreResult<Vec<InstallerDevice>>;
    /// Devices installers registered themselves, newest first (at most `limit`): what
    /// admins look over while their hold runs.
    async fn self_registrations(&self, limit: i64) -> StoreResult<Vec<InstallerDevice>>;
    /// Per installer: devices imported by the vendor, and registered by the installer.
    async fn installer_device_counts(&self) -> StoreResult<Vec<(InstallerId, i64, i64)>>;
    /// An installer's devices, newest first (at most `limit`).
    async fn installer_devices(
        &self,
        installer: InstallerId,
        limit: i64,
    ) -> StoreResult<Vec<InstallerDevice>>;
    /// Suspends (`Some(reason)`) or resumes (`None`) an installer's track. Audited.
    async fn set_installer_suspended(
        &self,
        installer: InstallerId,
        reason: Option<&str>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
}

/// Canned texts: rejection reasons and photo requests, each in every language.
/// Implemented once for both databases in `store/sql/reasons.rs`.
#[async_trait]
pub trait ReasonStore: Send + Sync + 'static {
    /// Every canned text, by kind and then in the order they were added.
    async fn canned_reasons(&self) -> StoreResult<Vec<CannedText>>;
    /// One canned text; `NotFound` once removed.
    async fn canned_reason(&self, id: i64) -> StoreResult<CannedText>;
    /// Adds one; audited with every language's words. Words its kind already has are a
    /// conflict.
    async fn add_canned_reason(
        &self,
        kind: CannedKind,
        words: &CannedWords,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Writes one's words again (its kind stays); audited with the old and the new words.
    async fn edit_canned_reason(
        &self,
        id: i64,
        words: &CannedWords,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Removes one; audited with the words it had.
    async fn remove_canned_reason(&self, id: i64, by: UserId, now: Timestamp) -> StoreResult<()>;
}

/// The append-only audit log.
/// Implemented once for both databases in `store/sql/audit.rs`.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends to the audit log on its own (events with no other change, such as a failed login).
    async fn audit(
        &self,
        at: Timestamp,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> StoreResult<()>;
    /// Queues mails that belong to no ticket (the supervisors' digest) with an audit
    /// entry by `actor`, in one transaction: all of them and the entry, or none.
    async fn queue_mails(
        &self,
        mails: &[NewMail],
        at: Timestamp,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> StoreResult<()>;
    /// The newest audit entries, newest first, optionally only by `actor` and of `action`.
    async fn recent_audit(
        &self,
        actor: Option<&str>,
        action: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Audit entries with ids above `after_id` (and at or after `since`), in id order.
    async fn audit_entries(
        &self,
        after_id: i64,
        since: Option<Timestamp>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
}

/// The outbox the mail worker drains.
/// Implemented once for both databases in `store/sql/outbox.rs`.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Leases up to `limit` due messages for `lease_secs`.
    async fn claim_due_mail(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>>;
    /// Records messages the relay accepted, in one transaction: on SQLite, where writers
    /// queue for one lock, a commit per message let busy approvals starve the mail.
    async fn mark_mails_sent(&self, ids: &[i64], now: Timestamp) -> StoreResult<()>;
    /// Records a failed attempt: retried at `retry_at`, or dead when `retry_at` is none.
    async fn mark_mail_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> StoreResult<()>;
    /// Counts of outbox messages by status (pending, sent, dead).
    async fn mail_counts(&self) -> StoreResult<(i64, i64, i64)>;
}

/// Requests and replies by e-mail (issue 21): claims on inbound messages, and tickets'
/// conversations. Implemented once for both databases in `store/sql/mail.rs`.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Claims an inbound message for `lease_secs`: `Claimed` when it is new, or when an
    /// earlier claim lapsed unfinished (its handler died); `Done` when it was handled;
    /// `Busy` while another holds it.
    async fn claim_inbound(
        &self,
        message_id: &str,
        sender_mailbox: &str,
        now: Timestamp,
        lease_secs: i64,
    ) -> StoreResult<InboundClaim>;
    /// Records what was done with a claimed message and queues `answer` (if any) in the
    /// same transaction: a crash leaves both or neither, so no answer is sent twice.
    async fn finish_inbound(
        &self,
        message_id: &str,
        outcome: &str,
        ticket_id: Option<TicketId>,
        answer: Option<&NewMail>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// How many inbound messages the desk answered since `since`: (those from this
    /// mailbox, all of them).
    async fn inbound_answers_since(
        &self,
        sender_mailbox: &str,
        since: Timestamp,
    ) -> StoreResult<(i64, i64)>;
    /// The ticket these Message-IDs name: one the desk sent for it, or (unless
    /// `desks_own_only`) one of its conversation; the newest such ticket, should they
    /// name several. The desk's own Message-IDs carry a random part nobody but their
    /// recipient has seen, so naming one is a proof that the customer's address is not.
    async fn ticket_of_message_ids(
        &self,
        message_ids: &[String],
        desks_own_only: bool,
    ) -> StoreResult<Option<TicketNumber>>;
    /// Adds a message that changes nothing else (a stranger's, or the customer's to a
    /// decided ticket) with one history line; `false` when its Message-ID is there already.
    async fn add_ticket_message(
        &self,
        ticket_id: TicketId,
        message: &NewTicketMessage,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Forgets the files kept before `before` (their blobs are the sweeper's then); how
    /// many rows went.
    async fn forget_inbound_kept(&self, before: Timestamp) -> StoreResult<u64>;
    /// Keeps the files of a message the desk answered with what to fix, for the
    /// customer's reply to bring the rest.
    async fn keep_inbound_files(
        &self,
        message_id: &str,
        files: &[KeptFile],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The bytes of every file kept for a reply now.
    async fn inbound_kept_bytes(&self) -> StoreResult<u64>;
    /// The files kept of the message the desk answered, when these Message-IDs name
    /// that answer (its random part only its recipient has seen) and the message came
    /// from `sender_mailbox`: nobody else's files join a request.
    async fn kept_inbound_files(
        &self,
        message_ids: &[String],
        sender_mailbox: &str,
    ) -> StoreResult<Vec<(String, String)>>;
    /// An agent's answer: the message, a history line and its mail, together.
    async fn record_agent_message(
        &self,
        ticket_id: TicketId,
        by: UserId,
        message: &NewTicketMessage,
        mail: &NewMail,
        now: Timestamp,
    ) -> StoreResult<()>;
}

/// The evidence worker's jobs: reading each label photo off the request path (issue 18).
/// Implemented once for both databases in `store/sql/evidence.rs`. Jobs are made with
/// the photo (`create_ticket`, `replace_label_photo`), in the same transaction.
/// One ticket's evidence deleted by data retention (issue 23).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedEvidence {
    pub ticket: TicketNumber,
    /// The blobs its rows named, to delete from the blob store next. The rows no longer
    /// name them, so a crash before they are deleted leaves them to the orphan sweep.
    pub blobs: Vec<String>,
}

/// Writes the last mail to an erased customer: to this address, in this language,
/// naming these tickets.
pub type ConfirmationMail<'a> =
    dyn Fn(&EmailAddress, Lang, &[TicketNumber]) -> Option<NewMail> + Send + Sync + 'a;

/// A customer to erase on request (issue 23).
pub struct ErasureRequest<'a> {
    /// The address whose tickets are erased (compared without case).
    pub email: &'a EmailAddress,
    /// Who asked for it to be done: a console user's address, or `cli`.
    pub by: &'a str,
    /// Why, for the history and the audit log (it must not name the customer).
    pub reason: &'a str,
    /// The last mail to the customer, saying it is done: to the address of their newest
    /// ticket as they wrote it, in its language, naming the tickets erased; queued in the
    /// same transaction (`None`: it could not be written, and the erasure goes on
    /// without it).
    pub confirmation: &'a ConfirmationMail<'a>,
    /// Seals the words of the erasure's audit entry (`DeskSecret::erasure_seal`).
    pub seal: &'a (dyn Fn(&str) -> String + Send + Sync + 'a),
    /// Only tickets made at or before this time: an erasure re-applied after a restore
    /// leaves the tickets the customer sent since (`None`: every ticket).
    pub created_before: Option<Timestamp>,
    pub at: Timestamp,
}

/// What an erasure found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureOutcome {
    /// Every ticket of the address lost its personal fields, texts and files; the
    /// blobs its rows named are to be deleted next.
    Erased {
        tickets: Vec<TicketNumber>,
        blobs: Vec<String>,
    },
    /// No ticket has that address: nothing was done, no mail queued.
    NoTickets,
    /// Some of its tickets are still pending: decide them first; nothing was done.
    Pending(Vec<TicketNumber>),
}

/// What an erased ticket's customer address reads: an address must parse, and this
/// one (RFC 2606's `.invalid`) reaches nobody.
pub const ERASED_EMAIL: &str = "erased@erased.invalid";

/// Data retention (issue 23): what a decided ticket keeps only for a while. A ticket is
/// decided when approved or rejected (its `decided_at`), or replaced by a newer one
/// (superseded: when that happened).
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes, for at most `limit` tickets decided at or before `decided_before` whose
    /// evidence is still kept, the label photo, its previews, the earlier photos and the
    /// export (in the row, or a blob such as a QR picture): the rows no longer name them,
    /// a history line and an audit entry (actor `retention`) say so, all in one
    /// transaction. `days` is the retention the history line names.
    async fn remove_evidence_decided_before(
        &self,
        decided_before: Timestamp,
        days: u32,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<RemovedEvidence>>;

    /// Deletes, for at most `limit` tickets decided at or before `decided_before`, the
    /// customer's name (it reads "—"), phone and company, and takes the name out of the
    /// search index, with a history line and an audit entry each. The e-mail address
    /// stays: it is how the customer's tickets are found for erasure or export.
    async fn remove_customer_details_decided_before(
        &self,
        decided_before: Timestamp,
        days: u32,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<TicketNumber>>;

    /// Erases a customer on request, in one transaction: each of the address's tickets
    /// loses its customer's fields (the address reads [`ERASED_EMAIL`]), its photos and
    /// export, its conversation, the texts of its history, its mails' texts and
    /// addresses, and its audit entries' words and salt (the chain stays verifiable);
    /// what the desk read from the export and the decision stay. Mail the desk answered
    /// the address with loses its texts too. The confirmation is queued, and each ticket's
    /// history and the audit log say it was done, by whom and why.
    async fn erase_customer(&self, request: &ErasureRequest<'_>) -> StoreResult<ErasureOutcome>;

    /// Every ticket of the address's mailbox not erased (compared without case, +tags
    /// or Gmail's dots), oldest first, with its status: what `customer export` writes
    /// out, and what an erasure checks before it is recorded.
    async fn customer_tickets(
        &self,
        email: &EmailAddress,
    ) -> StoreResult<Vec<(TicketNumber, TicketStatus)>>;

    /// Every customer address of a ticket not erased, as written: what an erasure re-applied
    /// after a restore compares with the erasure log.
    async fn customer_addresses(&self) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait EvidenceStore: Send + Sync + 'static {
    /// Leases up to `limit` pending jobs for `lease_secs`, oldest first: jobs no worker
    /// holds, or whose worker's lease ran out at `now`. Two workers (on as many replicas)
    /// never lease the same job at once.
    async fn claim_evidence_jobs(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
    ) -> StoreResult<Vec<EvidenceJob>>;
    /// Leases the ticket's pending job as [`Self::claim_evidence_jobs`] does, for an
    /// approval that must not be decided before its label is read; `None` when it has
    /// none due (none pending, or a worker holds it).
    async fn claim_ticket_evidence_job(
        &self,
        ticket_id: TicketId,
        now: Timestamp,
        lease_secs: i64,
    ) -> StoreResult<Option<EvidenceJob>>;
    /// Records what the worker read, once: if the job is still pending and its photo is
    /// still the ticket's. Each finding is also an entry in the audit log.
    async fn finish_evidence_job(&self, reading: &EvidenceReading) -> StoreResult<JobEnd>;
    /// Records that the job's photo could not be read, once, and if its photo is still
    /// the ticket's; an open ticket then waits for a new photo, and the customer's mail
    /// saying so is queued in the same transaction.
    async fn fail_evidence_job(&self, failure: &EvidenceFailure) -> StoreResult<JobEnd>;
    /// What was read on the ticket's current label photo; `None` for a ticket whose photo
    /// was checked before the evidence worker existed.
    async fn label_evidence(&self, ticket_id: TicketId) -> StoreResult<Option<LabelEvidence>>;
    /// Jobs waiting (pending, stuck included) and failed, for the gauges.
    async fn evidence_counts(&self) -> StoreResult<(i64, i64)>;
    /// Gives a leased job back without counting the attempt, due again at `due_at`: the
    /// worker could not start it (the picture work was busy, the blob store or the
    /// database failed), or the approval that leased it went away, which says nothing
    /// against the photo.
    async fn release_evidence_job(&self, job_id: i64, due_at: Timestamp) -> StoreResult<()>;
    /// The label check of each of `tickets` that has one (as [`Self::label_evidence`]
    /// reads it: the ticket's current photo), in one query for a page of the queue.
    async fn label_checks(
        &self,
        tickets: &[TicketId],
    ) -> StoreResult<std::collections::HashMap<TicketId, LabelCheck>>;
}

/// Everything the desk keeps, one trait per aggregate: the desk holds an `Arc<dyn Store>`
/// and calls any of their methods on it. Each trait is implemented in the file of its
/// aggregate under `store/sql/`; what implements them all is a `Store`.
pub trait Store:
    DatabaseStore
    + KeyRegistryStore
    + UserStore
    + SignInStore
    + TicketStore
    + IntakeStore
    + DecisionStore
    + CustomerStore
    + ReasonStore
    + AuditStore
    + OutboxStore
    + EvidenceStore
    + FastTrackStore
    + InstallerStore
    + MailStore
    + RetentionStore
{
}

impl<T> Store for T where
    T: DatabaseStore
        + KeyRegistryStore
        + UserStore
        + SignInStore
        + TicketStore
        + IntakeStore
        + DecisionStore
        + CustomerStore
        + ReasonStore
        + AuditStore
        + OutboxStore
        + EvidenceStore
        + FastTrackStore
        + InstallerStore
        + MailStore
        + RetentionStore
{
}

#[cfg(test)]
mod tests {
    use super::{MailKind, OutboxStatus, TicketEventKind};

    #[test]
    fn stored_names_read_back_as_their_kinds() {
        for kind in TicketEventKind::KNOWN {
            assert_eq!(TicketEventKind::parse(kind.as_str()), kind);
        }
        for kind in [MailKind::Approval, MailKind::AddressChanged] {
            assert_eq!(MailKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(OutboxStatus::parse("dead"), Some(OutboxStatus::Dead));
        assert_eq!(MailKind::parse("newsletter"), None);
    }

    #[test]
    fn a_history_kind_this_build_does_not_know_is_shown_as_stored() {
        let kind = TicketEventKind::parse("mail_handed_off");
        assert_eq!(kind, TicketEventKind::Other("mail_handed_off".to_owned()));
        assert_eq!(kind.as_str(), "mail_handed_off");
    }
}
