//! Tickets: creating one from a submission, the queue, the ticket page, the claim, and
//! what the risk rules read about earlier tickets.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Step, Value, db, is_unique_violation};
use crate::domain::{EmailAddress, TicketNumber, TicketSearchText, TicketStatus, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows::{
    self, DeviceRow, EventRow, MailStatusRow, ResponseRow, SummaryRow, TicketRow, hex,
};
use crate::store::write_lane::Abandoned;
use crate::store::{
    Conflict, CreateOutcome, EarlierPhoto, NewMail, NewTicket, QueueFilter, QueueMarks, QueueOrder,
    StoreError, StoreResult, StoredExport, TicketDetail, TicketEventKind, TicketId, TicketStore,
    TicketSummary, TicketView, UserId,
};

// The queue, oldest first, a page at a time after a (created_at, id) cursor. The hot
// case (one status, no search) walks the (status, created_at, id) index and never sorts,
// so a page costs the same at a thousand or a million tickets; a test checks the plan.
pub(in crate::store) const QUEUE_BY_STATUS: &str = concat!(
    summary_select!(),
    "WHERE t.status = $1 AND (t.created_at, t.id) > ($2, $3) ORDER BY t.created_at, t.id LIMIT $4"
);

// A pending status in the order agents work it: the export that dies first, first,
// walking the (status, export_expires_at, id) index (migration 0020) without a sort.
pub(in crate::store) const QUEUE_BY_DEADLINE: &str = concat!(
    summary_select!(),
    "WHERE t.status = $1 AND (t.export_expires_at, t.id) > ($2, $3)
     ORDER BY t.export_expires_at, t.id LIMIT $4"
);

const QUEUE_ALL: &str = concat!(
    summary_select!(),
    "WHERE (t.created_at, t.id) > ($1, $2) ORDER BY t.created_at, t.id LIMIT $3"
);

const SUMMARY_BY_ID: &str = concat!(summary_select!(), "WHERE t.id = $1");

// A ticket's mail, for its page: through outbox_by_ticket (migration 0002), as sent
// mail is kept and the outbox grows with every ticket; a test checks the plan.
pub(in crate::store) const MAILS_OF_TICKET: &str = "SELECT id, kind, status, attempts, last_error, sent_at FROM outbox WHERE ticket_id = $1 ORDER BY id";

#[async_trait]
impl<D: Dialect> TicketStore for SqlStore<D>
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
    /// On the write lane: every public upload makes one. A ticket whose client hung up
    /// is still stored, and acknowledged by its mail.
    async fn create_ticket(
        &self,
        ticket: &NewTicket,
        acknowledgment: &NewMail,
    ) -> StoreResult<CreateOutcome> {
        let (owned, acknowledgment) = (ticket.clone(), acknowledgment.clone());
        let stored = self
            .in_write_transaction(Abandoned::Finish, move |tx| {
                Box::pin(async move { Self::insert_ticket(tx, &owned, &acknowledgment).await })
            })
            .await;
        match stored {
            // Two identical submissions raced and the other one won (only possible where
            // writers run concurrently): the challenge now has its ticket. Asked after
            // the transaction, which on SQLite holds the one writing connection.
            Err(StoreError::Conflict(Conflict::SameChallenge)) => {
                let number = self
                    .ticket_of_challenge(&ticket.devices[0])
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok(CreateOutcome::Existing { number })
            }
            other => other,
        }
    }

    async fn ticket_of_challenge(
        &self,
        device: &crate::protocol::DeviceChallenge,
    ) -> StoreResult<Option<TicketNumber>> {
        // From the writer: a replica must see the commit it is asking about.
        let number: Option<String> = sqlx::query_scalar(
            "SELECT t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
             WHERE d.serial = $1 AND d.nonce = $2",
        )
        .bind(device.identity.serial.as_str())
        .bind(hex(&device.nonce.0))
        .fetch_optional(self.writer())
        .await
        .map_err(db)?;
        number
            .map(|n| TicketNumber::parse(&n).map_err(|_| rows::corrupt("ticket number", n)))
            .transpose()
    }

    async fn tickets(&self, filter: &QueueFilter) -> StoreResult<Vec<TicketSummary>> {
        let (after_time, after_id) = filter
            .after
            .map_or((-1, 0), |c| (c.at.unix_seconds(), c.id.0));
        let limit = filter.limit.clamp(1, 500);
        let query = match (&filter.search, filter.status, filter.order_applied()) {
            (None, _, _) if filter.awaiting_second_approval => {
                sqlx::query_as(D::QUEUE_AWAITING_SECOND)
                    .bind(after_time)
                    .bind(after_id)
                    .bind(limit)
            }
            (Some(search), status, _) => sqlx::query_as(D::QUEUE_SEARCH)
                .bind(status.map(TicketStatus::as_str))
                .bind(D::search_pattern(search))
                .bind(filter.after.map(|c| c.id.0))
                .bind(limit)
                .bind(D::search_check(search))
                // Planned for this very pattern: a common one and a rare one want
                // different plans on PostgreSQL.
                .persistent(false),
            (None, Some(status), QueueOrder::Deadline) => sqlx::query_as(QUEUE_BY_DEADLINE)
                .bind(status.as_str())
                .bind(after_time)
                .bind(after_id)
                .bind(limit),
            (None, Some(status), _) => sqlx::query_as(QUEUE_BY_STATUS)
                .bind(status.as_str())
                .bind(after_time)
                .bind(after_id)
                .bind(limit),
            (None, None, _) => sqlx::query_as(QUEUE_ALL)
                .bind(after_time)
                .bind(after_id)
                .bind(limit),
        };
        let rows: Vec<SummaryRow> = query.fetch_all(&self.pool).await.map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn ticket_export(&self, number: &TicketNumber) -> StoreResult<StoredExport> {
        let (blob, bytes, removed_at): (String, Option<Vec<u8>>, Option<i64>) = sqlx::query_as(
            "SELECT export_blob, export_bytes, evidence_removed_at FROM tickets WHERE number = $1",
        )
        .bind(number.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
        Ok(match (removed_at, bytes) {
            (Some(at), _) => StoredExport::Removed(rows::time(at)?),
            (None, Some(bytes)) => StoredExport::InRow(bytes),
            (None, None) => StoredExport::Blob(blob),
        })
    }

    async fn ticket_numbers(
        &self,
        tickets: &[TicketId],
    ) -> StoreResult<std::collections::HashMap<TicketId, TicketNumber>> {
        if tickets.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let mut select = sqlx::QueryBuilder::<D>::new("SELECT id, number FROM tickets WHERE id");
        let ids: Vec<i64> = tickets.iter().map(|t| t.0).collect();
        Self::push_in_ids(&mut select, &ids);
        let rows: Vec<(TicketId, String)> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.into_iter()
            .map(|(id, number)| {
                TicketNumber::parse(&number)
                    .map(|parsed| (id, parsed))
                    .map_err(|_| rows::corrupt("ticket number", number))
            })
            .collect()
    }

    async fn status_counts(&self) -> StoreResult<Vec<(TicketStatus, i64)>> {
        // Through the (status, created_at, id) index: no table rows are read.
        let counted: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM tickets GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        counted
            .into_iter()
            .map(|(status, count)| {
                TicketStatus::parse(&status)
                    .map(|parsed| (parsed, count))
                    .ok_or_else(|| rows::corrupt("ticket status", status))
            })
            .collect()
    }

    async fn earlier_photos(&self, ticket_id: TicketId) -> StoreResult<Vec<EarlierPhoto>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT blob, media_type, replaced_at FROM earlier_photos
             WHERE ticket_id = $1 ORDER BY replaced_at, blob",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(blob, media_type, replaced_at)| {
                Ok(EarlierPhoto {
                    blob,
                    media_type,
                    replaced_at: rows::time(replaced_at)?,
                })
            })
            .collect()
    }

    async fn last_seen(
        &self,
        ticket_id: TicketId,
        user: UserId,
    ) -> StoreResult<Option<TicketView>> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT label_blob, evidence_version, at FROM ticket_views
             WHERE ticket_id = $1 AND user_id = $2",
        )
        .bind(ticket_id)
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|(label_blob, evidence_version, at)| {
            Ok(TicketView {
                label_blob,
                evidence_version,
                at: rows::time(at)?,
            })
        })
        .transpose()
    }

    async fn mark_seen(
        &self,
        ticket_id: TicketId,
        user: UserId,
        view: &TicketView,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO ticket_views (ticket_id, user_id, label_blob, evidence_version, at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (ticket_id, user_id) DO UPDATE
             SET label_blob = excluded.label_blob, evidence_version = excluded.evidence_version,
                 at = excluded.at",
        )
        .bind(ticket_id)
        .bind(user.0)
        .bind(&view.label_blob)
        .bind(view.evidence_version)
        .bind(view.at.unix_seconds())
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn decision_seconds_since(&self, since: Timestamp, limit: i64) -> StoreResult<Vec<i64>> {
        // Through tickets_by_decided_at (migration 0024). What the desk answered alone
        // took seconds: counted, it would promise the customers agents wait for an
        // answer time no agent keeps.
        sqlx::query_scalar(
            "SELECT decided_at - created_at FROM tickets
             WHERE decided_at >= $1 AND status IN ('approved', 'rejected')
               AND NOT EXISTS (SELECT 1 FROM automatic_decisions a WHERE a.ticket_id = tickets.id)
             ORDER BY decided_at DESC LIMIT $2",
        )
        .bind(since.unix_seconds())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn awaiting_second_approval_count(&self) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM tickets WHERE status = 'open' AND first_approved_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    async fn queue_marks(
        &self,
        tickets: &[TicketId],
    ) -> StoreResult<std::collections::HashMap<TicketId, QueueMarks>> {
        let mut marks = std::collections::HashMap::<TicketId, QueueMarks>::new();
        if tickets.is_empty() {
            return Ok(marks);
        }
        let ids: Vec<i64> = tickets.iter().map(|t| t.0).collect();
        // Each through the table's key or index by ticket: its cost grows with the page.
        let mut approvals = sqlx::QueryBuilder::<D>::new(
            "SELECT ticket_id, COUNT(*) FROM approvals WHERE ticket_id",
        );
        Self::push_in_ids(&mut approvals, &ids);
        approvals.push(" GROUP BY ticket_id");
        let counted: Vec<(TicketId, i64)> = approvals
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        for (ticket, count) in counted {
            marks.entry(ticket).or_default().approvals = count;
        }
        let mut reported = sqlx::QueryBuilder::<D>::new(
            "SELECT DISTINCT ticket_id FROM ticket_events WHERE kind = 'customer_feedback' AND ticket_id",
        );
        Self::push_in_ids(&mut reported, &ids);
        let reported: Vec<TicketId> = reported
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        for ticket in reported {
            marks.entry(ticket).or_default().customer_reported_failure = true;
        }
        // A message with nothing after it from a person of the desk: an event whose
        // actor is a console user's address. The customer's own steps and the desk's
        // workers (the evidence worker, the mailer handing off a mail the customer asked
        // for) do not answer it.
        let mut wrote = sqlx::QueryBuilder::<D>::new(
            "SELECT DISTINCT r.ticket_id FROM ticket_events r
             WHERE r.kind = 'customer_reply'
               AND NOT EXISTS (SELECT 1 FROM ticket_events a JOIN users u ON u.email = a.actor AND u.kind = 'person'
                               WHERE a.ticket_id = r.ticket_id AND a.id > r.id)
               AND r.ticket_id",
        );
        Self::push_in_ids(&mut wrote, &ids);
        let wrote: Vec<TicketId> = wrote
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        for ticket in wrote {
            marks.entry(ticket).or_default().customer_wrote = true;
        }
        Ok(marks)
    }

    async fn ticket(&self, number: &TicketNumber) -> StoreResult<TicketDetail> {
        let row: TicketRow = sqlx::query_as(
            "SELECT t.id, t.customer_name, t.customer_email, t.customer_phone, t.customer_company,
                    t.customer_country, t.customer_role, t.purchase_channel, t.customer_language,
                    t.export_form, t.export_blob, t.label_blob, t.label_media_type, t.evidence_version, ud.email AS decided_by, t.decision_reason, s.number AS superseded_by,
                    r.number AS repeat_of, t.installer_id, t.evidence_removed_at,
                    t.customer_removed_at, t.erased_at
             FROM tickets t
             LEFT JOIN users ud ON ud.id = t.decided_by
             LEFT JOIN tickets s ON s.id = t.superseded_by
             LEFT JOIN tickets r ON r.id = t.repeat_of
             WHERE t.number = $1",
        )
        .bind(number.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
        let summary: SummaryRow = sqlx::query_as(SUMMARY_BY_ID)
            .bind(row.id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let devices: Vec<DeviceRow> = sqlx::query_as(
            "SELECT model, serial, firmware, mac_address, reserved_email, nonce, issued_at, tag,
                    export_id, exported_by
             FROM ticket_devices WHERE ticket_id = $1 ORDER BY position",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let responses: Vec<ResponseRow> = sqlx::query_as(
            "SELECT serial, nonce, key_id, expires_at, signature, export_id
             FROM responses WHERE ticket_id = $1 ORDER BY position",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let approvals: Vec<rows::ApprovalRow> = sqlx::query_as(
            "SELECT a.user_id, u.email, a.as_role, a.note, a.at FROM approvals a JOIN users u ON u.id = a.user_id
             WHERE a.ticket_id = $1 ORDER BY a.at, a.user_id",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let events: Vec<EventRow> = sqlx::query_as(
            "SELECT at, actor, kind, detail FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mails: Vec<MailStatusRow> = sqlx::query_as(MAILS_OF_TICKET)
            .bind(row.id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let messages: Vec<rows::MessageRow> = sqlx::query_as(
            "SELECT author, sender, at, body FROM ticket_messages WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(TicketDetail {
            id: TicketId(row.id),
            summary: summary.try_into()?,
            customer: row.customer()?,
            export_form: row.export_form()?,
            superseded_by: row.superseded_by()?,
            repeat_of: row.repeat_of()?,
            installer: row.installer_id.map(crate::store::InstallerId),
            devices: devices
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            approvals: approvals
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            responses: responses
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            events: events
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            mails: mails
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            evidence_removed_at: row.evidence_removed_at.map(rows::time).transpose()?,
            customer_removed_at: row.customer_removed_at.map(rows::time).transpose()?,
            erased_at: row.erased_at.map(rows::time).transpose()?,
            messages: messages
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            // Empty when the export is in the row.
            export_blob: Some(row.export_blob).filter(|name| !name.is_empty()),
            label_blob: row.label_blob,
            label_media_type: row.label_media_type,
            evidence_version: row.evidence_version,
            decided_by: row.decided_by,
            decision_reason: row.decision_reason,
        })
    }

    async fn claim(
        &self,
        ticket_id: TicketId,
        user: UserId,
        take_over: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.hand_claim(ticket_id, user, user, take_over, now).await
    }

    async fn assign(
        &self,
        ticket_id: TicketId,
        to: UserId,
        by: UserId,
        take_over: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.hand_claim(ticket_id, to, by, take_over, now).await
    }

    async fn add_note(
        &self,
        ticket_id: TicketId,
        by: UserId,
        note: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let email = Self::user_email(&mut tx, by).await?;
        Self::event(
            &mut tx,
            ticket_id,
            now,
            &email,
            &TicketEventKind::Note,
            note,
        )
        .await?;
        // The words stay in the ticket's history, which retention can clear; the audit
        // log, which nothing clears, keeps only that a note was written.
        let audited = format!("a note of {} characters", note.chars().count());
        Self::append_audit(
            &mut tx,
            now,
            &email,
            "ticket.note",
            Some(ticket_id),
            &audited,
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn approved_for_customer_since(
        &self,
        serial: &str,
        customer: &EmailAddress,
        since: Timestamp,
    ) -> StoreResult<Option<TicketNumber>> {
        let number: Option<String> = sqlx::query_scalar(
            "SELECT t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
             WHERE d.serial = $1 AND LOWER(t.customer_email) = LOWER($2) AND t.status = 'approved' AND t.decided_at >= $3
             ORDER BY t.decided_at DESC, t.id DESC LIMIT 1",
        )
        .bind(serial)
        .bind(customer.as_str())
        .bind(since.unix_seconds())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        number
            .map(|n| {
                TicketNumber::parse(&n).map_err(|_| {
                    StoreError::Other(format!("a stored ticket number is not valid: {n}").into())
                })
            })
            .transpose()
    }

    async fn serial_exported_in_v2(&self, serial: &str) -> StoreResult<bool> {
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM ticket_devices
                                    WHERE serial = $1 AND export_id IS NOT NULL LIMIT 1) AS v2",
        )
        .bind(serial)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(found > 0)
    }

    async fn exporters_of_serial_since(
        &self,
        serial: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<String>> {
        // The exporting device of a ticket is its first entry (position 0), in version 1
        // as in version 2, where the binding names it.
        sqlx::query_scalar(
            "SELECT DISTINCT f.serial FROM ticket_devices d
               JOIN tickets t ON t.id = d.ticket_id
               JOIN ticket_devices f ON f.ticket_id = d.ticket_id AND f.position = 0
              WHERE d.serial = $1 AND t.created_at >= $2
              ORDER BY f.serial",
        )
        .bind(serial)
        .bind(since.unix_seconds())
        .fetch_all(&self.pool)
        .await
        .map_err(db)
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
    /// A claim taken (`to` is `by`) or given to someone else (an assignment): a lock
    /// only one person holds, changed only while nobody else holds it or as an explicit
    /// take-over.
    async fn hand_claim(
        &self,
        ticket_id: TicketId,
        to: UserId,
        by: UserId,
        take_over: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // Locks the row on PostgreSQL, so the holder named below is the one replaced.
        let status: Option<String> = sqlx::query_scalar(D::TICKET_STATUS_FOR_DECISION)
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if status.is_none() {
            return Err(StoreError::NotFound);
        }
        let holder: Option<(i64, String)> = sqlx::query_as(
            "SELECT u.id, u.email FROM tickets t JOIN users u ON u.id = t.claimed_by WHERE t.id = $1",
        )
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        // The claim is a lock: the update itself asks that nobody else holds it (or that
        // this is an explicit take-over), so of two claims at once only one succeeds.
        let updated = sqlx::query(
            "UPDATE tickets SET claimed_by = $1, claimed_at = $2, updated_at = $3
             WHERE id = $4 AND status IN ('open', 'awaiting_photo')
               AND (claimed_by IS NULL OR claimed_by = $5 OR $6)",
        )
        .bind(to.0)
        .bind(now.unix_seconds())
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .bind(by.0)
        .bind(take_over)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT u.email FROM tickets t JOIN users u ON u.id = t.claimed_by
                 WHERE t.id = $1 AND t.status IN ('open', 'awaiting_photo')",
            )
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            return Err(match holder {
                Some(holder) => StoreError::ClaimedBy(holder),
                None => Self::decided_conflict(&mut tx, ticket_id).await,
            });
        }
        let taken_from = holder
            .filter(|(id, _)| *id != by.0 && *id != to.0)
            .map(|(_, email)| format!("taken over from {email}"));
        let took_over = taken_from.is_some();
        let detail = if to == by {
            taken_from.unwrap_or_default()
        } else {
            let assignee = Self::user_email(&mut tx, to).await?;
            match taken_from {
                Some(taken) => format!("to {assignee}, {taken}"),
                None => format!("to {assignee}"),
            }
        };
        let step = Step {
            ticket_id,
            by,
            at: now,
            event: if to == by {
                TicketEventKind::Claimed
            } else {
                TicketEventKind::Assigned
            },
            action: if to == by {
                if took_over {
                    "claim.taken_over"
                } else {
                    "claim"
                }
            } else if took_over {
                "claim.assigned_over"
            } else {
                "claim.assigned"
            },
            detail: &detail,
        };
        Self::record_step(tx, &step, None).await
    }

    /// Stores a new ticket with its devices, its evidence job, its history and its
    /// acknowledgment in `tx`; or names the ticket that already holds its challenge.
    async fn insert_ticket(
        tx: &mut Transaction<'static, D>,
        ticket: &NewTicket,
        acknowledgment: &NewMail,
    ) -> StoreResult<CreateOutcome> {
        let now = ticket.created_at;
        for device in &ticket.devices {
            // One question per device, two answers: a ticket that already holds this very
            // challenge (the same submission again), first; else a ticket still waiting
            // with a newer export from the device, which holds only its newest challenge,
            // so this export is dead on arrival.
            let found: Option<(String, i64)> = sqlx::query_as(
                "SELECT t.number, CAST(CASE WHEN d.nonce = $2 THEN 1 ELSE 0 END AS BIGINT) AS same
                 FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
                 WHERE d.serial = $1
                   AND (d.nonce = $2 OR (d.issued_at > $3 AND t.status IN ('open', 'awaiting_photo')))
                 ORDER BY same DESC LIMIT 1",
            )
            .bind(device.identity.serial.as_str())
            .bind(hex(&device.nonce.0))
            .bind(device.issued_at.unix_seconds())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
            match found {
                Some((number, 1)) => {
                    let number = TicketNumber::parse(&number)
                        .map_err(|_| rows::corrupt("ticket number", number))?;
                    return Ok(CreateOutcome::Existing { number });
                }
                Some((number, _)) => {
                    return Err(StoreError::NewerExport {
                        ticket: number,
                        serial: device.identity.serial.to_string(),
                    });
                }
                None => {}
            }
        }
        let c = &ticket.customer;
        let id: TicketId = sqlx::query_scalar(
            "INSERT INTO tickets (number, status, customer_name, customer_email, customer_phone,
                                  customer_company, customer_country, customer_role, purchase_channel, export_form,
                                  export_blob, export_bytes, label_blob, label_media_type, flags, created_at, updated_at,
                                  repeat_of, customer_language, export_expires_at, search_text, installer_id)
             VALUES ($1, 'open', $2, $3, $4, $5, $6, $7, $8, $9, $18, $10, $11, $12, $13, $14, $15,
                     (SELECT id FROM tickets WHERE number = $16), $17, $19, $20, $21) RETURNING id",
        )
        .bind(ticket.number.as_str())
        .bind(c.name.as_str())
        .bind(c.email.as_str())
        .bind(c.phone.as_ref().map(|p| p.as_str()))
        .bind(c.company.as_ref().map(|p| p.as_str()))
        .bind(c.country.as_str())
        .bind(c.role.as_str())
        .bind(c.purchase_channel.as_ref().map(|p| p.as_str()))
        .bind(ticket.export_form.as_str())
        .bind(match &ticket.export {
            StoredExport::InRow(bytes) => Some(bytes.as_slice()),
            // (A new ticket's export is never one retention removed.)
            StoredExport::Blob(_) | StoredExport::Removed(_) => None,
        })
        .bind(&ticket.label_blob)
        .bind(&ticket.label_media_type)
        .bind(rows::flags_text(&ticket.flags))
        .bind(now.unix_seconds())
        .bind(now.unix_seconds())
        .bind(ticket.repeat_of.as_ref().map(TicketNumber::as_str))
        .bind(c.language.code())
        // No blob name when the export is in the row.
        .bind(ticket.export.blob().unwrap_or(""))
        .bind(
            ticket
                .devices
                .iter()
                .map(|d| d.expires_at().unix_seconds())
                .min()
                .unwrap_or_else(|| now.unix_seconds()),
        )
        .bind(
            TicketSearchText::of(
                &ticket.number,
                c.name.as_str(),
                c.email.as_str(),
                ticket.devices.iter().map(|d| d.identity.serial.as_str()),
            )
            .as_str(),
        )
        .bind(ticket.installer.map(|i| i.0))
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
        // A new ticket has no job to supersede.
        Self::insert_evidence_job(tx, id, &ticket.label_blob, now).await?;
        for (position, device) in ticket.devices.iter().enumerate() {
            let id_ = &device.identity;
            sqlx::query(
                "INSERT INTO ticket_devices (ticket_id, position, model, serial, firmware, mac_address, reserved_email,
                                             nonce, issued_at, tag, export_id, exported_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(id_.model.as_str())
            .bind(id_.serial.as_str())
            .bind(id_.firmware.as_str())
            .bind(id_.mac_address.map(|m| m.to_string()))
            .bind(id_.reserved_email.as_ref().map(|e| e.as_str()))
            .bind(hex(&device.nonce.0))
            .bind(device.issued_at.unix_seconds())
            .bind(hex(&device.tag.0))
            .bind(device.binding.as_ref().map(|b| b.export_id.to_hex()))
            .bind(device.binding.as_ref().map(|b| b.exported_by.as_str()))
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Conflict::SameChallenge)
                } else {
                    db(e)
                }
            })?;
        }
        let mut superseded = Vec::new();
        for device in &ticket.devices {
            let older: Vec<(TicketId, String)> = sqlx::query_as(
                "SELECT DISTINCT t.id, t.number FROM ticket_devices d JOIN tickets t ON t.id = d.ticket_id
                 WHERE d.serial = $1 AND t.id != $2 AND t.status IN ('open', 'awaiting_photo')",
            )
            .bind(device.identity.serial.as_str())
            .bind(id)
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            for (old_id, old_number) in older {
                // Only if still pending: an approval may have committed since the SELECT.
                let updated = sqlx::query(
                    "UPDATE tickets SET status = 'superseded', superseded_by = $1, updated_at = $2
                     WHERE id = $3 AND status IN ('open', 'awaiting_photo')",
                )
                .bind(id)
                .bind(now.unix_seconds())
                .bind(old_id)
                .execute(&mut **tx)
                .await
                .map_err(db)?
                .rows_affected();
                if updated == 0 {
                    continue;
                }
                let note = format!(
                    "replaced by {} (a newer export from {})",
                    ticket.number, device.identity.serial
                );
                Self::event(
                    tx,
                    old_id,
                    now,
                    "customer",
                    &TicketEventKind::Superseded,
                    &note,
                )
                .await?;
                let note = format!(
                    "replaces {old_number} (an older export from {})",
                    device.identity.serial
                );
                Self::event(tx, id, now, "customer", &TicketEventKind::Supersedes, &note).await?;
                superseded.push(
                    TicketNumber::parse(&old_number)
                        .map_err(|_| rows::corrupt("ticket number", old_number))?,
                );
            }
        }
        let detail = format!(
            "{} device(s) by {}",
            ticket.devices.len(),
            ticket.export_form.as_str()
        );
        Self::event(
            tx,
            id,
            now,
            "customer",
            &TicketEventKind::Submitted,
            &detail,
        )
        .await?;
        if let Some(origin) = &ticket.by_mail {
            let message = crate::store::NewTicketMessage {
                author: crate::store::MessageAuthor::Customer,
                sender: origin.sender.clone(),
                body: origin.body.clone(),
                message_id: Some(origin.message_id.clone()),
            };
            Self::insert_message(tx, id, &message, now).await?;
        }
        // After the e-mail that made the ticket, if any: the acknowledgment answers it.
        Self::enqueue(tx, Some(id), acknowledgment, now).await?;
        Ok(CreateOutcome::Created {
            number: ticket.number.clone(),
            superseded,
        })
    }
}
