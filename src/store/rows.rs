//! Row types shared by every backend, and their conversion into domain values. A value
//! that fails to parse here means the database was edited behind the desk's back.

use sqlx::FromRow;

use super::{
    Attachment, Customer, ExportForm, MailKind, MailStatus, OutboxMessage, OutboxStatus,
    StoreError, StoredResponse, StoredSeed, StoredSignature, TicketEvent, TicketEventKind,
    TicketId, TicketSummary, User, UserId,
};
use crate::crypto::{KeyId, MacTag, SealKeyId, SealedSecret, Signature};
use crate::domain::{
    CountryCode, CustomerRole, DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion,
    MacAddress, PhoneNumber, PlainText, Roles, Secret, TicketNumber, TicketStatus, Timestamp,
};
use crate::i18n::Lang;
use crate::protocol::{DeviceChallenge, DeviceIdentity, ExportBinding, ExportId, Nonce};

#[derive(Debug, thiserror::Error)]
#[error("stored {what} is not valid: {value:?}")]
pub struct Corrupt {
    what: &'static str,
    value: String,
}

pub(super) fn corrupt(what: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::other(Corrupt {
        what,
        value: value.into(),
    })
}

pub(super) fn time(seconds: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_seconds(seconds).map_err(|_| corrupt("time", seconds.to_string()))
}

fn parse<T, E>(
    what: &'static str,
    raw: &str,
    f: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    f(raw).map_err(|_| corrupt(what, raw))
}

pub(super) fn hex_array<const N: usize>(
    what: &'static str,
    raw: &str,
) -> Result<[u8; N], StoreError> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(raw.as_bytes())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| corrupt(what, raw))
}

/// A user as `SELECT id, email, roles, password_hash, disabled_at, totp_secret,
/// totp_sealed, totp_key_id, totp_enabled_at` reads it.
#[derive(FromRow)]
pub(super) struct UserRow {
    id: i64,
    email: String,
    roles: String,
    password_hash: String,
    disabled_at: Option<i64>,
    totp_secret: Option<String>,
    totp_sealed: Option<String>,
    totp_key_id: Option<String>,
    totp_enabled_at: Option<i64>,
}

/// A stored seed from its three columns: sealed (with its key id) when sealed, else the
/// clear seed of a row from before sealing.
pub(super) fn stored_seed(
    clear: Option<String>,
    sealed: Option<String>,
    key_id: Option<String>,
) -> Result<Option<StoredSeed>, StoreError> {
    Ok(match (sealed, key_id, clear) {
        (Some(ciphertext), Some(key_id), _) => Some(StoredSeed::Sealed(SealedSecret {
            key_id: parse("seal key id", &key_id, SealKeyId::parse)?,
            ciphertext,
        })),
        (Some(_), None, _) => return Err(corrupt("seal key id", "")),
        (None, _, Some(clear)) => Some(StoredSeed::Clear(Secret::new(clear))),
        (None, _, None) => None,
    })
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let seed = stored_seed(row.totp_secret, row.totp_sealed, row.totp_key_id)?;
        Ok(User {
            id: UserId(row.id),
            email: parse("e-mail", &row.email, EmailAddress::parse)?,
            roles: Roles::parse_stored(&row.roles).ok_or_else(|| corrupt("roles", &row.roles))?,
            password_hash: row.password_hash,
            disabled: row.disabled_at.is_some(),
            // A seed counts only once its enrolment was confirmed with a code.
            totp_secret: seed.clone().filter(|_| row.totp_enabled_at.is_some()),
            totp_pending: seed.filter(|_| row.totp_enabled_at.is_none()),
        })
    }
}

#[derive(FromRow)]
pub(super) struct SummaryRow {
    id: i64,
    number: String,
    status: String,
    created_at: i64,
    device_count: i64,
    first_model: String,
    first_serial: String,
    export_expires_at: i64,
    customer_name: String,
    customer_email: String,
    claimed_by: Option<String>,
    flags: String,
}

/// Flags are stored one per line.
pub(super) fn flags_text(flags: &[String]) -> String {
    flags.join("\n")
}

/// The flags as stored, one per line, back into a list.
pub(super) fn flags_list(stored: &str) -> Vec<String> {
    stored
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl TryFrom<SummaryRow> for TicketSummary {
    type Error = StoreError;
    fn try_from(row: SummaryRow) -> Result<Self, StoreError> {
        Ok(TicketSummary {
            id: TicketId(row.id),
            number: parse("ticket number", &row.number, TicketNumber::parse)?,
            status: TicketStatus::parse(&row.status)
                .ok_or_else(|| corrupt("status", &row.status))?,
            created_at: time(row.created_at)?,
            device_count: row.device_count,
            first_model: row.first_model,
            first_serial: row.first_serial,
            export_expires_at: time(row.export_expires_at)?,
            customer_name: row.customer_name,
            customer_email: row.customer_email,
            claimed_by: row.claimed_by,
            flags: flags_list(&row.flags),
        })
    }
}

#[derive(FromRow)]
pub(super) struct TicketRow {
    pub id: i64,
    customer_name: String,
    customer_email: String,
    customer_phone: Option<String>,
    customer_company: Option<String>,
    customer_country: String,
    customer_role: String,
    purchase_channel: Option<String>,
    customer_language: String,
    export_form: String,
    pub export_blob: String,
    pub label_blob: String,
    pub label_media_type: String,
    pub evidence_version: i64,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    superseded_by: Option<String>,
    repeat_of: Option<String>,
    pub installer_id: Option<i64>,
    pub evidence_removed_at: Option<i64>,
    pub customer_removed_at: Option<i64>,
    pub erased_at: Option<i64>,
}

impl TicketRow {
    pub fn customer(&self) -> Result<Customer, StoreError> {
        let text = |what, raw: &str, max| parse(what, raw, |r| PlainText::parse(r, max));
        Ok(Customer {
            name: text("name", &self.customer_name, 200)?,
            email: parse("e-mail", &self.customer_email, EmailAddress::parse)?,
            phone: self
                .customer_phone
                .as_deref()
                .map(|p| parse("phone", p, PhoneNumber::parse))
                .transpose()?,
            company: self
                .customer_company
                .as_deref()
                .map(|c| text("company", c, 200))
                .transpose()?,
            country: parse("country", &self.customer_country, CountryCode::parse)?,
            role: parse("role", &self.customer_role, CustomerRole::parse)?,
            purchase_channel: self
                .purchase_channel
                .as_deref()
                .map(|c| text("purchase channel", c, 200))
                .transpose()?,
            language: parse("language", &self.customer_language, |l| {
                Lang::parse(l).ok_or("is not a language the desk speaks")
            })?,
        })
    }

    pub fn export_form(&self) -> Result<ExportForm, StoreError> {
        ExportForm::parse(&self.export_form)
            .ok_or_else(|| corrupt("export form", &self.export_form))
    }

    pub fn superseded_by(&self) -> Result<Option<TicketNumber>, StoreError> {
        ticket_number(self.superseded_by.as_deref())
    }

    pub fn repeat_of(&self) -> Result<Option<TicketNumber>, StoreError> {
        ticket_number(self.repeat_of.as_deref())
    }
}

fn ticket_number(raw: Option<&str>) -> Result<Option<TicketNumber>, StoreError> {
    raw.map(|n| parse("ticket number", n, TicketNumber::parse))
        .transpose()
}

#[derive(FromRow)]
pub(super) struct DeviceRow {
    model: String,
    serial: String,
    firmware: String,
    mac_address: Option<String>,
    reserved_email: Option<String>,
    nonce: String,
    issued_at: i64,
    tag: String,
    export_id: Option<String>,
    exported_by: Option<String>,
}

impl TryFrom<DeviceRow> for DeviceChallenge {
    type Error = StoreError;
    fn try_from(row: DeviceRow) -> Result<Self, StoreError> {
        Ok(DeviceChallenge {
            identity: DeviceIdentity {
                model: parse("model", &row.model, DeviceModel::parse)?,
                serial: parse("serial", &row.serial, DeviceSerial::parse)?,
                firmware: parse("firmware", &row.firmware, FirmwareVersion::parse)?,
                mac_address: row
                    .mac_address
                    .as_deref()
                    .map(|m| parse("MAC", m, MacAddress::parse))
                    .transpose()?,
                reserved_email: row
                    .reserved_email
                    .as_deref()
                    .map(|e| parse("e-mail", e, EmailAddress::parse))
                    .transpose()?,
            },
            nonce: Nonce(hex_array("nonce", &row.nonce)?),
            issued_at: time(row.issued_at)?,
            binding: match (row.export_id, row.exported_by) {
                (None, None) => None,
                (Some(export_id), Some(exported_by)) => Some(ExportBinding {
                    export_id: ExportId(hex_array("export id", &export_id)?),
                    exported_by: parse("exporting device", &exported_by, DeviceSerial::parse)?,
                }),
                _ => return Err(corrupt("export binding", "half of it is missing")),
            },
            tag: MacTag(hex_array("tag", &row.tag)?),
        })
    }
}

#[derive(FromRow)]
pub(super) struct ResponseRow {
    serial: String,
    nonce: String,
    key_id: String,
    expires_at: i64,
    signature: String,
    export_id: Option<String>,
}

impl TryFrom<ResponseRow> for StoredResponse {
    type Error = StoreError;
    fn try_from(row: ResponseRow) -> Result<Self, StoreError> {
        Ok(StoredResponse {
            export_id: row
                .export_id
                .map(|id| hex_array("export id", &id).map(ExportId))
                .transpose()?,
            serial: parse("serial", &row.serial, DeviceSerial::parse)?,
            nonce: Nonce(hex_array("nonce", &row.nonce)?),
            expires_at: time(row.expires_at)?,
            key_id: parse("key id", &row.key_id, KeyId::parse)?,
            signature: stored_signature(&row.signature)?,
        })
    }
}

/// A sealed signature is stored as `<seal key id>:<hex>`; one in clear (written before
/// signatures were sealed) as 128 hex characters.
fn stored_signature(raw: &str) -> Result<StoredSignature, StoreError> {
    match raw.split_once(':') {
        Some((key_id, ciphertext)) => Ok(StoredSignature::Sealed(SealedSecret {
            key_id: parse("seal key id", key_id, SealKeyId::parse)?,
            ciphertext: ciphertext.to_owned(),
        })),
        None => Ok(StoredSignature::Clear(Signature(hex_array(
            "signature",
            raw,
        )?))),
    }
}

/// The text [`stored_signature`] reads back.
pub(super) fn signature_text(signature: &StoredSignature) -> String {
    match signature {
        StoredSignature::Sealed(sealed) => format!("{}:{}", sealed.key_id, sealed.ciphertext),
        StoredSignature::Clear(signature) => hex(&signature.0),
    }
}

#[derive(FromRow)]
pub(super) struct EventRow {
    at: i64,
    actor: String,
    kind: String,
    detail: String,
}

impl TryFrom<EventRow> for TicketEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(TicketEvent {
            at: time(row.at)?,
            actor: row.actor,
            kind: TicketEventKind::parse(&row.kind),
            detail: row.detail,
        })
    }
}

#[derive(FromRow)]
pub(super) struct MessageRow {
    author: String,
    sender: String,
    at: i64,
    body: String,
}

impl TryFrom<MessageRow> for crate::store::TicketMessage {
    type Error = StoreError;
    fn try_from(row: MessageRow) -> Result<Self, StoreError> {
        Ok(crate::store::TicketMessage {
            author: crate::store::MessageAuthor::parse(&row.author)
                .ok_or_else(|| corrupt("message author", &row.author))?,
            sender: row.sender,
            at: time(row.at)?,
            body: row.body,
        })
    }
}

#[derive(FromRow)]
pub(super) struct MailStatusRow {
    id: i64,
    kind: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    sent_at: Option<i64>,
}

impl TryFrom<MailStatusRow> for MailStatus {
    type Error = StoreError;
    fn try_from(row: MailStatusRow) -> Result<Self, StoreError> {
        Ok(MailStatus {
            id: row.id,
            kind: MailKind::parse(&row.kind).ok_or_else(|| corrupt("mail kind", &row.kind))?,
            status: OutboxStatus::parse(&row.status)
                .ok_or_else(|| corrupt("mail status", &row.status))?,
            attempts: row.attempts,
            last_error: row.last_error,
            sent_at: row.sent_at.map(time).transpose()?,
        })
    }
}

#[derive(FromRow)]
pub(super) struct OutboxRow {
    id: i64,
    message_id: String,
    recipient: String,
    subject: String,
    body_text: String,
    body_html: String,
    attachment_name: Option<String>,
    attachment_type: Option<String>,
    attachment: Option<Vec<u8>>,
    attempts: i64,
    in_reply_to: Option<String>,
    kind: String,
}

impl From<OutboxRow> for OutboxMessage {
    fn from(row: OutboxRow) -> Self {
        let attachment = match (row.attachment_name, row.attachment_type, row.attachment) {
            (Some(file_name), Some(media_type), Some(bytes)) => Some(Attachment {
                file_name,
                media_type,
                bytes,
            }),
            _ => None,
        };
        OutboxMessage {
            id: row.id,
            message_id: row.message_id,
            recipient: row.recipient,
            subject: row.subject,
            body_text: row.body_text,
            body_html: row.body_html,
            attachment,
            attempts: row.attempts,
            in_reply_to: row.in_reply_to,
            kind: crate::store::MailKind::parse(&row.kind),
        }
    }
}

/// Hex of a nonce, tag or signature as stored.
pub(super) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[derive(FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    ticket_id: Option<i64>,
    detail: String,
    prev_hash: String,
    hash: String,
    commitment: Option<String>,
    kept_detail: Option<String>,
    salt: Option<String>,
}

impl TryFrom<AuditRow> for crate::audit::chain::AuditEntry {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let commitment = row
            .commitment
            .as_deref()
            .map(|c| hex_array("audit commitment", c))
            .transpose()?;
        // A committed entry's words and salt are kept apart; erased, neither is there.
        let (detail, salt, erased) = match (&commitment, row.kept_detail, row.salt) {
            (None, _, _) => (row.detail, None, false),
            (Some(_), Some(words), Some(salt)) => {
                (words, Some(hex_array("audit salt", &salt)?), false)
            }
            (Some(_), words, salt) if words.is_none() && salt.is_none() => {
                (String::new(), None, true)
            }
            // Half erased (words without their salt, or the reverse): shown as kept, and
            // the verifier names the entry.
            (Some(_), words, salt) => (
                words.unwrap_or_default(),
                salt.as_deref()
                    .map(|s| hex_array("audit salt", s))
                    .transpose()?,
                false,
            ),
        };
        Ok(crate::audit::chain::AuditEntry {
            id: row.id,
            at: time(row.at)?,
            actor: row.actor,
            action: row.action,
            ticket_id: row.ticket_id,
            detail,
            prev_hash: hex_array("audit hash", &row.prev_hash)?,
            hash: hex_array("audit hash", &row.hash)?,
            commitment,
            salt,
            erased,
        })
    }
}

#[derive(FromRow)]
pub(super) struct TokenRow {
    id: i64,
    name: String,
    scope: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRow> for super::ApiTokenInfo {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(super::ApiTokenInfo {
            id: row.id,
            scope: super::TokenScope::parse(&row.scope)
                .ok_or_else(|| corrupt("token scope", &row.scope))?,
            name: row.name,
            created_at: time(row.created_at)?,
            expires_at: row.expires_at.map(time).transpose()?,
            revoked: row.revoked_at.is_some(),
            last_used_at: row.last_used_at.map(time).transpose()?,
        })
    }
}

#[derive(FromRow)]
pub(super) struct ApprovalRow {
    user_id: i64,
    email: String,
    as_role: String,
    note: String,
    at: i64,
}

impl TryFrom<ApprovalRow> for super::ApprovalRecord {
    type Error = StoreError;
    fn try_from(row: ApprovalRow) -> Result<Self, StoreError> {
        Ok(super::ApprovalRecord {
            by: UserId(row.user_id),
            email: row.email,
            as_role: crate::domain::Role::parse(&row.as_role)
                .ok_or_else(|| corrupt("role", &row.as_role))?,
            note: row.note,
            at: time(row.at)?,
        })
    }
}

/// A grant between two console users, as `grants_since` reads it.
#[derive(FromRow)]
pub(super) struct GrantRow {
    user_id: i64,
    user_email: String,
    kind: String,
    roles: Option<String>,
    granted_by: i64,
    by_email: String,
    at: i64,
}

impl TryFrom<GrantRow> for super::Grant {
    type Error = StoreError;
    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        Ok(super::Grant {
            user: UserId(row.user_id),
            user_email: row.user_email,
            kind: super::GrantKind::parse(&row.kind)
                .ok_or_else(|| corrupt("grant kind", &row.kind))?,
            roles: row
                .roles
                .map(|r| Roles::parse_stored(&r).ok_or_else(|| corrupt("roles", &r)))
                .transpose()?,
            by: UserId(row.granted_by),
            by_email: row.by_email,
            at: time(row.at)?,
        })
    }
}

#[derive(FromRow)]
pub(super) struct KeyRow {
    key_id: String,
    kind: String,
    status: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<KeyRow> for super::RegisteredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        Ok(Self {
            kind: super::KeyKind::parse(&row.kind).ok_or_else(|| corrupt("key kind", &row.kind))?,
            status: super::KeyRecordStatus::parse(&row.status)
                .ok_or_else(|| corrupt("key status", &row.status))?,
            key_id: row.key_id,
            created_at: time(row.created_at)?,
            retired_at: row.retired_at.map(time).transpose()?,
        })
    }
}
