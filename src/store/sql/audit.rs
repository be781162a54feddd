//! The audit log: appending to its hash chain (`crate::audit::chain`), and reading it.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db, without_controls};
use crate::audit::chain::AuditEntry;
use crate::domain::Timestamp;
use crate::store::dialect::Dialect;
use crate::store::rows::{self, hex};
use crate::store::{AuditStore, NewMail, StoreResult, TicketId};

/// An entry with its words and its ticket's salt, where they are kept (none once erased).
macro_rules! AUDIT_ROWS {
    () => {
        "SELECT a.id, a.at, a.actor, a.action, a.ticket_id, a.detail, a.prev_hash, a.hash,
                a.commitment, d.detail AS kept_detail, s.salt
           FROM audit_log a
           LEFT JOIN audit_details d ON d.entry_id = a.id
           LEFT JOIN audit_salts s ON s.id = a.salt_id"
    };
}

#[async_trait]
impl<D: Dialect> AuditStore for SqlStore<D>
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
    async fn audit(
        &self,
        at: Timestamp,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        Self::append_audit(&mut tx, at, actor, action, None, detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn queue_mails(
        &self,
        mails: &[NewMail],
        at: Timestamp,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        for mail in mails {
            Self::enqueue(&mut tx, None, mail, at).await?;
        }
        Self::append_audit(&mut tx, at, actor, action, None, detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn recent_audit(
        &self,
        actor: Option<&str>,
        action: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<rows::AuditRow> = sqlx::query_as(concat!(
            AUDIT_ROWS!(),
            " WHERE ($1 IS NULL OR a.actor = $1) AND ($2 IS NULL OR a.action = $2)
              ORDER BY a.id DESC LIMIT $3"
        ))
        .bind(actor.map(without_controls))
        .bind(action.map(without_controls))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn audit_entries(
        &self,
        after_id: i64,
        since: Option<Timestamp>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<rows::AuditRow> = sqlx::query_as(concat!(
            AUDIT_ROWS!(),
            " WHERE a.id > $1 AND a.at >= $2 ORDER BY a.id LIMIT $3"
        ))
        .bind(after_id)
        .bind(since.map_or(0, Timestamp::unix_seconds))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
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
    pub(super) async fn append_audit(
        tx: &mut Transaction<'static, D>,
        at: Timestamp,
        actor: &str,
        action: &str,
        ticket_id: Option<TicketId>,
        detail: &str,
    ) -> StoreResult<()> {
        let entry = (ticket_id.map(|t| t.0), detail.to_owned());
        Self::append_audits(tx, at, actor, action, &[entry]).await
    }

    /// Appends one audit entry per `(ticket, detail)`, in order, chained as if one by one,
    /// in a single INSERT: a batch of delivered mail costs one statement, not one each.
    pub(super) async fn append_audits(
        tx: &mut Transaction<'static, D>,
        at: Timestamp,
        actor: &str,
        action: &str,
        entries: &[(Option<i64>, String)],
    ) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // Reading the head and appending after it must be one step: the backend makes sure no
        // other writer appends in between.
        D::lock_audit_chain(tx).await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
        let (mut id, mut prev_hash) = match last {
            Some((id, hash)) => (id, rows::hex_array::<32>("audit hash", &hash)?),
            None => (0, crate::audit::chain::GENESIS),
        };
        // A ticket's entries commit to their words under the ticket's salt, and keep the
        // words apart (audit_details), so erasing its customer leaves the chain intact.
        let mut tickets: Vec<i64> = entries.iter().filter_map(|(t, _)| *t).collect();
        tickets.sort_unstable();
        tickets.dedup();
        let mut salts = std::collections::HashMap::with_capacity(tickets.len());
        for ticket in tickets {
            salts.insert(ticket, Self::audit_salt(tx, ticket).await?);
        }
        let mut rows = Vec::with_capacity(entries.len());
        let mut details = Vec::new();
        for (ticket_id, detail) in entries {
            id += 1;
            let (hash, stored_detail, commitment, salt_id) =
                match ticket_id.and_then(|t| salts.get(&t).map(|s| (t, s))) {
                    Some((ticket, (salt_id, salt))) => {
                        let commitment = crate::audit::chain::detail_commitment(salt, detail);
                        let hash = crate::audit::chain::entry_hash_v2(
                            &prev_hash,
                            id,
                            at,
                            actor,
                            action,
                            ticket,
                            &commitment,
                        );
                        details.push((id, detail.as_str()));
                        (hash, "", Some(hex(&commitment)), Some(*salt_id))
                    }
                    None => (
                        crate::audit::chain::entry_hash(
                            &prev_hash, id, at, actor, action, *ticket_id, detail,
                        ),
                        detail.as_str(),
                        None,
                        None,
                    ),
                };
            rows.push((
                id,
                *ticket_id,
                stored_detail,
                hex(&prev_hash),
                hex(&hash),
                commitment,
                salt_id,
            ));
            prev_hash = hash;
        }
        let mut insert = sqlx::QueryBuilder::<D>::new(
            "INSERT INTO audit_log (id, at, actor, action, ticket_id, detail, prev_hash, hash, commitment, salt_id) ",
        );
        insert.push_values(
            rows,
            |mut row, (id, ticket_id, detail, prev, hash, commitment, salt_id)| {
                row.push_bind(id)
                    .push_bind(at.unix_seconds())
                    .push_bind(actor)
                    .push_bind(action)
                    .push_bind(ticket_id)
                    .push_bind(detail)
                    .push_bind(prev)
                    .push_bind(hash)
                    .push_bind(commitment)
                    .push_bind(salt_id);
            },
        );
        insert.build().execute(&mut **tx).await.map_err(db)?;
        if !details.is_empty() {
            let mut insert =
                sqlx::QueryBuilder::<D>::new("INSERT INTO audit_details (entry_id, detail) ");
            insert.push_values(details, |mut row, (id, detail)| {
                row.push_bind(id).push_bind(detail);
            });
            insert.build().execute(&mut **tx).await.map_err(db)?;
        }
        Ok(())
    }

    /// The ticket's salt for its audit entries' commitments, and its id: made on the
    /// ticket's first entry, and again on its first entry after its customer was erased
    /// (which took every salt of the ticket with their words).
    async fn audit_salt(
        tx: &mut Transaction<'static, D>,
        ticket: i64,
    ) -> StoreResult<(i64, [u8; 32])> {
        let kept: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, salt FROM audit_salts WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(ticket)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        if let Some((id, salt)) = kept {
            return Ok((id, rows::hex_array::<32>("audit salt", &salt)?));
        }
        let salt = crate::crypto::random_bytes::<32>();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_salts (ticket_id, salt) VALUES ($1, $2) RETURNING id",
        )
        .bind(ticket)
        .bind(hex(&salt))
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
        Ok((id, salt))
    }
}
