//! A ticket's history, and an agent's step recorded in it and in the audit log.

use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Step, Value, db};
use crate::domain::Timestamp;
use crate::store::dialect::Dialect;
use crate::store::{NewMail, StoreResult, TicketEventKind, TicketId};

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
    pub(super) async fn event(
        tx: &mut Transaction<'static, D>,
        ticket_id: TicketId,
        at: Timestamp,
        actor: &str,
        kind: &TicketEventKind,
        detail: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO ticket_events (ticket_id, at, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ticket_id)
        .bind(at.unix_seconds())
        .bind(actor)
        .bind(kind.as_str())
        .bind(detail)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Finishes a step whose state change `tx` already made: history entry, audit entry,
    /// the customer's mail if any, all committed together.
    pub(super) async fn record_step(
        mut tx: Transaction<'static, D>,
        step: &Step<'_>,
        mail: Option<&NewMail>,
    ) -> StoreResult<()> {
        let email = Self::user_email(&mut tx, step.by).await?;
        Self::event(
            &mut tx,
            step.ticket_id,
            step.at,
            &email,
            &step.event,
            step.detail,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            step.at,
            &email,
            step.action,
            Some(step.ticket_id),
            step.detail,
        )
        .await?;
        if let Some(mail) = mail {
            Self::enqueue(&mut tx, Some(step.ticket_id), mail, step.at).await?;
        }
        tx.commit().await.map_err(db)
    }
}
