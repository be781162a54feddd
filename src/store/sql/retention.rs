//! Data retention (issue 23): a decided ticket's evidence and its customer's details,
//! deleted once kept long enough. Each batch is one transaction: the rows stop naming
//! the blobs, the history and the audit log say what went, together; the caller deletes
//! the blobs after (`crate::retention`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db};
use crate::domain::{TicketNumber, TicketSearchText, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows;
use crate::store::{RemovedEvidence, RetentionStore, StoreResult, TicketEventKind, TicketId};

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
        let due: Vec<(i64, String)> = sqlx::query_as(EVIDENCE_DUE)
            .bind(decided_before.unix_seconds())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
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
                  WHERE id = $1 AND evidence_removed_at IS NULL",
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
        let due: Vec<(i64, String)> = sqlx::query_as(CUSTOMER_DUE)
            .bind(decided_before.unix_seconds())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
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
            let serials: Vec<String> = sqlx::query_scalar(
                "SELECT serial FROM ticket_devices WHERE ticket_id = $1 ORDER BY position",
            )
            .bind(ticket)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            // A search by the name finds the ticket no more.
            let search_text = TicketSearchText::of(
                &number,
                REMOVED_NAME,
                &email,
                serials.iter().map(String::as_str),
            );
            let done = sqlx::query(
                "UPDATE tickets SET customer_name = $2, customer_phone = NULL,
                                    customer_company = NULL, search_text = $3,
                                    customer_removed_at = $4
                  WHERE id = $1 AND customer_removed_at IS NULL",
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
}

/// What a ticket's customer name reads once deleted: a name must not be empty, and a
/// dash reads as "nothing" in every language the desk speaks.
pub(crate) const REMOVED_NAME: &str = "—";
