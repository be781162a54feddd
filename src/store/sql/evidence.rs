//! The evidence worker's jobs (issue 18): one per label photo, made in the photo's own
//! transaction (`enqueue_evidence_job`), leased like the outbox's mail, finished once.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db};
use crate::domain::{TicketNumber, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows::{self, corrupt};
use crate::store::{
    EvidenceFailure, EvidenceJob, EvidenceReading, EvidenceState, EvidenceStore, JobEnd,
    LabelCheck, LabelEvidence, LabelFinding, Previews, ReadCode, StoreError, StoreResult,
    TicketEventKind, TicketId,
};

/// Who the history and the audit log name for what the evidence worker did.
const WORKER: &str = "system";

/// Serials the label names beside the export's that are kept and named in the flag: a
/// photo tiled with codes must not make a flag longer than the page it is shown on.
const OTHER_SERIALS_NAMED: usize = 5;

#[async_trait]
impl<D: Dialect> EvidenceStore for SqlStore<D>
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
    async fn claim_evidence_jobs(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
    ) -> StoreResult<Vec<EvidenceJob>> {
        self.claim_jobs(now, lease_secs, limit, None).await
    }

    async fn claim_ticket_evidence_job(
        &self,
        ticket_id: TicketId,
        now: Timestamp,
        lease_secs: i64,
    ) -> StoreResult<Option<EvidenceJob>> {
        let jobs = self.claim_jobs(now, lease_secs, 1, Some(ticket_id)).await?;
        Ok(jobs.into_iter().next())
    }

    async fn finish_evidence_job(&self, reading: &EvidenceReading) -> StoreResult<JobEnd> {
        let mut tx = self.write().await?;
        let Some(ticket_id) =
            Self::end_job(&mut tx, reading.job_id, "done", None, reading.at).await?
        else {
            return Self::unfinished(tx, reading.job_id).await;
        };
        if let Some(previews) = &reading.preview {
            sqlx::query(
                "UPDATE evidence_jobs SET preview_blob = $1, thumbnail_blob = $2 WHERE id = $3",
            )
            .bind(previews.preview_blob.as_str())
            .bind(previews.thumbnail_blob.as_str())
            .bind(reading.job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for (serial, finding) in &reading.findings {
            sqlx::query(
                "INSERT INTO evidence_findings (job_id, serial, finding) VALUES ($1, $2, $3)",
            )
            .bind(reading.job_id)
            .bind(serial.as_str())
            .bind(finding.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for (position, code) in reading.codes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO evidence_codes (job_id, position, format, text) VALUES ($1, $2, $3, $4)",
            )
            .bind(reading.job_id)
            .bind(position as i64)
            .bind(code.format.as_str())
            .bind(code.text.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        let named = reading.other_serials.iter().take(OTHER_SERIALS_NAMED);
        for (position, serial) in named.enumerate() {
            sqlx::query(
                "INSERT INTO evidence_other_serials (job_id, position, serial) VALUES ($1, $2, $3)",
            )
            .bind(reading.job_id)
            .bind(position as i64)
            .bind(serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        if !reading.other_serials.is_empty() {
            Self::flag_other_serials(&mut tx, ticket_id, &reading.other_serials).await?;
        }
        let summary = reading
            .findings
            .iter()
            .map(|(serial, finding)| format!("{serial}: {}", finding.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let event = TicketEventKind::LabelRead;
        Self::event(&mut tx, ticket_id, reading.at, WORKER, &event, &summary).await?;
        // One audit entry per device: an automatic finding is evidence an agent's decision
        // rests on, so each is in the append-only log as an agent's step would be.
        let entries: Vec<(Option<i64>, String)> = reading
            .findings
            .iter()
            .map(|(serial, finding)| {
                let detail = format!("{serial}: {}", finding.as_str());
                (Some(ticket_id.0), detail)
            })
            .collect();
        Self::append_audits(&mut tx, reading.at, WORKER, "label_finding", &entries).await?;
        tx.commit().await.map_err(db)?;
        Ok(JobEnd::Recorded)
    }

    async fn fail_evidence_job(&self, failure: &EvidenceFailure) -> StoreResult<JobEnd> {
        let mut tx = self.write().await?;
        let error = Some(failure.error.as_str());
        let Some(ticket_id) =
            Self::end_job(&mut tx, failure.job_id, "failed", error, failure.at).await?
        else {
            return Self::unfinished(tx, failure.job_id).await;
        };
        // Only a damaged photo of a ticket still in the queue goes back to the customer,
        // and only so often: one decided meanwhile keeps its decision, and the failure
        // stays on record for the agents.
        let sent_back_before: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM ticket_events WHERE ticket_id = $1 AND kind = 'photo_unreadable'
                AND detail LIKE $2",
        )
        .bind(ticket_id)
        .bind(format!("{}%", crate::store::SENT_BACK))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let sent_back = failure.damaged
            && sent_back_before < crate::store::MAX_UNREADABLE_SEND_BACKS
            && sqlx::query(
                "UPDATE tickets SET status = 'awaiting_photo', updated_at = $1
                 WHERE id = $2 AND status = 'open'",
            )
            .bind(failure.at.unix_seconds())
            .bind(ticket_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
                > 0;
        let event = TicketEventKind::PhotoUnreadable;
        let detail = if sent_back {
            format!("{}{}", crate::store::SENT_BACK, failure.error)
        } else {
            format!("left to an agent: {}", failure.error)
        };
        Self::event(&mut tx, ticket_id, failure.at, WORKER, &event, &detail).await?;
        let action = "label_unreadable";
        let entry = [(Some(ticket_id.0), detail)];
        Self::append_audits(&mut tx, failure.at, WORKER, action, &entry).await?;
        if sent_back {
            Self::enqueue(&mut tx, Some(ticket_id), &failure.mail, failure.at).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(JobEnd::Recorded)
    }

    async fn label_evidence(&self, ticket_id: TicketId) -> StoreResult<Option<LabelEvidence>> {
        // The newest job for the photo the ticket has now: a job for an earlier photo says
        // nothing about this one.
        type JobRow = (i64, String, Option<String>, Option<String>, Option<String>);
        let job: Option<JobRow> = sqlx::query_as(
            "SELECT j.id, j.status, j.last_error, j.preview_blob, j.thumbnail_blob FROM evidence_jobs j
             JOIN tickets t ON t.id = j.ticket_id AND t.label_blob = j.label_blob
             WHERE j.ticket_id = $1 AND j.status <> 'superseded'
             ORDER BY j.id DESC LIMIT 1",
        )
        .bind(ticket_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some((job_id, status, error, preview_blob, thumbnail_blob)) = job else {
            return Ok(None);
        };
        let state = job_state(&status)?;
        let findings: Vec<(String, String)> = sqlx::query_as(
            "SELECT serial, finding FROM evidence_findings WHERE job_id = $1 ORDER BY serial",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let findings = findings
            .into_iter()
            .map(|(serial, raw)| Ok((serial, parse_finding(&raw)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let codes: Vec<(String, String)> = sqlx::query_as(
            "SELECT format, text FROM evidence_codes WHERE job_id = $1 ORDER BY position",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let codes = codes
            .into_iter()
            .map(|(format, text)| ReadCode { format, text })
            .collect();
        let other_serials: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM evidence_other_serials WHERE job_id = $1 ORDER BY position",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let previews = preview_blob
            .zip(thumbnail_blob)
            .map(|(preview_blob, thumbnail_blob)| Previews {
                preview_blob,
                thumbnail_blob,
            });
        Ok(Some(LabelEvidence {
            state,
            findings,
            codes,
            other_serials,
            error,
            previews,
        }))
    }

    async fn evidence_counts(&self) -> StoreResult<(i64, i64)> {
        // Two counts through the (status, id) index: the table keeps every job done.
        let count = |status: &'static str| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM evidence_jobs WHERE status = $1")
                .bind(status)
                .fetch_one(&self.pool)
        };
        let pending = count("pending").await.map_err(db)?;
        let failed = count("failed").await.map_err(db)?;
        Ok((pending, failed))
    }

    async fn release_evidence_job(&self, job_id: i64, due_at: Timestamp) -> StoreResult<()> {
        // A job is due once its lease has run out: the lease now ends at `due_at`.
        sqlx::query(
            "UPDATE evidence_jobs SET lease_until = $2, attempts = attempts - 1
             WHERE id = $1 AND status = 'pending' AND attempts > 0",
        )
        .bind(job_id)
        .bind(due_at.unix_seconds())
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn label_checks(
        &self,
        tickets: &[TicketId],
    ) -> StoreResult<HashMap<TicketId, LabelCheck>> {
        if tickets.is_empty() {
            return Ok(HashMap::new());
        }
        // One query for a page of the queue, walking evidence_jobs_by_ticket (ticket_id,
        // id) for each ticket of the page and the findings' primary key (job_id, serial):
        // its cost grows with the page, never with the table. As in `label_evidence`, only
        // jobs for the ticket's current photo count, the newest first.
        let mut select = sqlx::QueryBuilder::<D>::new(
            "SELECT j.ticket_id, j.id, j.status, f.finding FROM evidence_jobs j
             JOIN tickets t ON t.id = j.ticket_id AND t.label_blob = j.label_blob
             LEFT JOIN evidence_findings f ON f.job_id = j.id
             WHERE j.status <> 'superseded' AND j.ticket_id",
        );
        let ids: Vec<i64> = tickets.iter().map(|t| t.0).collect();
        Self::push_in_ids(&mut select, &ids);
        select.push(" ORDER BY j.ticket_id, j.id DESC");
        let rows: Vec<(TicketId, i64, String, Option<String>)> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        // Per ticket: the newest job's status and its findings; older jobs' rows follow
        // and are passed over.
        let mut newest: HashMap<TicketId, (i64, String, Vec<LabelFinding>)> = HashMap::new();
        for (ticket_id, job_id, status, finding) in rows {
            let (newest_job, _, findings) = newest
                .entry(ticket_id)
                .or_insert_with(|| (job_id, status, Vec::new()));
            if *newest_job != job_id {
                continue;
            }
            if let Some(raw) = finding {
                findings.push(parse_finding(&raw)?);
            }
        }
        newest
            .into_iter()
            .map(|(ticket_id, (_, status, findings))| {
                let check = match job_state(&status)? {
                    EvidenceState::Pending => LabelCheck::Pending,
                    EvidenceState::Failed => LabelCheck::Failed,
                    EvidenceState::Done => LabelCheck::of(&findings),
                };
                Ok((ticket_id, check))
            })
            .collect()
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
    /// Leases up to `limit` due jobs, only `ticket`'s when it is given.
    async fn claim_jobs(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
        ticket: Option<TicketId>,
    ) -> StoreResult<Vec<EvidenceJob>> {
        let mut tx = self.write().await?;
        let rows: Vec<(i64, TicketId, String, i64)> = sqlx::query_as(D::CLAIM_EVIDENCE_JOBS)
            .bind(now.unix_seconds())
            .bind(lease_secs)
            .bind(limit)
            .bind(ticket.map(|id| id.0))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for (id, ticket_id, label_blob, attempts) in rows {
            let number: String = sqlx::query_scalar("SELECT number FROM tickets WHERE id = $1")
                .bind(ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            jobs.push(EvidenceJob {
                id,
                ticket_id,
                ticket: TicketNumber::parse(&number)
                    .map_err(|_| corrupt("ticket number", number.as_str()))?,
                label_blob,
                attempts,
            });
        }
        tx.commit().await.map_err(db)?;
        // RETURNING promises no order.
        jobs.sort_by_key(|job| job.id);
        Ok(jobs)
    }

    /// Makes the job that reads `label_blob`, the ticket's new label photo, in the
    /// photo's own transaction; a job still waiting for the ticket's previous photo is
    /// superseded, as its result would describe a photo the ticket no longer has.
    pub(super) async fn enqueue_evidence_job(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        label_blob: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE evidence_jobs SET status = 'superseded', finished_at = $1, lease_until = NULL
             WHERE ticket_id = $2 AND status = 'pending'",
        )
        .bind(now.unix_seconds())
        .bind(ticket_id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Self::insert_evidence_job(tx, ticket_id, label_blob, now).await
    }

    /// Makes the job that reads `label_blob`, for a ticket with no job waiting.
    pub(super) async fn insert_evidence_job(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        label_blob: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO evidence_jobs (ticket_id, label_blob, created_at) VALUES ($1, $2, $3)",
        )
        .bind(ticket_id)
        .bind(label_blob)
        .bind(now.unix_seconds())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Adds the risk flag for a label naming devices the export does not: the ticket
    /// then needs four eyes, as for any other risk.
    async fn flag_other_serials(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        serials: &[String],
    ) -> StoreResult<()> {
        let stored: String = sqlx::query_scalar("SELECT flags FROM tickets WHERE id = $1")
            .bind(ticket_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
        let mut flags = rows::flags_list(&stored);
        // A few named, the rest counted: a photo tiled with codes must not make a flag
        // longer than the page it is shown on.
        let named = serials
            .iter()
            .take(OTHER_SERIALS_NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = serials.len().saturating_sub(OTHER_SERIALS_NAMED);
        flags.push(if more == 0 {
            format!("the label photo shows serial {named}, which is not in the export")
        } else {
            format!("the label photo shows serials {named} and {more} more, none in the export")
        });
        // A new flag is new evidence: a decision made on the page from before it is
        // refused as stale, as after a new photo.
        sqlx::query(
            "UPDATE tickets SET flags = $1, evidence_version = evidence_version + 1 WHERE id = $2",
        )
        .bind(rows::flags_text(&flags))
        .bind(ticket_id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Ends a pending job as `status` ('done' or 'failed'), or as 'superseded' when the
    /// ticket's photo is no longer the job's: its ticket when it ended as `status`, `None`
    /// otherwise (superseded, finished already, or no such job).
    async fn end_job(
        tx: &mut Transaction<'static, D>,
        job_id: i64,
        status: &str,
        error: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<Option<TicketId>> {
        // The ticket's row first, then the job's: the order a new photo takes them in
        // (`replace_label_photo`), so the two never wait for each other in a circle.
        let ticket: Option<TicketId> =
            sqlx::query_scalar("SELECT ticket_id FROM evidence_jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
        if let Some(ticket) = ticket {
            sqlx::query(D::TICKET_STATUS_FOR_DECISION)
                .bind(ticket)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
        }
        let ended: Option<(TicketId, String)> = sqlx::query_as(
            "UPDATE evidence_jobs
             SET status = CASE WHEN label_blob = (SELECT t.label_blob FROM tickets t WHERE t.id = ticket_id)
                               THEN $1 ELSE 'superseded' END,
                 finished_at = $2, lease_until = NULL, last_error = $3
             WHERE id = $4 AND status = 'pending'
             RETURNING ticket_id, status",
        )
        .bind(status)
        .bind(at.unix_seconds())
        .bind(error)
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        Ok(ended.and_then(|(ticket_id, ended_as)| (ended_as == status).then_some(ticket_id)))
    }

    /// Why a job was not recorded: superseded (committed: the job is over), or finished
    /// by someone else (nothing changed).
    async fn unfinished(mut tx: Transaction<'static, D>, job_id: i64) -> StoreResult<JobEnd> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM evidence_jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        tx.commit().await.map_err(db)?;
        match status.as_deref() {
            Some("superseded") => Ok(JobEnd::Superseded),
            Some(_) => Ok(JobEnd::AlreadyFinished),
            None => Err(StoreError::NotFound),
        }
    }
}

/// A job's stored status as the state shown; a superseded job is never shown.
fn job_state(raw: &str) -> StoreResult<EvidenceState> {
    match raw {
        "pending" => Ok(EvidenceState::Pending),
        "done" => Ok(EvidenceState::Done),
        "failed" => Ok(EvidenceState::Failed),
        other => Err(corrupt("evidence job status", other)),
    }
}

fn parse_finding(raw: &str) -> StoreResult<LabelFinding> {
    LabelFinding::parse(raw).ok_or_else(|| corrupt("label finding", raw))
}
