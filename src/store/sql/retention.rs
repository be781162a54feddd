//! Data retention (issue 23): a decided ticket's evidence and its customer's details,
//! deleted once kept long enough, and a customer erased on request. Each is one
//! transaction: the rows stop naming the blobs, the history and the audit log say what
//! went, together; the caller deletes the blobs after (`crate::retention`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db};
use crate::domain::{EmailAddress, TicketNumber, TicketSearchText, TicketStatus, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows;
use crate::store::{
    ERASED_EMAIL, ErasureOutcome, ErasureRequest, RemovedEvidence, RetentionStore, StoreResult,
    TicketEventKind, TicketId,
};

/// Tickets whose address is at a domain (`$1`: `%@domain`), to be compared in full by
/// [`of_mailbox`].
const TICKETS_OF_DOMAIN: &str = "SELECT id, number, status, customer_email, created_at
  FROM tickets WHERE lower(customer_email) LIKE $1 AND erased_at IS NULL ORDER BY id";

/// The `LIKE` patterns for the domains an address of `email`'s mailbox may be written
/// with (LIKE's own wildcards taken out: a domain has none).
fn domain_patterns(email: &EmailAddress) -> Vec<String> {
    email
        .mailbox_domains()
        .into_iter()
        .map(|domain| format!("%@{}", domain.replace(['%', '_'], "")))
        .collect()
}

/// The rows of [`TICKETS_OF_DOMAIN`] whose address is `mailbox`'s, however it was
/// written (case, +tags, Gmail's dots): (id, number, status).
fn of_mailbox(
    rows: Vec<(i64, String, String, String, i64)>,
    mailbox: &str,
    created_before: Option<Timestamp>,
) -> impl Iterator<Item = (i64, String, String)> + '_ {
    rows.into_iter()
        .filter(move |(_, _, _, email, created_at)| {
            EmailAddress::parse(email).is_ok_and(|e| e.mailbox() == mailbox)
                && created_before.is_none_or(|before| *created_at <= before.unix_seconds())
        })
        .map(|(id, number, status, _, _)| (id, number, status))
}

/// Who data retention acts as, in the history and the audit log.
const ACTOR: &str = "retention";

/// The tickets decided at or before `$1` (approved or rejected: their decision;
/// superseded: when a newer ticket replaced them), oldest first, at most `$2`, whose
/// evidence is still kept.
const EVIDENCE_DUE: &str = "SELECT id, number FROM tickets
  WHERE evidence_removed_at IS NULL AND status IN ('approved', 'rejected', 'superseded')
    AND ((status <> 'superseded' AND decided_at <= $1)
         OR (status = 'superseded' AND updated_at <= $1))
  ORDER BY id LIMIT $2";

/// [`EVIDENCE_DUE`] for the customer's details.
const CUSTOMER_DUE: &str = "SELECT id, number FROM tickets
  WHERE customer_removed_at IS NULL AND status IN ('approved', 'rejected', 'superseded')
    AND ((status <> 'superseded' AND decided_at <= $1)
         OR (status = 'superseded' AND updated_at <= $1))
  ORDER BY id LIMIT $2";

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> Option<String>: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    for<'q> Option<i64>: Param<'q, D>,
    for<'q> Option<&'q str>: Param<'q, D>,
    for<'q> Option<&'q [u8]>: Param<'q, D>,
    usize: ColumnIndex<D::Row>,
    for<'r> &'r str: ColumnIndex<D::Row>,
{
    /// The tickets [`EVIDENCE_DUE`] or [`CUSTOMER_DUE`] finds: (id, number).
    async fn due(
        tx: &mut Transaction<'static, D>,
        query: &'static str,
        decided_before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        sqlx::query_as(query)
            .bind(decided_before.unix_seconds())
            .bind(i64::from(limit))
            .fetch_all(&mut **tx)
            .await
            .map_err(db)
    }

    /// What a search matches the ticket on once its customer's name is gone (and the
    /// address is `email`): its number and its devices' serials.
    async fn search_text_without_name(
        tx: &mut Transaction<'static, D>,
        ticket: TicketId,
        number: &TicketNumber,
        email: &str,
    ) -> StoreResult<TicketSearchText> {
        let serials: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM ticket_devices WHERE ticket_id = $1 ORDER BY position",
        )
        .bind(ticket)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        Ok(TicketSearchText::of(
            number,
            REMOVED_NAME,
            email,
            serials.iter().map(String::as_str),
        ))
    }

    /// Every blob the ticket's rows name: its export, its label photo, the earlier
    /// photos, and what the evidence worker made of each photo.
    async fn evidence_blobs(
        tx: &mut Transaction<'static, D>,
        ticket: TicketId,
    ) -> StoreResult<Vec<String>> {
        let (export, label): (String, String) =
            sqlx::query_as("SELECT export_blob, label_blob FROM tickets WHERE id = $1")
                .bind(ticket)
                .fetch_one(&mut **tx)
                .await
                .map_err(db)?;
        let earlier: Vec<String> =
            sqlx::query_scalar("SELECT blob FROM earlier_photos WHERE ticket_id = $1")
                .bind(ticket)
                .fetch_all(&mut **tx)
                .await
                .map_err(db)?;
        let made: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT label_blob, preview_blob, thumbnail_blob FROM evidence_jobs WHERE ticket_id = $1",
        )
        .bind(ticket)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let mut blobs = vec![export, label];
        blobs.extend(earlier);
        for (label, preview, thumbnail) in made {
            blobs.push(label);
            blobs.extend(preview);
            blobs.extend(thumbnail);
        }
        blobs.retain(|name| !name.is_empty());
        blobs.sort();
        blobs.dedup();
        Ok(blobs)
    }
}

/// What an erasure found of a mailbox outside its tickets.
struct ErasedElsewhere {
    /// Files kept for the mailbox's e-mail replies, to delete.
    blobs: Vec<String>,
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    usize: ColumnIndex<D::Row>,
{
    /// The mailbox's traces outside its own tickets: mail the desk answered it with,
    /// its replies on other tickets (kept as unproven), the files kept for its e-mail
    /// replies, its inbound mails' sender and its place in the per-address limits.
    async fn erase_mailbox_elsewhere(
        tx: &mut Transaction<'static, D>,
        mailbox: &str,
        patterns: &[String],
    ) -> StoreResult<ErasedElsewhere> {
        let of_mailbox =
            |address: &str| EmailAddress::parse(address).is_ok_and(|e| e.mailbox() == mailbox);
        let mut rows = 0;
        for pattern in patterns {
            let mails: Vec<(i64, String)> = sqlx::query_as(
                // (Not the confirmation of an erasure: it is that address's last mail.)
                "SELECT id, recipient FROM outbox
                  WHERE ticket_id IS NULL AND kind <> 'erasure_confirmed' AND lower(recipient) LIKE $1",
            )
            .bind(pattern.as_str())
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            for (id, _) in mails.iter().filter(|(_, to)| of_mailbox(to)) {
                rows += sqlx::query(
                    "UPDATE outbox SET recipient = $2, subject = '', body_text = '', body_html = '',
                            attachment = NULL, attachment_name = NULL, last_error = NULL,
                            in_reply_to = NULL,
                            status = CASE WHEN status = 'pending' THEN 'dead' ELSE status END
                      WHERE id = $1",
                )
                .bind(*id)
                .bind(ERASED_EMAIL)
                .execute(&mut **tx)
                .await
                .map_err(db)?
                .rows_affected();
            }
            // Customers' and strangers' messages only: an agent's answer names the agent.
            let messages: Vec<(i64, i64, String)> = sqlx::query_as(
                "SELECT id, ticket_id, sender FROM ticket_messages
                  WHERE lower(sender) LIKE $1 AND author IN ('customer', 'stranger')",
            )
            .bind(pattern.as_str())
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            for (id, ticket, sender) in messages.iter().filter(|(_, _, from)| of_mailbox(from)) {
                rows += sqlx::query("DELETE FROM ticket_messages WHERE id = $1")
                    .bind(*id)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
                sqlx::query(
                    "UPDATE ticket_events SET actor = '(erased)', detail = ''
                      WHERE ticket_id = $1 AND actor = $2",
                )
                .bind(*ticket)
                .bind(format!("{sender} (not proven)"))
                .execute(&mut **tx)
                .await
                .map_err(db)?;
            }
        }
        let kept: Vec<String> = sqlx::query_scalar(
            "SELECT k.blob FROM inbound_kept k JOIN inbound_mails m ON m.message_id = k.message_id
              WHERE m.sender = $1",
        )
        .bind(mailbox)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        rows += sqlx::query(
            "DELETE FROM inbound_kept WHERE message_id IN
                (SELECT message_id FROM inbound_mails WHERE sender = $1)",
        )
        .bind(mailbox)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
        rows += sqlx::query("UPDATE inbound_mails SET sender = $1 WHERE sender = $2")
            .bind(ERASED_EMAIL)
            .bind(mailbox)
            .execute(&mut **tx)
            .await
            .map_err(db)?
            .rows_affected();
        rows += sqlx::query("DELETE FROM intake_hits WHERE lower(key) = $1")
            .bind(mailbox)
            .execute(&mut **tx)
            .await
            .map_err(db)?
            .rows_affected();
        tracing::debug!(rows, "an erased mailbox's rows outside its tickets");
        Ok(ErasedElsewhere { blobs: kept })
    }
}

#[async_trait]
impl<D: Dialect> RetentionStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> bool: Value<'q, D>,
    for<'q> Vec<u8>: Value<'q, D>,
    for<'q> Option<String>: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    for<'q> &'q [u8]: Param<'q, D>,
    for<'q> Option<i64>: Param<'q, D>,
    for<'q> Option<String>: Param<'q, D>,
    for<'q> Option<&'q str>: Param<'q, D>,
    for<'q> Option<&'q [u8]>: Param<'q, D>,
    usize: ColumnIndex<D::Row>,
    for<'r> &'r str: ColumnIndex<D::Row>,
{
    async fn remove_evidence_decided_before(
        &self,
        decided_before: Timestamp,
        days: u32,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<RemovedEvidence>> {
        let mut tx = self.write().await?;
        let due = Self::due(&mut tx, EVIDENCE_DUE, decided_before, limit).await?;
        let detail = format!(
            "label photo, its previews, earlier photos and the export deleted, {days} days after the decision"
        );
        let mut removed = Vec::with_capacity(due.len());
        let mut audits = Vec::with_capacity(due.len());
        for (id, number) in due {
            let ticket = TicketId(id);
            let blobs = Self::evidence_blobs(&mut tx, ticket).await?;
            // The condition again: a replica's run that took the same ticket at once
            // (PostgreSQL) finds it done and leaves it.
            let done = sqlx::query(
                "UPDATE tickets SET label_blob = '', export_blob = '', export_bytes = NULL,
                                    evidence_removed_at = $2
                  WHERE id = $1 AND evidence_removed_at IS NULL
                    AND status IN ('approved', 'rejected', 'superseded')",
            )
            .bind(ticket)
            .bind(now.unix_seconds())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() != 1 {
                continue;
            }
            for statement in [
                "DELETE FROM earlier_photos WHERE ticket_id = $1",
                "UPDATE evidence_jobs SET label_blob = '', preview_blob = NULL, thumbnail_blob = NULL
                  WHERE ticket_id = $1",
                "UPDATE ticket_views SET label_blob = '' WHERE ticket_id = $1",
            ] {
                sqlx::query(statement)
                    .bind(ticket)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            Self::event(
                &mut tx,
                ticket,
                now,
                ACTOR,
                &TicketEventKind::EvidenceRemoved,
                &detail,
            )
            .await?;
            audits.push((Some(id), detail.clone()));
            removed.push(RemovedEvidence {
                ticket: TicketNumber::parse(&number)
                    .map_err(|_| rows::corrupt("ticket number", &number))?,
                blobs,
            });
        }
        Self::append_audits(&mut tx, now, ACTOR, "evidence_removed", &audits).await?;
        tx.commit().await.map_err(db)?;
        Ok(removed)
    }

    async fn remove_customer_details_decided_before(
        &self,
        decided_before: Timestamp,
        days: u32,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<TicketNumber>> {
        let mut tx = self.write().await?;
        let due = Self::due(&mut tx, CUSTOMER_DUE, decided_before, limit).await?;
        let detail = format!(
            "the customer's name, phone and company deleted, {days} days after the decision"
        );
        let mut removed = Vec::with_capacity(due.len());
        let mut audits = Vec::with_capacity(due.len());
        for (id, number) in due {
            let ticket = TicketId(id);
            let number = TicketNumber::parse(&number)
                .map_err(|_| rows::corrupt("ticket number", &number))?;
            let email: String =
                sqlx::query_scalar("SELECT customer_email FROM tickets WHERE id = $1")
                    .bind(ticket)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
            // A search by the name finds the ticket no more.
            let search_text =
                Self::search_text_without_name(&mut tx, ticket, &number, &email).await?;
            let done = sqlx::query(
                "UPDATE tickets SET customer_name = $2, customer_phone = NULL,
                                    customer_company = NULL, search_text = $3,
                                    customer_removed_at = $4
                  WHERE id = $1 AND customer_removed_at IS NULL
                    AND status IN ('approved', 'rejected', 'superseded')",
            )
            .bind(ticket)
            .bind(REMOVED_NAME)
            .bind(search_text.as_str())
            .bind(now.unix_seconds())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() != 1 {
                continue;
            }
            Self::event(
                &mut tx,
                ticket,
                now,
                ACTOR,
                &TicketEventKind::CustomerDetailsRemoved,
                &detail,
            )
            .await?;
            audits.push((Some(id), detail.clone()));
            removed.push(number);
        }
        Self::append_audits(&mut tx, now, ACTOR, "customer_details_removed", &audits).await?;
        tx.commit().await.map_err(db)?;
        Ok(removed)
    }

    async fn customer_addresses(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT customer_email FROM tickets WHERE erased_at IS NULL ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn customer_tickets(
        &self,
        email: &EmailAddress,
    ) -> StoreResult<Vec<(TicketNumber, TicketStatus)>> {
        let mailbox = email.mailbox();
        let mut tickets = Vec::new();
        for pattern in domain_patterns(email) {
            let found: Vec<(i64, String, String, String, i64)> = sqlx::query_as(TICKETS_OF_DOMAIN)
                .bind(pattern)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
            for (_, number, status) in of_mailbox(found, &mailbox, None) {
                tickets.push((
                    TicketNumber::parse(&number)
                        .map_err(|_| rows::corrupt("ticket number", &number))?,
                    TicketStatus::parse(&status).ok_or_else(|| rows::corrupt("status", &status))?,
                ));
            }
        }
        Ok(tickets)
    }

    async fn erase_customer(&self, request: &ErasureRequest<'_>) -> StoreResult<ErasureOutcome> {
        let mailbox = request.email.mailbox();
        let patterns = domain_patterns(request.email);
        let mut tx = self.write().await?;
        let mut tickets: Vec<(i64, String, String)> = Vec::new();
        for pattern in &patterns {
            let found: Vec<(i64, String, String, String, i64)> = sqlx::query_as(TICKETS_OF_DOMAIN)
                .bind(pattern)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            tickets.extend(of_mailbox(found, &mailbox, request.created_before));
        }
        let parse = |number: &str| {
            TicketNumber::parse(number).map_err(|_| rows::corrupt("ticket number", number))
        };
        let pending: Vec<TicketNumber> = tickets
            .iter()
            .filter(|(_, _, status)| status == "open" || status == "awaiting_photo")
            .map(|(_, number, _)| parse(number))
            .collect::<Result<_, _>>()?;
        if !pending.is_empty() {
            return Ok(ErasureOutcome::Pending(pending));
        }
        // The newest ticket's address as the customer wrote it, and its language: where
        // and how the confirmation goes.
        let newest = match tickets.iter().map(|(id, _, _)| *id).max() {
            Some(id) => Some(
                sqlx::query_as::<_, (String, String)>(
                    "SELECT customer_email, customer_language FROM tickets WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?,
            ),
            None => None,
        };
        let now = request.at;
        let mut numbers = Vec::with_capacity(tickets.len());
        let mut blobs = Vec::new();
        let mut erased_entries: Vec<i64> = Vec::new();
        for (id, number, _) in &tickets {
            let ticket = TicketId(*id);
            let number = parse(number)?;
            blobs.extend(Self::evidence_blobs(&mut tx, ticket).await?);
            let search_text =
                Self::search_text_without_name(&mut tx, ticket, &number, ERASED_EMAIL).await?;
            // The status again: on PostgreSQL a reply reopening the ticket at this moment
            // commits first or waits; either way a pending ticket is never erased.
            let done = sqlx::query(
                "UPDATE tickets SET customer_name = $2, customer_email = $3, customer_phone = NULL,
                                    customer_company = NULL, purchase_channel = NULL,
                                    decision_reason = NULL,
                                    label_blob = '', export_blob = '', export_bytes = NULL,
                                    search_text = $4, erased_at = $5,
                                    evidence_removed_at = COALESCE(evidence_removed_at, $5),
                                    customer_removed_at = COALESCE(customer_removed_at, $5)
                  WHERE id = $1 AND erased_at IS NULL
                    AND status NOT IN ('open', 'awaiting_photo')",
            )
            .bind(ticket)
            .bind(REMOVED_NAME)
            .bind(ERASED_EMAIL)
            .bind(search_text.as_str())
            .bind(now.unix_seconds())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() != 1 {
                // Dropped: the transaction rolls back, nothing is erased.
                return Ok(ErasureOutcome::Pending(vec![number]));
            }
            erased_entries.extend(
                sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM audit_log WHERE ticket_id = $1 AND commitment IS NOT NULL ORDER BY id",
                )
                .bind(ticket)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?,
            );
            for statement in ERASE_AROUND_TICKET {
                sqlx::query(statement)
                    .bind(ticket)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            for statement in ERASE_ADDRESSED_AROUND_TICKET {
                sqlx::query(statement)
                    .bind(ticket)
                    .bind(ERASED_EMAIL)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            numbers.push(number);
        }
        // An erasure is of a customer of the desk: an address with no ticket (mistyped,
        // or a console user's) erases nothing at all.
        if numbers.is_empty() {
            return Ok(ErasureOutcome::NoTickets);
        }
        // Re-applied after a restore (`created_before`), only the tickets: what the
        // mailbox wrote since the erasure is the customer's again.
        if request.created_before.is_none() {
            let elsewhere = Self::erase_mailbox_elsewhere(&mut tx, &mailbox, &patterns).await?;
            blobs.extend(elsewhere.blobs);
        }
        for &statement in D::FORGET_ERASED_SEARCH_TERMS {
            sqlx::query(statement).execute(&mut *tx).await.map_err(db)?;
        }
        let detail = format!("the customer's data erased on request: {}", request.reason);
        let mut audits = Vec::with_capacity(numbers.len());
        for (id, _, _) in &tickets {
            Self::event(
                &mut tx,
                TicketId(*id),
                now,
                request.by,
                &TicketEventKind::CustomerErased,
                &detail,
            )
            .await?;
            audits.push((Some(*id), detail.clone()));
        }
        Self::append_audits(&mut tx, now, request.by, "customer_erased", &audits).await?;
        // Hashed as written, never erasable: the verifier accepts an entry without its
        // words only when an entry like this one names it (docs/AUDIT.md).
        let shown: Vec<&str> = numbers.iter().map(TicketNumber::as_str).collect();
        let ids: Vec<String> = erased_entries.iter().map(i64::to_string).collect();
        let record = format!(
            "tickets {}: the words of entries {} erased with their customer",
            if shown.is_empty() {
                "(none)".to_owned()
            } else {
                shown.join(", ")
            },
            ids.join(", ")
        );
        let sealed = format!(
            "{record}{}{}",
            crate::audit::chain::SEAL_MARK,
            (request.seal)(&record)
        );
        Self::append_audits(
            &mut tx,
            now,
            request.by,
            crate::audit::ERASURE_ACTION,
            &[(None, sealed)],
        )
        .await?;
        let (address, language) = match &newest {
            Some((address, language)) => (
                EmailAddress::parse(address).unwrap_or_else(|_| request.email.clone()),
                crate::i18n::Lang::parse(language).unwrap_or_default(),
            ),
            None => (request.email.clone(), crate::i18n::Lang::default()),
        };
        if let Some(mail) = (request.confirmation)(&address, language, &numbers) {
            Self::enqueue(&mut tx, None, &mail, now).await?;
        }
        tx.commit().await.map_err(db)?;
        blobs.sort();
        blobs.dedup();
        Ok(ErasureOutcome::Erased {
            tickets: numbers,
            blobs,
        })
    }
}

/// What a ticket's customer name reads once deleted: a name must not be empty, and a
/// dash reads as "nothing" in every language the desk speaks.
pub(crate) const REMOVED_NAME: &str = "—";

/// The statements that take a ticket's personal data out of the rows around it, each
/// bound to the ticket's id as `$1`.
const ERASE_AROUND_TICKET: [&str; 11] = [
    "DELETE FROM earlier_photos WHERE ticket_id = $1",
    "UPDATE evidence_jobs SET label_blob = '', preview_blob = NULL, thumbnail_blob = NULL,
            last_error = NULL WHERE ticket_id = $1",
    "UPDATE ticket_views SET label_blob = '' WHERE ticket_id = $1",
    "UPDATE ticket_devices SET reserved_email = NULL WHERE ticket_id = $1",
    "DELETE FROM ticket_messages WHERE ticket_id = $1",
    "DELETE FROM access_codes WHERE ticket_id = $1",
    // Free texts agents wrote about the customer.
    "UPDATE approvals SET note = '' WHERE ticket_id = $1",
    "UPDATE automatic_decisions SET suspicious_note = NULL WHERE ticket_id = $1",
    // The history keeps what happened and when, not the words (customers' messages,
    // addresses, agents' answers and notes), nor a customer as its actor.
    "UPDATE ticket_events SET detail = '',
            actor = CASE WHEN actor IN (SELECT email FROM users)
                           OR actor IN ('system', 'mailer', 'retention', 'cli', 'customer')
                         THEN actor ELSE '(erased)' END
      WHERE ticket_id = $1",
    // The audit log's words of the ticket and the salt they were committed under: the
    // chain keeps the commitments, and verifies (docs/AUDIT.md).
    "DELETE FROM audit_details WHERE entry_id IN (SELECT id FROM audit_log WHERE ticket_id = $1)",
    "DELETE FROM audit_salts WHERE ticket_id = $1",
];

/// The same, for rows that also name the address: `$2` is [`ERASED_EMAIL`].
const ERASE_ADDRESSED_AROUND_TICKET: [&str; 2] = [
    "UPDATE outbox SET recipient = $2, subject = '', body_text = '', body_html = '',
            attachment = NULL, attachment_name = NULL, last_error = NULL, in_reply_to = NULL,
            status = CASE WHEN status = 'pending' THEN 'dead' ELSE status END
      WHERE ticket_id = $1",
    "UPDATE automatic_decisions SET recipient = $2, recipient_mailbox = $2 WHERE ticket_id = $1",
];
