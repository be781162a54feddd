//! The canned texts agents pick: rejection reasons and photo requests, each with the
//! console's text (`canned_reasons.text`) and one per other language
//! (`canned_reason_texts`).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db, is_unique_violation};
use crate::domain::{CannedKind, CannedText, CannedWords, Timestamp};
use crate::i18n::Lang;
use crate::store::dialect::Dialect;
use crate::store::{Conflict, ReasonStore, StoreError, StoreResult, UserId};

/// A unique violation here is words their kind already has.
fn exists_or_db(e: sqlx::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(Conflict::CannedReasonExists)
    } else {
        db(e)
    }
}

/// One canned text and each of its translations, read in one statement so an edit
/// committed meanwhile is seen whole or not at all.
const CANNED: &str = "SELECT r.id, r.kind, r.text, x.language, x.text
     FROM canned_reasons r LEFT JOIN canned_reason_texts x ON x.reason_id = r.id";

type CannedRow = (i64, String, String, Option<String>, Option<String>);

/// The rows of [`CANNED`] (a text's rows together) as canned texts, in their order.
fn assembled(rows: Vec<CannedRow>) -> StoreResult<Vec<CannedText>> {
    let mut texts: Vec<CannedText> = Vec::new();
    for (id, kind, text, language, translated) in rows {
        if texts.last().is_none_or(|last| last.id != id) {
            let kind = CannedKind::parse(&kind).ok_or_else(|| {
                StoreError::Other(
                    format!("canned reason {id} has the unknown kind {kind:?}").into(),
                )
            })?;
            texts.push(CannedText {
                id,
                kind,
                text,
                translations: Vec::new(),
            });
        }
        // A language the desk no longer speaks is not shown (an edit drops it).
        if let (Some(lang), Some(translated)) =
            (language.as_deref().and_then(Lang::parse), translated)
            && let Some(last) = texts.last_mut()
        {
            last.translations.push((lang, translated));
        }
    }
    Ok(texts)
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    for<'q> Option<String>: Value<'q, D>,
    usize: ColumnIndex<D::Row>,
{
    async fn read_canned(executor: &mut D::Connection, id: i64) -> StoreResult<CannedText> {
        let rows: Vec<CannedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{CANNED} WHERE r.id = $1 ORDER BY x.language"
        )))
        .bind(id)
        .fetch_all(&mut *executor)
        .await
        .map_err(db)?;
        assembled(rows)?.pop().ok_or(StoreError::NotFound)
    }

    /// Replaces the translations of canned text `id` with `words`'.
    async fn write_translations(
        executor: &mut D::Connection,
        id: i64,
        words: &CannedWords,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM canned_reason_texts WHERE reason_id = $1")
            .bind(id)
            .execute(&mut *executor)
            .await
            .map_err(db)?;
        for (lang, text) in &words.translations {
            sqlx::query(
                "INSERT INTO canned_reason_texts (reason_id, language, text) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(lang.code())
            .bind(text.as_str())
            .execute(&mut *executor)
            .await
            .map_err(db)?;
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> ReasonStore for SqlStore<D>
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
    async fn canned_reasons(&self) -> StoreResult<Vec<CannedText>> {
        let rows: Vec<CannedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{CANNED} ORDER BY r.kind DESC, r.id, x.language"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        assembled(rows)
    }

    async fn canned_reason(&self, id: i64) -> StoreResult<CannedText> {
        let mut connection = self.pool.acquire().await.map_err(db)?;
        Self::read_canned(&mut connection, id).await
    }

    async fn add_canned_reason(
        &self,
        kind: CannedKind,
        words: &CannedWords,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO canned_reasons (kind, text) VALUES ($1, $2) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(words.text.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(exists_or_db)?;
        Self::write_translations(&mut tx, id, words).await?;
        let email = Self::user_email(&mut tx, by).await?;
        let detail = format!("{kind} {id}: {}", words.audited());
        Self::append_audit(&mut tx, now, &email, "canned_reason_added", None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn edit_canned_reason(
        &self,
        id: i64,
        words: &CannedWords,
        by: UserId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let old = Self::read_canned(&mut tx, id).await?;
        sqlx::query("UPDATE canned_reasons SET text = $1 WHERE id = $2")
            .bind(words.text.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(exists_or_db)?;
        Self::write_translations(&mut tx, id, words).await?;
        let email = Self::user_email(&mut tx, by).await?;
        let detail = format!(
            "{} {id}: {} → {}",
            old.kind,
            old.words().audited(),
            words.audited()
        );
        Self::append_audit(&mut tx, now, &email, "canned_reason_edited", None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn remove_canned_reason(&self, id: i64, by: UserId, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let old = Self::read_canned(&mut tx, id).await?;
        // Its translations go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM canned_reasons WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let email = Self::user_email(&mut tx, by).await?;
        let detail = format!("{} {id}: {}", old.kind, old.words().audited());
        Self::append_audit(&mut tx, now, &email, "canned_reason_removed", None, &detail).await?;
        tx.commit().await.map_err(db)
    }
}
