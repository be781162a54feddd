//! The canned reasons agents pick when rejecting.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db, is_unique_violation};
use crate::domain::Timestamp;
use crate::store::dialect::Dialect;
use crate::store::{Conflict, ReasonStore, StoreError, StoreResult, UserId};

#[async_trait]
impl<D: Dialect> ReasonStore for SqlStore<D>
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
    async fn canned_reasons(&self) -> StoreResult<Vec<(i64, String)>> {
        sqlx::query_as("SELECT id, text FROM canned_reasons ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn add_canned_reason(&self, text: &str, by: UserId, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO canned_reasons (text) VALUES ($1)")
            .bind(text)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Conflict::CannedReasonExists)
                } else {
                    db(e)
                }
            })?;
        let email = Self::user_email(&mut tx, by).await?;
        Self::append_audit(&mut tx, now, &email, "canned_reason_added", None, text).await?;
        tx.commit().await.map_err(db)
    }

    async fn remove_canned_reason(&self, id: i64, by: UserId, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let text: Option<String> =
            sqlx::query_scalar("DELETE FROM canned_reasons WHERE id = $1 RETURNING text")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let text = text.ok_or(StoreError::NotFound)?;
        let email = Self::user_email(&mut tx, by).await?;
        Self::append_audit(&mut tx, now, &email, "canned_reason_removed", None, &text).await?;
        tx.commit().await.map_err(db)
    }
}
