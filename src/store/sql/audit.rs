//! The audit log: appending to its hash chain (`crate::audit::chain`), and reading it.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db, without_controls};
use crate::audit::chain::AuditEntry;
use crate::domain::Timestamp;
use crate::store::dialect::Dialect;
use crate::store::rows::{self, hex};
use crate::store::{AuditStore, NewMail, StoreResult, TicketId};

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
        let rows: Vec<rows::AuditRow> = sqlx::query_as(
            "SELECT id, at, actor, action, ticket_id, detail, prev_hash, hash FROM audit_log
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) ORDER BY id DESC LIMIT $3",
        )
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
        let rows: Vec<rows::AuditRow> = sqlx::query_as(
            "SELECT id, at, actor, action, ticket_id, detail, prev_hash, hash FROM audit_log
             WHERE id > $1 AND at >= $2 ORDER BY id LIMIT $3",
        )
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
        let mut rows = Vec::with_capacity(entries.len());
        for (ticket_id, detail) in entries {
            id += 1;
            let hash = crate::audit::chain::entry_hash(
                &prev_hash, id, at, actor, action, *ticket_id, detail,
            );
            rows.push((id, *ticket_id, detail, hex(&prev_hash), hex(&hash)));
            prev_hash = hash;
        }
        let mut insert = sqlx::QueryBuilder::<D>::new(
            "INSERT INTO audit_log (id, at, actor, action, ticket_id, detail, prev_hash, hash) ",
        );
        insert.push_values(rows, |mut row, (id, ticket_id, detail, prev, hash)| {
            row.push_bind(id)
                .push_bind(at.unix_seconds())
                .push_bind(actor)
                .push_bind(action)
                .push_bind(ticket_id)
                .push_bind(detail.as_str())
                .push_bind(prev)
                .push_bind(hash);
        });
        insert.build().execute(&mut **tx).await.map_err(db)?;
        Ok(())
    }
}
