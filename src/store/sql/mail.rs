//! Requests and replies by e-mail (issue 21): claims on inbound messages, so each is
//! handled once across replicas and crashes, and each ticket's conversation.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db};
use crate::domain::{TicketNumber, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows;
use crate::store::{
    InboundClaim, KeptFile, MailStore, MessageAuthor, NewMail, NewTicketMessage, StoreError,
    StoreResult, TicketEventKind, TicketId, UserId,
};

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    for<'q> Option<&'q str>: Param<'q, D>,
    usize: ColumnIndex<D::Row>,
{
    /// Adds a message to a ticket's conversation inside `tx`; `false` when a message of
    /// the same Message-ID is there already (a retry after a crash: nothing is added).
    pub(super) async fn insert_message(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        message: &NewTicketMessage,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let added = sqlx::query(
            "INSERT INTO ticket_messages (ticket_id, direction, author, sender, at, body, message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(ticket_id)
        .bind(message.author.direction())
        .bind(message.author.as_str())
        .bind(message.sender.as_str())
        .bind(now.unix_seconds())
        .bind(message.body.as_str())
        .bind(message.message_id.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(added == 1)
    }
}

#[async_trait]
impl<D: Dialect> MailStore for SqlStore<D>
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
    async fn claim_inbound(
        &self,
        message_id: &str,
        sender_mailbox: &str,
        now: Timestamp,
        lease_secs: i64,
    ) -> StoreResult<InboundClaim> {
        let until = now.unix_seconds() + lease_secs;
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO inbound_mails (message_id, sender, received_at, status, claimed_until)
             VALUES ($1, $2, $3, 'claimed', $4) ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(message_id)
        .bind(sender_mailbox)
        .bind(now.unix_seconds())
        .bind(until)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await.map_err(db)?;
            return Ok(InboundClaim::Claimed);
        }
        // A claim whose lease ran out belongs to a handler that died: taken over. On
        // PostgreSQL the UPDATE waits for a replica taking it over at the same moment and
        // then finds the lease renewed; on SQLite the one writer serialises both.
        let taken_over = sqlx::query(
            "UPDATE inbound_mails SET claimed_until = $2
             WHERE message_id = $1 AND status = 'claimed' AND claimed_until <= $3",
        )
        .bind(message_id)
        .bind(until)
        .bind(now.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        let claim = if taken_over == 1 {
            InboundClaim::Claimed
        } else {
            let (status, outcome): (String, Option<String>) =
                sqlx::query_as("SELECT status, outcome FROM inbound_mails WHERE message_id = $1")
                    .bind(message_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
            if status == "done" {
                InboundClaim::Done {
                    outcome: outcome.unwrap_or_default(),
                }
            } else {
                InboundClaim::Busy
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(claim)
    }

    async fn finish_inbound(
        &self,
        message_id: &str,
        outcome: &str,
        ticket_id: Option<TicketId>,
        answer: Option<&NewMail>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let finished = sqlx::query(
            "UPDATE inbound_mails SET status = 'done', outcome = $2, ticket_id = $3,
                                      finished_at = $4, claimed_until = NULL, answered = $5
             WHERE message_id = $1 AND status = 'claimed'",
        )
        .bind(message_id)
        .bind(outcome)
        .bind(ticket_id.map(|t| t.0))
        .bind(now.unix_seconds())
        .bind(answer.is_some())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        // Finished by another handler already (this one's lease ran out): its answer, if
        // any, is the one that counts.
        if finished == 0 {
            return Err(StoreError::Conflict(crate::store::Conflict::AlreadyHandled));
        }
        if let Some(answer) = answer {
            Self::enqueue(&mut tx, ticket_id, answer, now).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn inbound_answers_since(
        &self,
        sender_mailbox: &str,
        since: Timestamp,
    ) -> StoreResult<(i64, i64)> {
        let to_sender: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM inbound_mails WHERE sender = $1 AND received_at >= $2 AND answered = $3",
        )
        .bind(sender_mailbox)
        .bind(since.unix_seconds())
        .bind(true)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let all: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM inbound_mails WHERE answered = $1 AND finished_at >= $2",
        )
        .bind(true)
        .bind(since.unix_seconds())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok((to_sender, all))
    }

    async fn ticket_of_message_ids(
        &self,
        message_ids: &[String],
        desks_own_only: bool,
    ) -> StoreResult<Option<TicketNumber>> {
        if message_ids.is_empty() {
            return Ok(None);
        }
        let mut query = sqlx::QueryBuilder::<D>::new(
            "SELECT number FROM tickets WHERE id = (SELECT MAX(ticket_id) FROM (
                 SELECT ticket_id FROM outbox WHERE ticket_id IS NOT NULL AND message_id IN (",
        );
        let mut list = query.separated(", ");
        for id in message_ids {
            list.push_bind(id.as_str());
        }
        query.push(")");
        if !desks_own_only {
            query.push(" UNION ALL SELECT ticket_id FROM ticket_messages WHERE message_id IN (");
            let mut list = query.separated(", ");
            for id in message_ids {
                list.push_bind(id.as_str());
            }
            query.push(")");
        }
        query.push(") named)");
        let number: Option<String> = query
            .build_query_scalar()
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        number
            .map(|n| TicketNumber::parse(&n).map_err(|_| rows::corrupt("ticket number", n)))
            .transpose()
    }

    async fn add_ticket_message(
        &self,
        ticket_id: TicketId,
        message: &NewTicketMessage,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        if !Self::insert_message(&mut tx, ticket_id, message, now).await? {
            return Ok(false);
        }
        let kind = match message.author {
            MessageAuthor::Stranger => TicketEventKind::StrangerMessage,
            _ => TicketEventKind::CustomerReply,
        };
        // Never the bare address: the queue reads an event whose actor is a console
        // user's address as an agent's step, and a From can name anyone.
        let actor = match message.author {
            MessageAuthor::Stranger => format!("{} (not proven)", message.sender),
            _ => "customer".to_owned(),
        };
        Self::event(&mut tx, ticket_id, now, &actor, &kind, &message.body).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn forget_inbound_kept(&self, before: Timestamp) -> StoreResult<u64> {
        sqlx::query("DELETE FROM inbound_kept WHERE kept_at < $1")
            .bind(before.unix_seconds())
            .execute(self.writer())
            .await
            .map(|done| done.rows_affected())
            .map_err(db)
    }

    async fn keep_inbound_files(
        &self,
        message_id: &str,
        files: &[KeptFile],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        for file in files {
            sqlx::query(
                "INSERT INTO inbound_kept (message_id, field, blob, kept_at, bytes) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (message_id, field) DO UPDATE
                 SET blob = excluded.blob, kept_at = excluded.kept_at, bytes = excluded.bytes",
            )
            .bind(message_id)
            .bind(file.field.as_str())
            .bind(file.blob.as_str())
            .bind(now.unix_seconds())
            .bind(i64::try_from(file.bytes).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn inbound_kept_bytes(&self) -> StoreResult<u64> {
        let total: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM inbound_kept")
                .fetch_one(self.writer())
                .await
                .map_err(db)?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    async fn kept_inbound_files(
        &self,
        message_ids: &[String],
        sender_mailbox: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::<D>::new(
            "SELECT k.field, k.blob FROM inbound_kept k
             JOIN inbound_mails i ON i.message_id = k.message_id AND i.sender = ",
        );
        query.push_bind(sender_mailbox);
        query.push(
            " WHERE k.message_id IN (SELECT o.in_reply_to FROM outbox o
                                     WHERE o.kind = 'mail_answer' AND o.message_id IN (",
        );
        let mut list = query.separated(", ");
        for id in message_ids {
            list.push_bind(id.as_str());
        }
        query.push(")) ORDER BY k.kept_at DESC");
        query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn record_agent_message(
        &self,
        ticket_id: TicketId,
        by: UserId,
        message: &NewTicketMessage,
        mail: &NewMail,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = Self::user_email(&mut tx, by).await?;
        Self::insert_message(&mut tx, ticket_id, message, now).await?;
        Self::event(
            &mut tx,
            ticket_id,
            now,
            &email,
            &TicketEventKind::AgentMessage,
            &message.body,
        )
        .await?;
        Self::enqueue(&mut tx, Some(ticket_id), mail, now).await?;
        tx.commit().await.map_err(db)
    }
}
