//! What the customer does after submitting: a new label photo, one-time codes for the
//! response, feedback, a status link sent again, and a corrected address.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db};
use crate::domain::{EmailAddress, TicketNumber, TicketSearchText, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows;
use crate::store::{
    AddressChange, AddressChangeOutcome, AddressChanger, CodeCheck, Conflict, CustomerStore,
    NewAccessCode, NewMail, NewTicketMessage, ReplyOutcome, StoreError, StoreResult,
    TicketEventKind, TicketId,
};

/// The lock namespace of a ticket's one-time codes ("RDAC"), keyed by the ticket's id.
const ACCESS_CODE_LOCK: i32 = 0x5244_4143;

#[async_trait]
impl<D: Dialect> CustomerStore for SqlStore<D>
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
    async fn replace_label_photo(
        &self,
        ticket_id: TicketId,
        blob: &str,
        media_type: &str,
        now: Timestamp,
    ) -> StoreResult<String> {
        let mut tx = self.write().await?;
        let old: Option<(String, String)> = sqlx::query_as(
            "SELECT label_blob, label_media_type FROM tickets WHERE id = $1 AND status = 'awaiting_photo'",
        )
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((old, old_media_type)) = old else {
            return Err(StoreError::Conflict(Conflict::NotAwaitingPhoto));
        };
        // Conditional on what was read: on PostgreSQL the SELECT above takes no lock, and
        // a reject or a supersede committed since must not be undone by this photo (an
        // update by id alone put rejected tickets back in the queue), nor may two uploads
        // at once both win. The UPDATE waits for such a writer and then finds nothing to
        // change.
        let updated = sqlx::query(
            "UPDATE tickets SET label_blob = $1, label_media_type = $2, status = 'open', updated_at = $3,
                                evidence_version = evidence_version + 1
             WHERE id = $4 AND status = 'awaiting_photo' AND label_blob = $5",
        )
        .bind(blob)
        .bind(media_type)
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(&old)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            // Back in the queue with another photo: a second upload that crossed this one.
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
                    .bind(ticket_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if status.as_deref() == Some("open") {
                return Err(StoreError::PhotoCrossed);
            }
            return Err(StoreError::Conflict(Conflict::NotAwaitingPhoto));
        }
        Self::event(
            &mut tx,
            ticket_id,
            now,
            "customer",
            &TicketEventKind::PhotoReplaced,
            "",
        )
        .await?;
        Self::enqueue_evidence_job(&mut tx, ticket_id, blob, now).await?;
        // Kept for the agent to compare (and named here, so the sweeper keeps it).
        sqlx::query(
            "INSERT INTO earlier_photos (ticket_id, blob, media_type, replaced_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (ticket_id, blob) DO NOTHING",
        )
        .bind(ticket_id)
        .bind(&old)
        .bind(&old_media_type)
        .bind(now.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Approvals given on the old photo judged evidence that is gone.
        let withdrawn = sqlx::query("DELETE FROM approvals WHERE ticket_id = $1")
            .bind(ticket_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if withdrawn > 0 {
            let note =
                format!("{withdrawn} approval(s) withdrawn: they were given on the previous photo");
            Self::event(
                &mut tx,
                ticket_id,
                now,
                "system",
                &TicketEventKind::ApprovalsWithdrawn,
                &note,
            )
            .await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(old)
    }

    async fn issue_access_code(&self, code: &NewAccessCode, max_per_hour: i64) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let now = code.now.unix_seconds();
        // Counted, replaced and stored under the ticket's code lock: without it, under
        // READ COMMITTED, requests at the same instant on PostgreSQL each counted the
        // same free places and none saw the others' codes to retire them (30 requests
        // over 3 replicas issued 19 codes, 15 of them live at once).
        D::lock_bucket(&mut tx, ACCESS_CODE_LOCK, &code.ticket_id.0.to_string()).await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM access_codes WHERE ticket_id = $1 AND created_at > $2",
        )
        .bind(code.ticket_id)
        .bind(now - 3600)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if recent >= max_per_hour {
            return Err(StoreError::Conflict(Conflict::TooManyCodes { recent }));
        }
        // Only the newest code works: an older one still in the customer's inbox dies.
        // Marked with expiry 0, not this desk's `now`: replicas' clocks differ by a second
        // or so, and a code expired at one replica's now stayed live for a replica whose
        // clock runs behind it, beside its successor.
        sqlx::query(
            "UPDATE access_codes SET expires_at = 0 WHERE ticket_id = $1 AND used_at IS NULL AND expires_at > 0",
        )
        .bind(code.ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "INSERT INTO access_codes (ticket_id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(code.ticket_id)
        .bind(&code.code_hash)
        .bind(now)
        .bind(code.expires_at.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Self::event(
            &mut tx,
            code.ticket_id,
            code.now,
            "customer",
            &TicketEventKind::CodeSent,
            "a one-time code to see the response on the status page",
        )
        .await?;
        Self::append_audit(
            &mut tx,
            code.now,
            "customer",
            "response.code_sent",
            Some(code.ticket_id),
            "",
        )
        .await?;
        Self::enqueue(&mut tx, Some(code.ticket_id), &code.mail, code.now).await?;
        tx.commit().await.map_err(db)
    }

    async fn redeem_access_code(
        &self,
        ticket_id: TicketId,
        code_hash: &str,
        now: Timestamp,
        max_attempts: i64,
    ) -> StoreResult<CodeCheck> {
        let mut tx = self.write().await?;
        // Every check spends a try before the comparison, in one statement, so however
        // many guesses arrive at once no code is compared more than `max_attempts` times.
        // The outer condition repeats the subquery's: PostgreSQL re-checks only the outer
        // one on a row a concurrent request changed, which must not revive a used code.
        let live: Option<(i64, String, i64)> = sqlx::query_as(
            "UPDATE access_codes SET attempts = attempts + 1
             WHERE id = (SELECT id FROM access_codes
                         WHERE ticket_id = $1 AND used_at IS NULL AND expires_at > $2
                         ORDER BY id DESC LIMIT 1)
               AND used_at IS NULL AND expires_at > $2 AND attempts < $3
             RETURNING id, code_hash, attempts",
        )
        .bind(ticket_id)
        .bind(now.unix_seconds())
        .bind(max_attempts)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((code_id, stored_hash, attempts)) = live else {
            return Ok(CodeCheck::NoLiveCode);
        };
        if !crate::crypto::constant_time_eq(stored_hash.as_bytes(), code_hash.as_bytes()) {
            if attempts >= max_attempts {
                Self::event(
                    &mut tx,
                    ticket_id,
                    now,
                    "customer",
                    &TicketEventKind::CodeLocked,
                    "too many wrong codes",
                )
                .await?;
            }
            tx.commit().await.map_err(db)?;
            return Ok(CodeCheck::Wrong {
                attempts_left: max_attempts - attempts,
            });
        }
        sqlx::query("UPDATE access_codes SET used_at = $1 WHERE id = $2")
            .bind(now.unix_seconds())
            .bind(code_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::event(
            &mut tx,
            ticket_id,
            now,
            "customer",
            &TicketEventKind::ResponseShown,
            "on the status page, after a one-time code",
        )
        .await?;
        Self::append_audit(
            &mut tx,
            now,
            "customer",
            "response.shown",
            Some(ticket_id),
            "status page, one-time code",
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(CodeCheck::Accepted)
    }

    async fn record_feedback(
        &self,
        ticket_id: TicketId,
        detail: &str,
        max_per_ticket: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        Self::customer_says(
            &mut tx,
            ticket_id,
            &TicketEventKind::CustomerFeedback,
            detail,
            max_per_ticket,
            now,
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn record_reply(
        &self,
        ticket_id: TicketId,
        message: &NewTicketMessage,
        max_per_ticket: i64,
        now: Timestamp,
    ) -> StoreResult<ReplyOutcome> {
        let mut tx = self.write().await?;
        // Locks the ticket's row on PostgreSQL: a decision and a reply at once see each
        // other's outcome.
        let status: Option<String> = sqlx::query_scalar(D::TICKET_STATUS_FOR_DECISION)
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(status) = status else {
            return Err(StoreError::NotFound);
        };
        Self::customer_says(
            &mut tx,
            ticket_id,
            &TicketEventKind::CustomerReply,
            &message.body,
            max_per_ticket,
            now,
        )
        .await?;
        if !Self::insert_message(&mut tx, ticket_id, message, now).await? {
            // This e-mail was recorded before (a retry after a crash): nothing more.
            return Ok(ReplyOutcome::Noted);
        }
        if status != "rejected" {
            tx.commit().await.map_err(db)?;
            return Ok(ReplyOutcome::Noted);
        }
        // A rejected request goes back for review only while it can still be answered:
        // its export alive, and no newer request pending for any of its devices (one
        // pending ticket a device, as superseding keeps it).
        // A ticket whose photo and export are gone (retention, or an erasure) has no
        // evidence left to review: never reopened.
        let (expires_at, evidence_removed_at): (i64, Option<i64>) = sqlx::query_as(
            "SELECT export_expires_at, evidence_removed_at FROM tickets WHERE id = $1",
        )
        .bind(ticket_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let newer: Option<i64> = sqlx::query_scalar(
            "SELECT o.ticket_id FROM ticket_devices d
             JOIN ticket_devices o ON o.serial = d.serial AND o.ticket_id > d.ticket_id
             JOIN tickets t ON t.id = o.ticket_id AND t.status IN ('open', 'awaiting_photo', 'approved')
             WHERE d.ticket_id = $1 LIMIT 1",
        )
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if expires_at <= now.unix_seconds() || newer.is_some() || evidence_removed_at.is_some() {
            tx.commit().await.map_err(db)?;
            return Ok(ReplyOutcome::TooLateToReopen);
        }
        // Back as a new review: the rejection's decision, any approval given before it
        // and the claim are gone, and a page opened before is stale. Otherwise one more
        // approval could sign what two people were asked for and one refused.
        let withdrawn = sqlx::query("DELETE FROM approvals WHERE ticket_id = $1")
            .bind(ticket_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        // The evidence again: on PostgreSQL an erasure committing since the read above
        // leaves nothing to review, and the ticket rejected (dropping `tx` undoes the
        // withdrawal above).
        let reopened = sqlx::query(
            "UPDATE tickets SET status = 'open', updated_at = $1, decided_by = NULL, decided_at = NULL,
                                decision_reason = NULL, claimed_by = NULL, claimed_at = NULL,
                                evidence_version = evidence_version + 1
             WHERE id = $2 AND status = 'rejected' AND evidence_removed_at IS NULL
               AND erased_at IS NULL",
        )
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if reopened.rows_affected() != 1 {
            return Ok(ReplyOutcome::TooLateToReopen);
        }
        let detail = if withdrawn > 0 {
            format!(
                "the customer replied to the rejection: back in the queue for review; {withdrawn} earlier approval(s) withdrawn"
            )
        } else {
            "the customer replied to the rejection: back in the queue for review".to_owned()
        };
        Self::event(
            &mut tx,
            ticket_id,
            now,
            "customer",
            &TicketEventKind::Reopened,
            &detail,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            now,
            "customer",
            "ticket.reopened",
            Some(ticket_id),
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(ReplyOutcome::Reopened)
    }

    async fn resend_status_link(
        &self,
        ticket_id: TicketId,
        other: &EmailAddress,
        mail: &NewMail,
        now: Timestamp,
        interval_secs: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // One statement decides: on PostgreSQL a second replica's update waits for this
        // one's row lock and then re-checks the condition against the new time.
        let updated = sqlx::query(
            "UPDATE tickets SET link_resent_at = $1
             WHERE id = $2 AND customer_email = $3
               AND (link_resent_at IS NULL OR link_resent_at <= $4)",
        )
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(mail.recipient.as_str())
        .bind(now.unix_seconds() - interval_secs)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        let detail = format!(
            "the same export came in again from another address ({other}); its status link went again to {} only",
            mail.recipient
        );
        Self::event(
            &mut tx,
            ticket_id,
            now,
            "customer",
            &TicketEventKind::LinkResent,
            &detail,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            now,
            "customer",
            "status_link.resent",
            Some(ticket_id),
            &detail,
        )
        .await?;
        Self::enqueue(&mut tx, Some(ticket_id), mail, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn change_customer_email(
        &self,
        change: &AddressChange,
    ) -> StoreResult<AddressChangeOutcome> {
        let mut tx = self.write().await?;
        // Locks the ticket row on PostgreSQL (as a first approval does), so what is read
        // below cannot change before the update: an approval either came first and is
        // counted, or comes after and finds the new address.
        let status: Option<String> = sqlx::query_scalar(D::TICKET_STATUS_FOR_DECISION)
            .bind(change.ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(status) = status else {
            return Err(StoreError::NotFound);
        };
        if !matches!(status.as_str(), "open" | "awaiting_photo") {
            return Ok(AddressChangeOutcome::NotPending);
        }
        let (current, flags, number, name): (String, String, String, String) = sqlx::query_as(
            "SELECT customer_email, flags, number, customer_name FROM tickets WHERE id = $1",
        )
        .bind(change.ticket_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if current != change.from.as_str() {
            return Ok(AddressChangeOutcome::ChangedMeanwhile);
        }
        let approvals: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE ticket_id = $1")
                .bind(change.ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let (actor, flags) = match &change.by {
            AddressChanger::Customer {
                max_changes,
                flags: new_flags,
            } => {
                if approvals > 0 {
                    return Ok(AddressChangeOutcome::Approved);
                }
                let earlier: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM ticket_events
                     WHERE ticket_id = $1 AND kind = 'address_corrected' AND actor = 'customer'",
                )
                .bind(change.ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                if earlier >= *max_changes {
                    return Ok(AddressChangeOutcome::TooMany);
                }
                let mut list = rows::flags_list(&flags);
                list.extend(
                    new_flags
                        .iter()
                        .filter(|f| !list.contains(f))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
                ("customer".to_owned(), rows::flags_text(&list))
            }
            AddressChanger::Agent { by, flag, .. } => {
                let mut list = rows::flags_list(&flags);
                list.push(flag.clone());
                (
                    Self::user_email(&mut tx, *by).await?,
                    rows::flags_text(&list),
                )
            }
        };
        // A search by the new address finds the ticket; one by the old address does not.
        let serials: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM ticket_devices WHERE ticket_id = $1 ORDER BY position",
        )
        .bind(change.ticket_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let number =
            TicketNumber::parse(&number).map_err(|_| rows::corrupt("ticket number", number))?;
        let search_text = TicketSearchText::of(
            &number,
            &name,
            change.to.as_str(),
            serials.iter().map(String::as_str),
        );
        sqlx::query(
            // A shortened review was for the same customer's repeat: not this one's.
            // The address is evidence too: a decision made on a page that showed the old
            // one is refused as stale ("the ticket changed since you opened it").
            "UPDATE tickets SET customer_email = $1, flags = $2, updated_at = $3, repeat_of = NULL,
                                evidence_version = evidence_version + 1, search_text = $5
              WHERE id = $4",
        )
        .bind(change.to.as_str())
        .bind(&flags)
        .bind(change.at.unix_seconds())
        .bind(change.ticket_id)
        .bind(search_text.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let mut detail = format!("from {} to {}", change.from, change.to);
        let mut withdrawn = 0;
        if let AddressChanger::Agent { notice, .. } = &change.by {
            // The approvals were given for a response going to the old address.
            withdrawn = sqlx::query("DELETE FROM approvals WHERE ticket_id = $1")
                .bind(change.ticket_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            if withdrawn > 0 {
                let note = format!(
                    "{withdrawn} approval(s) withdrawn: they were given for a response to {}",
                    change.from
                );
                Self::event(
                    &mut tx,
                    change.ticket_id,
                    change.at,
                    "system",
                    &TicketEventKind::ApprovalsWithdrawn,
                    &note,
                )
                .await?;
            }
            detail.push_str(&format!(
                "; {withdrawn} approval(s) withdrawn; the ticket now needs two approvals"
            ));
            Self::enqueue(&mut tx, Some(change.ticket_id), notice, change.at).await?;
        }
        Self::event(
            &mut tx,
            change.ticket_id,
            change.at,
            &actor,
            &TicketEventKind::AddressCorrected,
            &detail,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            change.at,
            &actor,
            "address_corrected",
            Some(change.ticket_id),
            &detail,
        )
        .await?;
        Self::enqueue(
            &mut tx,
            Some(change.ticket_id),
            &change.acknowledgment,
            change.at,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(AddressChangeOutcome::Changed {
            approvals_withdrawn: withdrawn,
        })
    }
}

impl<D: Dialect> SqlStore<D>
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
    /// Adds what the customer says (`kind`: feedback, a message) to the ticket's history
    /// in `tx`, unless it holds `max_per_ticket` of that kind already (`Conflict`): enough
    /// for every honest retry, not a spam channel.
    async fn customer_says(
        tx: &mut sqlx::Transaction<'static, D>,
        ticket_id: TicketId,
        kind: &TicketEventKind,
        detail: &str,
        max_per_ticket: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let earlier: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ticket_events WHERE ticket_id = $1 AND kind = $2",
        )
        .bind(ticket_id)
        .bind(kind.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
        if earlier >= max_per_ticket {
            return Err(StoreError::Conflict(Conflict::TooManyAnswers { earlier }));
        }
        Self::event(tx, ticket_id, now, "customer", kind, detail).await
    }
}
