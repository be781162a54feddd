//! Signing in: sessions, the counting of failed attempts, and the second factor.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db};
use crate::crypto::{SealKeyId, SealedSecret};
use crate::domain::Timestamp;
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows;
use crate::store::{
    Conflict, LoginAttempt, LoginAttemptId, LoginLimits, LoginReservation, NewSession,
    SessionStage, SignInStore, StoreError, StoreResult, StoredSeed, User, UserId,
};

/// A bucket sign-in attempts are counted in (`Store::reserve_login_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginBucket {
    /// One account, from browsers without a device cookie for it.
    Account,
    /// One client network, from browsers without a device cookie for the account.
    Address,
    /// One device cookie.
    Device,
}

impl LoginBucket {
    /// The attempts counted in the bucket named by `$1` after `$2`, and the oldest.
    fn count_query(self) -> &'static str {
        match self {
            Self::Account => {
                "SELECT COUNT(*), MIN(at) FROM login_failures WHERE account = $1 AND device IS NULL AND at > $2"
            }
            Self::Address => {
                "SELECT COUNT(*), MIN(at) FROM login_failures WHERE address = $1 AND device IS NULL AND at > $2"
            }
            Self::Device => {
                "SELECT COUNT(*), MIN(at) FROM login_failures WHERE device = $1 AND at > $2"
            }
        }
    }

    /// A lock namespace of its own per kind of bucket ("RDLA", "RDLN", "RDLD"), for
    /// backends that lock buckets by name.
    fn lock_class(self) -> i32 {
        match self {
            Self::Account => 0x5244_4C41,
            Self::Address => 0x5244_4C4E,
            Self::Device => 0x5244_4C44,
        }
    }
}

/// A user's id and stored seed: in clear, sealed, and the sealing key's id.
type SeedColumns = (i64, Option<String>, Option<String>, Option<String>);

#[async_trait]
impl<D: Dialect> SignInStore for SqlStore<D>
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
    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, stage, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.token_hash)
        .bind(session.user.0)
        .bind(&session.csrf_token)
        .bind(session.stage.as_str())
        .bind(session.created_at.unix_seconds())
        .bind(session.created_at.unix_seconds())
        .bind(session.expires_at.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let email = Self::user_email(&mut tx, session.user).await?;
        let action = match session.stage {
            SessionStage::Full => "login",
            SessionStage::SecondFactor => "login_password_ok",
            SessionStage::Enrol => "login_enrolment_required",
        };
        Self::append_audit(&mut tx, session.created_at, &email, action, None, "").await?;
        tx.commit().await.map_err(db)
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle_secs: i64,
    ) -> StoreResult<(User, String, SessionStage)> {
        let found: Option<(i64, String, String)> = sqlx::query_as(
            "UPDATE sessions SET last_seen_at = $1, expires_at = $1 + CAST($2 AS BIGINT)
             WHERE token_hash = $3 AND expires_at > $1
             RETURNING user_id, csrf_token, stage",
        )
        .bind(now.unix_seconds())
        .bind(idle_secs)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let (user_id, csrf, stage) = found.ok_or(StoreError::NotFound)?;
        let stage = SessionStage::parse(&stage)
            .ok_or_else(|| rows::corrupt("session stage", stage.clone()))?;
        Ok((self.user_by_id(UserId(user_id)).await?, csrf, stage))
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt<'_>,
        limits: &LoginLimits,
    ) -> StoreResult<LoginReservation> {
        // A browser with a device cookie for the account counts in that cookie's bucket
        // alone; any other in the account's and its network's. Buckets are locked in this
        // order, account before address, so two attempts never wait on each other in a
        // circle.
        let buckets = match attempt.device {
            Some(device) => vec![(LoginBucket::Device, device, limits.per_device)],
            None => vec![
                (LoginBucket::Account, attempt.account, limits.per_account),
                (LoginBucket::Address, attempt.address, limits.per_address),
            ],
        };
        let since = attempt.at.unix_seconds() - limits.window_secs;
        let mut tx = self.write().await?;
        for (bucket, key, _) in &buckets {
            D::lock_bucket(&mut tx, bucket.lock_class(), key).await?;
        }
        for (bucket, key, limit) in &buckets {
            let (count, oldest): (i64, Option<i64>) = sqlx::query_as(bucket.count_query())
                .bind(*key)
                .bind(since)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            if count >= *limit {
                return Ok(LoginReservation::Refused {
                    oldest: oldest.map(rows::time).transpose()?,
                });
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO login_failures (account, address, device, at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(attempt.account)
        .bind(attempt.address)
        .bind(attempt.device)
        .bind(attempt.at.unix_seconds())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(LoginReservation::Counted(LoginAttemptId(id)))
    }

    async fn release_login_attempt(&self, id: LoginAttemptId) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE id = $1")
            .bind(id.0)
            .execute(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn clear_login_failures(&self, account: &str, device: Option<&str>) -> StoreResult<()> {
        let query = match device {
            Some(device) => {
                sqlx::query("DELETE FROM login_failures WHERE device = $1").bind(device)
            }
            None => sqlx::query("DELETE FROM login_failures WHERE account = $1 AND device IS NULL")
                .bind(account),
        };
        query.execute(self.writer()).await.map_err(db)?;
        Ok(())
    }

    async fn begin_totp_enrolment(&self, user: UserId, seed: &SealedSecret) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET totp_sealed = $1, totp_key_id = $2, totp_secret = NULL, totp_enabled_at = NULL,
                              totp_last_step = NULL
             WHERE id = $3 AND totp_enabled_at IS NULL",
        )
        .bind(&seed.ciphertext)
        .bind(seed.key_id.as_str())
        .bind(user.0)
        .execute(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn totp_seeds_to_seal(
        &self,
        current: &SealKeyId,
    ) -> StoreResult<Vec<(UserId, StoredSeed)>> {
        let rows: Vec<SeedColumns> = sqlx::query_as(
            "SELECT id, totp_secret, totp_sealed, totp_key_id FROM users
             WHERE totp_secret IS NOT NULL OR (totp_sealed IS NOT NULL AND totp_key_id <> $1)
             ORDER BY id",
        )
        .bind(current.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut seeds = Vec::with_capacity(rows.len());
        for (id, clear, sealed, key_id) in rows {
            if let Some(seed) = rows::stored_seed(clear, sealed, key_id)? {
                seeds.push((UserId(id), seed));
            }
        }
        Ok(seeds)
    }

    async fn reseal_totp_seed(
        &self,
        user: UserId,
        old: &StoredSeed,
        sealed: &SealedSecret,
    ) -> StoreResult<bool> {
        // Only if the row still holds `old`: a seed enrolled or re-sealed meanwhile wins.
        let query = match old {
            StoredSeed::Clear(seed) => sqlx::query(
                "UPDATE users SET totp_sealed = $1, totp_key_id = $2, totp_secret = NULL
                 WHERE id = $3 AND totp_sealed IS NULL AND totp_secret = $4",
            )
            .bind(&sealed.ciphertext)
            .bind(sealed.key_id.as_str())
            .bind(user.0)
            .bind(seed.expose().to_owned()),
            StoredSeed::Sealed(before) => sqlx::query(
                "UPDATE users SET totp_sealed = $1, totp_key_id = $2, totp_secret = NULL
                 WHERE id = $3 AND totp_sealed = $4 AND totp_key_id = $5",
            )
            .bind(&sealed.ciphertext)
            .bind(sealed.key_id.as_str())
            .bind(user.0)
            .bind(before.ciphertext.clone())
            .bind(before.key_id.as_str().to_owned()),
        };
        let updated = query
            .execute(self.writer())
            .await
            .map_err(db)?
            .rows_affected();
        Ok(updated == 1)
    }

    async fn confirm_totp_enrolment(
        &self,
        user: UserId,
        step: i64,
        recovery_hashes: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE users SET totp_enabled_at = $1, totp_last_step = $2
             WHERE id = $3 AND (totp_sealed IS NOT NULL OR totp_secret IS NOT NULL) AND totp_enabled_at IS NULL",
        )
        .bind(now.unix_seconds())
        .bind(step)
        .bind(user.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict(Conflict::NoPendingSecondFactor));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user.0)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let email = Self::user_email(&mut tx, user).await?;
        Self::append_audit(&mut tx, now, &email, "second_factor_enrolled", None, "").await?;
        tx.commit().await.map_err(db)
    }

    async fn accept_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user.0)
        .execute(self.writer())
        .await
        .map_err(db)?
        .rows_affected();
        Ok(updated == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now.unix_seconds())
        .bind(user.0)
        .bind(code_hash)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 1 {
            let email = Self::user_email(&mut tx, user).await?;
            Self::append_audit(&mut tx, now, &email, "recovery_code_used", None, "").await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(updated == 1)
    }
}
