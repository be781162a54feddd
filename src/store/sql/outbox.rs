//! The outbox: mail written with the change that caused it, leased, sent, retried, or
//! dead.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db};
use crate::domain::Timestamp;
use crate::store::dialect::Dialect;
use crate::store::rows::OutboxRow;
use crate::store::{NewMail, OutboxMessage, OutboxStore, StoreResult, TicketEventKind, TicketId};

#[async_trait]
impl<D: Dialect> OutboxStore for SqlStore<D>
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
    async fn claim_due_mail(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let mut tx = self.write().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(D::CLAIM_DUE_MAIL)
            .bind(now.unix_seconds())
            .bind(lease_secs)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut messages: Vec<OutboxMessage> = rows.into_iter().map(Into::into).collect();
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    async fn mark_mails_sent(&self, ids: &[i64], now: Timestamp) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // A handful of statements for the whole batch, whatever its size: on PostgreSQL
        // the rate at which a backlog drains is bounded by round trips. A batch is at most
        // 2 × outbox_connections (≤ 512) ids, well inside both databases' limits on
        // bound parameters.
        let mut tx = self.write().await?;
        let mut sent =
            sqlx::QueryBuilder::<D>::new("UPDATE outbox SET status = 'sent', sent_at = ");
        sent.push_bind(now.unix_seconds());
        sent.push(", attempts = attempts + 1, lease_until = NULL, last_error = NULL WHERE status = 'pending' AND id");
        Self::push_in_ids(&mut sent, ids);
        sent.build().execute(&mut *tx).await.map_err(db)?;
        // Keys, signed files and one-time codes have done their work once delivered: a
        // reader of the database or of a backup finds none of them here.
        let mut blank = sqlx::QueryBuilder::<D>::new(concat!(
            "UPDATE outbox SET body_text = '', body_html = '', attachment = NULL
             WHERE kind IN ",
            secret_mail_kinds!(),
            " AND status = 'sent' AND id",
        ));
        Self::push_in_ids(&mut blank, ids);
        blank.build().execute(&mut *tx).await.map_err(db)?;
        let mut unaddressed = sqlx::QueryBuilder::<D>::new("UPDATE outbox SET recipient = ");
        unaddressed
            .push_bind(crate::store::ERASED_EMAIL)
            .push(concat!(
                " WHERE kind IN ",
                addressed_once_kinds!(),
                " AND status = 'sent' AND id",
            ));
        Self::push_in_ids(&mut unaddressed, ids);
        unaddressed.build().execute(&mut *tx).await.map_err(db)?;
        // Audited even when a late report finds a row no longer pending: the relay did
        // take the message.
        let mut select = sqlx::QueryBuilder::<D>::new(
            "SELECT id, ticket_id, kind, recipient FROM outbox WHERE id",
        );
        Self::push_in_ids(&mut select, ids);
        select.push(" ORDER BY id");
        let delivered: Vec<(i64, Option<i64>, String, String)> = select
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let events: Vec<(i64, &str)> = delivered
            .iter()
            .filter_map(|(_, ticket_id, kind, _)| ticket_id.map(|t| (t, kind.as_str())))
            .collect();
        if !events.is_empty() {
            let mut insert = sqlx::QueryBuilder::<D>::new(
                "INSERT INTO ticket_events (ticket_id, at, actor, kind, detail) ",
            );
            insert.push_values(events, |mut row, (ticket_id, kind)| {
                row.push_bind(ticket_id)
                    .push_bind(now.unix_seconds())
                    .push_bind("mailer")
                    .push_bind(TicketEventKind::MailSent.as_str())
                    .push_bind(kind);
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        let entries: Vec<(Option<i64>, String)> = delivered
            .iter()
            .map(|(_, ticket_id, kind, recipient)| {
                // A ticket's entry commits to its words, which go with an erased customer;
                // an entry of no ticket keeps its words for good, so it names the address
                // masked.
                let to = match ticket_id {
                    Some(_) => recipient.clone(),
                    None => crate::domain::EmailAddress::parse(recipient)
                        .map_or_else(|_| "an address".to_owned(), |e| e.masked()),
                };
                (*ticket_id, format!("{kind} mail to {to}"))
            })
            .collect();
        Self::append_audits(&mut tx, now, "mailer", "mail_handed_off", &entries).await?;
        tx.commit().await.map_err(db)
    }

    async fn mark_mail_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> StoreResult<()> {
        // A dead mail's secret parts go with it, in the same statement: retrying a dead
        // response mail signs again (`resend_approval`), it never reads them back.
        sqlx::query(concat!(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, lease_until = NULL,
                               status = CASE WHEN CAST($2 AS BIGINT) IS NULL THEN 'dead' ELSE 'pending' END,
                               next_attempt_at = COALESCE($3, next_attempt_at),
                               body_text = CASE WHEN CAST($2 AS BIGINT) IS NULL AND kind IN ", secret_mail_kinds!(), "
                                                THEN '' ELSE body_text END,
                               body_html = CASE WHEN CAST($2 AS BIGINT) IS NULL AND kind IN ", secret_mail_kinds!(), "
                                                THEN '' ELSE body_html END,
                               attachment = CASE WHEN CAST($2 AS BIGINT) IS NULL AND kind IN ", secret_mail_kinds!(), "
                                                 THEN NULL ELSE attachment END,
                               recipient = CASE WHEN CAST($2 AS BIGINT) IS NULL AND kind IN ", addressed_once_kinds!(), "
                                                THEN $5 ELSE recipient END
                          WHERE id = $4 AND status = 'pending'",
        ))
        .bind(error)
        .bind(retry_at.map(Timestamp::unix_seconds))
        .bind(retry_at.map(Timestamp::unix_seconds))
        .bind(id)
        .bind(crate::store::ERASED_EMAIL)
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn mail_counts(&self) -> StoreResult<(i64, i64, i64)> {
        sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE status = 'pending'), COUNT(*) FILTER (WHERE status = 'sent'),
                    COUNT(*) FILTER (WHERE status = 'dead')
             FROM outbox",
        )
        .fetch_one(&self.pool)
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
    pub(super) async fn enqueue(
        tx: &mut Transaction<'static, D>,
        ticket_id: Option<TicketId>,
        mail: &NewMail,
        now: Timestamp,
    ) -> StoreResult<()> {
        let attachment = mail.attachment.as_ref();
        // A ticket's mail threads under the customer's latest e-mail to it (none for a
        // request sent by the form): mail programs show the desk's answers in the
        // conversation the customer started.
        sqlx::query(
            "INSERT INTO outbox (message_id, ticket_id, kind, recipient, subject, body_text, body_html,
                                 attachment_name, attachment_type, attachment, status, next_attempt_at, created_at,
                                 in_reply_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12,
                     COALESCE($13, (SELECT m.message_id FROM ticket_messages m
                                    WHERE m.ticket_id = $2 AND m.author = 'customer' AND m.message_id IS NOT NULL
                                    ORDER BY m.id DESC LIMIT 1)))",
        )
        .bind(&mail.message_id)
        .bind(ticket_id.map(|t| t.0))
        .bind(mail.kind.as_str())
        .bind(mail.recipient.as_str())
        .bind(&mail.subject)
        .bind(&mail.body_text)
        .bind(&mail.body_html)
        .bind(attachment.map(|a| a.file_name.as_str()))
        .bind(attachment.map(|a| a.media_type.as_str()))
        .bind(attachment.map(|a| a.bytes.as_slice()))
        .bind(now.unix_seconds())
        .bind(now.unix_seconds())
        .bind(mail.in_reply_to.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Appends ` IN (id, id, …)` with each id bound.
    pub(super) fn push_in_ids(query: &mut sqlx::QueryBuilder<D>, ids: &[i64]) {
        query.push(" IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        query.push(")");
    }
}
