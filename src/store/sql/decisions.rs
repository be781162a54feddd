//! Agents' decisions on a ticket: approvals (the first of two, and the deciding one with
//! its signatures and mail), rejections, photo requests, and mail sent again.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Step, Value, db, is_unique_violation};
use crate::domain::{Role, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows::{self, hex};
use crate::store::{
    Approval, Conflict, DecisionStore, FirstApproval, MailedDecision, ResentApproval, StoreError,
    StoreResult, TicketEventKind, TicketId, UserId,
};

#[async_trait]
impl<D: Dialect> DecisionStore for SqlStore<D>
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
    async fn approve(&self, approval: &Approval) -> StoreResult<()> {
        let mut tx = self.write().await?;
        Self::approve_in(
            &mut tx,
            approval,
            approval.mail.recipient.as_str(),
            "",
            false,
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn add_first_approval(&self, approval: &FirstApproval) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let status: Option<String> = sqlx::query_scalar(D::TICKET_STATUS_FOR_DECISION)
            .bind(approval.ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        match status.as_deref() {
            None => return Err(StoreError::NotFound),
            Some("open") => {}
            Some(_) => return Err(Self::decided_conflict(&mut tx, approval.ticket_id).await),
        }
        // Read under the row lock (PostgreSQL) or the write lock (SQLite): a new photo
        // cannot be stored between this check and the approval's insert.
        let version: i64 = sqlx::query_scalar("SELECT evidence_version FROM tickets WHERE id = $1")
            .bind(approval.ticket_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if version != approval.evidence_version {
            return Err(StoreError::EvidenceChanged);
        }
        let prior: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE ticket_id = $1")
            .bind(approval.ticket_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if prior != 0 {
            return Err(StoreError::Conflict(Conflict::ApprovalRaced));
        }
        Self::insert_approval(
            &mut tx,
            approval.ticket_id,
            approval.by,
            approval.as_role,
            &approval.note,
            approval.at,
        )
        .await?;
        let detail = format!(
            "first of two approvals, as {}: {}",
            approval.as_role, approval.note
        );
        let step = Step {
            ticket_id: approval.ticket_id,
            by: approval.by,
            at: approval.at,
            event: TicketEventKind::ApprovedFirst,
            action: "approve_first",
            detail: &detail,
        };
        Self::record_step(tx, &step, None).await
    }

    async fn record_refused_approval(
        &self,
        ticket_id: TicketId,
        by: UserId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let tx = self.write().await?;
        let step = Step {
            ticket_id,
            by,
            at: now,
            event: TicketEventKind::ApprovalRefused,
            action: "approve_refused",
            detail: reason,
        };
        Self::record_step(tx, &step, None).await
    }

    async fn reject(&self, decision: &MailedDecision<'_>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE tickets SET status = 'rejected', decided_by = $1, decided_at = $2, decision_reason = $3, updated_at = $4
             WHERE id = $5 AND status IN ('open', 'awaiting_photo') AND evidence_version = $6",
        )
        .bind(decision.by.0)
        .bind(decision.at.unix_seconds())
        .bind(decision.text)
        .bind(decision.at.unix_seconds())
        .bind(decision.ticket_id)
        .bind(decision.evidence_version)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        let recorded = (TicketEventKind::Rejected, "reject");
        Self::record_mailed_decision(tx, updated, decision, recorded).await
    }

    async fn request_photo(&self, decision: &MailedDecision<'_>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE tickets SET status = 'awaiting_photo', updated_at = $1
             WHERE id = $2 AND status = 'open' AND evidence_version = $3",
        )
        .bind(decision.at.unix_seconds())
        .bind(decision.ticket_id)
        .bind(decision.evidence_version)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        let recorded = (TicketEventKind::PhotoRequested, "request_photo");
        Self::record_mailed_decision(tx, updated, decision, recorded).await
    }

    async fn retry_mail(
        &self,
        ticket_id: TicketId,
        mail_id: i64,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        // A mail whose secret parts were emptied is never sent again as it is.
        let kind: Option<String> = sqlx::query_scalar(concat!(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1, attempts = 0, lease_until = NULL
             WHERE id = $2 AND ticket_id = $3 AND status = 'dead' AND kind NOT IN ", secret_mail_kinds!(), "
             RETURNING kind",
        ))
        .bind(now.unix_seconds())
        .bind(mail_id)
        .bind(ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(kind) = kind else {
            return Err(StoreError::Conflict(Conflict::MailNotRetryable));
        };
        let email = Self::user_email(&mut tx, by).await?;
        let detail = format!("{kind} mail {mail_id}");
        Self::event(
            &mut tx,
            ticket_id,
            now,
            &email,
            &TicketEventKind::MailRetried,
            &detail,
        )
        .await?;
        Self::append_audit(&mut tx, now, &email, "mail_retry", Some(ticket_id), &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn resend_approval(&self, resend: &ResentApproval) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (mail, at) = (&resend.mail, resend.at);
        let attachment = mail.attachment.as_ref();
        // The dead row takes the new mail: the console keeps one line for it, and a
        // second click finds it pending, not dead, and signs nothing.
        let updated = sqlx::query(
            "UPDATE outbox SET message_id = $1, subject = $2, body_text = $3, body_html = $4,
                               attachment_name = $5, attachment_type = $6, attachment = $7,
                               status = 'pending', attempts = 0, next_attempt_at = $8, lease_until = NULL,
                               last_error = NULL
             WHERE id = $9 AND ticket_id = $10 AND kind = 'approval' AND status = 'dead'",
        )
        .bind(&mail.message_id)
        .bind(&mail.subject)
        .bind(&mail.body_text)
        .bind(&mail.body_html)
        .bind(attachment.map(|a| a.file_name.as_str()))
        .bind(attachment.map(|a| a.media_type.as_str()))
        .bind(attachment.map(|a| a.bytes.as_slice()))
        .bind(at.unix_seconds())
        .bind(resend.mail_id)
        .bind(resend.ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict(Conflict::ResponseMailNotRetryable));
        }
        let email = Self::user_email(&mut tx, resend.by).await?;
        for response in &resend.responses {
            // The stored entry is what the status page hands out after a one-time code:
            // it follows the newest mail.
            let updated = sqlx::query(
                "UPDATE responses SET key_id = $1, expires_at = $2, signature = $3, created_at = $4
                 WHERE ticket_id = $5 AND serial = $6 AND nonce = $7",
            )
            .bind(response.key_id.as_str())
            .bind(response.expires_at.unix_seconds())
            .bind(rows::signature_text(&response.signature))
            .bind(at.unix_seconds())
            .bind(resend.ticket_id)
            .bind(response.serial.as_str())
            .bind(hex(&response.nonce.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if updated != 1 {
                return Err(StoreError::Conflict(Conflict::NoResponseToSign {
                    serial: response.serial.to_string(),
                }));
            }
            let detail = format!(
                "serial {} key {} expires {} (signed again: the response mail died)",
                response.serial, response.key_id, response.expires_at
            );
            Self::append_audit(&mut tx, at, &email, "sign", Some(resend.ticket_id), &detail)
                .await?;
        }
        let detail = format!("approval mail {}, signed again", resend.mail_id);
        Self::event(
            &mut tx,
            resend.ticket_id,
            at,
            &email,
            &TicketEventKind::MailRetried,
            &detail,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            at,
            &email,
            "mail_retry",
            Some(resend.ticket_id),
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db)
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
    /// Finishes a rejection or a photo request once its `UPDATE` ran: none `updated`
    /// means someone decided first or the evidence changed (the conflict says which);
    /// otherwise the history, the audit entry and the mail, in the same transaction.
    async fn record_mailed_decision(
        mut tx: Transaction<'static, D>,
        updated: u64,
        decision: &MailedDecision<'_>,
        (event, action): (TicketEventKind, &'static str),
    ) -> StoreResult<()> {
        if updated == 0 {
            let (ticket_id, seen) = (decision.ticket_id, decision.evidence_version);
            return Err(Self::decision_conflict(&mut tx, ticket_id, seen).await);
        }
        let step = Step {
            ticket_id: decision.ticket_id,
            by: decision.by,
            at: decision.at,
            event,
            action,
            detail: decision.text,
        };
        Self::record_step(tx, &step, Some(decision.mail)).await
    }

    /// The deciding approval inside `tx`: the ticket's update (only if still open, for
    /// `customer_email`, on the evidence version signed from), the approval, each
    /// signature and the approval audited, and the response mail queued. `how` ends the
    /// history's and the audit's detail (how an automatic decision was made). An
    /// `automatic` approval also needs the ticket unclaimed and unflagged as it is
    /// written: an agent who claimed it, or a flag added, after the desk looked makes it
    /// the agents' (a conflict).
    pub(super) async fn approve_in(
        tx: &mut Transaction<'static, D>,
        approval: &Approval,
        customer_email: &str,
        how: &str,
        automatic: bool,
    ) -> StoreResult<()> {
        let at = approval.at.unix_seconds();
        let updated = sqlx::query(
            "UPDATE tickets SET status = 'approved', decided_by = $1, decided_at = $2, updated_at = $3,
                                claimed_by = COALESCE(claimed_by, $4), claimed_at = COALESCE(claimed_at, $5)
             WHERE id = $6 AND status = 'open' AND customer_email = $7 AND evidence_version = $8
               AND ($9 = 0 OR (claimed_by IS NULL AND flags = '')) AND evidence_removed_at IS NULL",
        )
        .bind(approval.by.0)
        .bind(at)
        .bind(at)
        .bind(approval.by.0)
        .bind(at)
        .bind(approval.ticket_id)
        // The response goes where the approver saw it go: an address corrected since
        // (which withdraws approvals and may flag the ticket) makes this a conflict.
        .bind(customer_email)
        // The responses were signed from, and the approver saw, this version of the
        // evidence: a new photo stored since makes this `EvidenceChanged`.
        .bind(approval.evidence_version)
        .bind(i64::from(automatic))
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(Self::approve_conflict(
                tx,
                approval.ticket_id,
                customer_email,
                approval.evidence_version,
            )
            .await);
        }
        let prior: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE ticket_id = $1")
            .bind(approval.ticket_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
        if prior != approval.prior_approvals as i64 {
            // Dropping the transaction rolls the status change back.
            return Err(StoreError::Conflict(Conflict::ApprovalRaced));
        }
        Self::insert_approval(
            tx,
            approval.ticket_id,
            approval.by,
            approval.as_role,
            &approval.note,
            approval.at,
        )
        .await?;
        let email = Self::user_email(tx, approval.by).await?;
        for (position, response) in approval.responses.iter().enumerate() {
            sqlx::query(
                "INSERT INTO responses (ticket_id, position, serial, nonce, key_id, expires_at, signature, created_at,
                                        export_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(approval.ticket_id)
            .bind(position as i64)
            .bind(response.serial.as_str())
            .bind(hex(&response.nonce.0))
            .bind(response.key_id.as_str())
            .bind(response.expires_at.unix_seconds())
            .bind(rows::signature_text(&response.signature))
            .bind(at)
            .bind(response.export_id.map(|id| id.to_hex()))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            let detail = format!(
                "serial {} key {} expires {}",
                response.serial, response.key_id, response.expires_at
            );
            Self::append_audit(
                tx,
                approval.at,
                &email,
                "sign",
                Some(approval.ticket_id),
                &detail,
            )
            .await?;
        }
        let detail = format!("{} device(s){how}", approval.responses.len());
        Self::event(
            tx,
            approval.ticket_id,
            approval.at,
            &email,
            &TicketEventKind::Approved,
            &detail,
        )
        .await?;
        Self::append_audit(
            tx,
            approval.at,
            &email,
            "approve",
            Some(approval.ticket_id),
            &detail,
        )
        .await?;
        Self::enqueue(tx, Some(approval.ticket_id), &approval.mail, approval.at).await?;
        Ok(())
    }

    pub(super) async fn insert_approval(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        by: UserId,
        as_role: Role,
        note: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO approvals (ticket_id, user_id, as_role, note, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ticket_id)
        .bind(by.0)
        .bind(as_role.as_str())
        .bind(note)
        .bind(at.unix_seconds())
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(Conflict::AlreadyApproved)
            } else {
                db(e)
            }
        })?;
        Ok(())
    }

    /// Explains why a decision on evidence version `seen` found nothing to decide: the
    /// evidence changed under it, or the ticket was decided meanwhile.
    pub(super) async fn decision_conflict(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        seen: i64,
    ) -> StoreError {
        let row: Result<(String, i64), _> =
            sqlx::query_as("SELECT status, evidence_version FROM tickets WHERE id = $1")
                .bind(ticket_id)
                .fetch_one(&mut **tx)
                .await;
        match row {
            Ok((status, version))
                if version != seen && matches!(status.as_str(), "open" | "awaiting_photo") =>
            {
                StoreError::EvidenceChanged
            }
            Ok(_) => Self::decided_conflict(tx, ticket_id).await,
            Err(sqlx::Error::RowNotFound) => StoreError::NotFound,
            Err(e) => db(e),
        }
    }

    /// Explains why a decision found the ticket no longer open.
    pub(super) async fn decided_conflict(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
    ) -> StoreError {
        let row: Result<(String, Option<String>), _> = sqlx::query_as(
            "SELECT t.status, u.email FROM tickets t LEFT JOIN users u ON u.id = t.decided_by WHERE t.id = $1",
        )
        .bind(ticket_id)
        .fetch_one(&mut **tx)
        .await;
        match row {
            Ok((status, Some(by))) => StoreError::Conflict(Conflict::AlreadyDecided { status, by }),
            Ok((status, None)) => StoreError::Conflict(Conflict::NotOpen { status }),
            Err(sqlx::Error::RowNotFound) => StoreError::NotFound,
            Err(e) => db(e),
        }
    }

    /// Why an approval's update found nothing to approve: decided meanwhile, or the
    /// customer's address changed under it.
    pub(super) async fn approve_conflict(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        customer_email: &str,
        evidence_version: i64,
    ) -> StoreError {
        let current: Result<Option<(String, String)>, _> =
            sqlx::query_as("SELECT status, customer_email FROM tickets WHERE id = $1")
                .bind(ticket_id)
                .fetch_optional(&mut **tx)
                .await;
        match current {
            Ok(Some((status, email))) if status == "open" && email != customer_email => {
                StoreError::Conflict(Conflict::AddressChanged)
            }
            Ok(_) => Self::decision_conflict(tx, ticket_id, evidence_version).await,
            Err(e) => db(e),
        }
    }
}
