//! The database itself: migrations, reachability, and the counts the gauges read.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db};
use crate::domain::Timestamp;
use crate::store::dialect::Dialect;
use crate::store::rows;
use crate::store::{DatabaseStore, StoreError, StoreResult};

#[async_trait]
impl<D: Dialect> DatabaseStore for SqlStore<D>
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
    async fn migrate(&self) -> StoreResult<()> {
        D::migrator()
            .run(&self.pool)
            .await
            .map_err(StoreError::other)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn migrations_applied(&self) -> StoreResult<bool> {
        let known = D::migrator().iter().count() as i64;
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok(applied >= known)
    }

    async fn queue_stats(&self) -> StoreResult<(i64, Option<Timestamp>)> {
        let (open, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM tickets WHERE status IN ('open', 'awaiting_photo')")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok((open, oldest.map(rows::time).transpose()?))
    }

    async fn holds_tickets(&self) -> StoreResult<bool> {
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM tickets LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(any.is_some())
    }

    async fn holds_users(&self) -> StoreResult<bool> {
        let any: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE kind = 'person' LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        Ok(any.is_some())
    }
}
