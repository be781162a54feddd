//! The key registry: which keys the desk's replicas must hold, by id only.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db};
use crate::domain::Timestamp;
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows;
use crate::store::{
    KeyKind, KeyRecordStatus, KeyRegistryStore, RegisteredKey, StoreError, StoreResult,
};

#[async_trait]
impl<D: Dialect> KeyRegistryStore for SqlStore<D>
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
    async fn registered_keys(&self) -> StoreResult<Vec<RegisteredKey>> {
        let rows: Vec<rows::KeyRow> = sqlx::query_as(
            "SELECT key_id, kind, status, created_at, retired_at FROM key_registry ORDER BY created_at, key_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn register_key(&self, kind: KeyKind, key_id: &str, now: Timestamp) -> StoreResult<()> {
        // Without a conflict target: the key id and the one-master index both count.
        sqlx::query(
            "INSERT INTO key_registry (key_id, kind, status, created_at) VALUES ($1, $2, 'current', $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(key_id)
        .bind(kind.as_str())
        .bind(now.unix_seconds())
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn retire_key(&self, key_id: &str, actor: &str, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE key_registry SET status = 'retired', retired_at = COALESCE(retired_at, $2)
             WHERE key_id = $1 AND kind = 'signing'",
        )
        .bind(key_id)
        .bind(now.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Self::append_audit(&mut tx, now, actor, "key_retired", None, key_id).await?;
        tx.commit().await.map_err(db)
    }

    async fn key_status(&self, key_id: &str) -> StoreResult<Option<KeyRecordStatus>> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM key_registry WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        status
            .map(|s| KeyRecordStatus::parse(&s).ok_or_else(|| rows::corrupt("key status", s)))
            .transpose()
    }
}
