//! Console users, what admins gave them, and their API tokens.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor, Transaction};

use super::{Param, SqlStore, Value, db, is_unique_violation};
use crate::domain::{EmailAddress, Roles, Timestamp};
use crate::store::dialect::{Dialect, RowsAffected};
use crate::store::rows::{self, GrantRow, UserRow};
use crate::store::{
    ApiTokenInfo, Conflict, Grant, GrantKind, NewApiToken, StoreError, StoreResult,
    TOKEN_USE_RESOLUTION_SECS, TokenScope, User, UserId, UserStore,
};

#[async_trait]
impl<D: Dialect> UserStore for SqlStore<D>
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
    async fn create_user(
        &self,
        email: &EmailAddress,
        password_hash: &str,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<UserId> {
        let mut tx = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, roles, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(email.as_str())
        .bind(password_hash)
        .bind(roles.to_stored())
        .bind(now.unix_seconds())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(Conflict::EmailTaken {
                    email: email.clone(),
                })
            } else {
                db(e)
            }
        })?;
        Self::record_grant(
            &mut tx,
            UserId(id),
            GrantKind::Created,
            Some(roles),
            actor,
            now,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            now,
            actor,
            "user_created",
            None,
            &format!("{email} as {roles}"),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(UserId(id))
    }

    async fn user_by_email(&self, email: &EmailAddress) -> StoreResult<User> {
        let row: Option<UserRow> = sqlx::query_as(concat!(user_select!(), "AND email = $1"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(concat!(user_select!(), "ORDER BY email"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn set_roles(
        &self,
        user: UserId,
        roles: Roles,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (email, before): (String, String) =
            sqlx::query_as("SELECT email, roles FROM users WHERE id = $1 AND kind = 'person'")
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .ok_or(StoreError::NotFound)?;
        let before = Roles::parse_stored(&before).ok_or_else(|| rows::corrupt("roles", &before))?;
        sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(roles.to_stored())
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let mut detail = format!("{email} is now {roles}");
        if let Some(added) = roles.added_to(before) {
            Self::record_grant(&mut tx, user, GrantKind::Roles, Some(added), actor, now).await?;
            detail.push_str(&format!(" (given {added})"));
        }
        Self::append_audit(&mut tx, now, actor, "roles_changed", None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn set_disabled(
        &self,
        user: UserId,
        disabled: bool,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = Self::person_email(&mut tx, user).await?;
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(disabled.then_some(now.unix_seconds()))
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Disabling takes the API tokens too: enabling the account again must not bring
        // back tokens that may have leaked with it.
        let (action, detail) = if disabled {
            Self::end_sessions(&mut tx, user).await?;
            let revoked = Self::revoke_all_tokens(&mut tx, user, now).await?;
            (
                "user_disabled",
                format!("{email}: sessions ended, {revoked} API token(s) revoked"),
            )
        } else {
            ("user_enabled", email)
        };
        Self::append_audit(&mut tx, now, actor, action, None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn set_password(
        &self,
        user: UserId,
        password_hash: &str,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = Self::person_email(&mut tx, user).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::end_sessions(&mut tx, user).await?;
        Self::revoke_all_tokens(&mut tx, user, now).await?;
        Self::record_grant(&mut tx, user, GrantKind::Password, None, actor, now).await?;
        Self::append_audit(&mut tx, now, actor, "password_reset", None, &email).await?;
        tx.commit().await.map_err(db)
    }

    async fn revoke_sessions(&self, user: UserId, actor: &str, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = Self::person_email(&mut tx, user).await?;
        Self::end_sessions(&mut tx, user).await?;
        Self::revoke_all_tokens(&mut tx, user, now).await?;
        Self::append_audit(&mut tx, now, actor, "sessions_revoked", None, &email).await?;
        tx.commit().await.map_err(db)
    }

    async fn grants_since(&self, since: Timestamp) -> StoreResult<Vec<Grant>> {
        let rows: Vec<GrantRow> = sqlx::query_as(
            "SELECT g.user_id, u.email AS user_email, g.kind, g.roles, g.granted_by, b.email AS by_email, g.at
             FROM user_grants g
             JOIN users u ON u.id = g.user_id
             JOIN users b ON b.id = g.granted_by
             WHERE g.at >= $1
             ORDER BY g.at, g.id",
        )
        .bind(since.unix_seconds())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn create_api_token(&self, token: &NewApiToken<'_>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, name, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.user.0)
        .bind(token.token_hash)
        .bind(token.name)
        .bind(token.scope.as_str())
        .bind(token.created_at.unix_seconds())
        .bind(token.expires_at.map(Timestamp::unix_seconds))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let email = Self::user_email(&mut tx, token.user).await?;
        let detail = format!("{} ({})", token.name, token.scope.as_str());
        Self::append_audit(
            &mut tx,
            token.created_at,
            &email,
            "api_token_created",
            None,
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn user_by_api_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<(User, TokenScope)> {
        let found: Option<(i64, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, user_id, scope, last_used_at FROM api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now.unix_seconds())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let (token_id, user_id, scope, last_used) = found.ok_or(StoreError::NotFound)?;
        // Once a minute at most: a write for every call would queue each behind the one
        // writer, for a figure people read in minutes. A record, not a check: when it
        // cannot be written (the writer busy, the database failing) the call goes on.
        if last_used.is_none_or(|at| now.unix_seconds() - at >= TOKEN_USE_RESOLUTION_SECS)
            && let Err(error) = sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(now.unix_seconds())
            .bind(token_id)
            .execute(self.writer())
            .await
        {
            tracing::warn!(error = %error, "a token's last use was not recorded");
        }
        let scope =
            TokenScope::parse(&scope).ok_or_else(|| rows::corrupt("token scope", scope.clone()))?;
        Ok((self.user_by_id(UserId(user_id)).await?, scope))
    }

    async fn api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiTokenInfo>> {
        let rows: Vec<rows::TokenRow> = sqlx::query_as(
            "SELECT id, name, scope, created_at, expires_at, revoked_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY id",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn revoke_api_token(
        &self,
        user: UserId,
        token_id: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL RETURNING name",
        )
        .bind(now.unix_seconds())
        .bind(token_id)
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let name = name.ok_or(StoreError::NotFound)?;
        let email = Self::user_email(&mut tx, user).await?;
        Self::append_audit(&mut tx, now, &email, "api_token_revoked", None, &name).await?;
        tx.commit().await.map_err(db)
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
    pub(super) async fn user_by_id(&self, user: UserId) -> StoreResult<User> {
        let row: Option<UserRow> = sqlx::query_as(concat!(user_select!(), "AND id = $1"))
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// A person's address, for changes admins make to accounts: the desk's own user
    /// (which approves automatic decisions) is no account to change, and is `NotFound`.
    pub(super) async fn person_email(
        tx: &mut Transaction<'static, D>,
        user: UserId,
    ) -> StoreResult<String> {
        sqlx::query_scalar("SELECT email FROM users WHERE id = $1 AND kind = 'person'")
            .bind(user.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)
    }

    pub(super) async fn user_email(
        tx: &mut Transaction<'static, D>,
        user: UserId,
    ) -> StoreResult<String> {
        sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)
    }

    pub(super) async fn end_sessions(
        tx: &mut Transaction<'static, D>,
        user: UserId,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.0)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Revokes every live API token of a user (whoever held the account may have made
    /// some); returns how many.
    pub(super) async fn revoke_all_tokens(
        tx: &mut Transaction<'static, D>,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now.unix_seconds())
        .bind(user.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(revoked)
    }

    /// Records what `actor` gave `user`. The giver is the console user whose address
    /// `actor` is; an actor that is no user's address (the command line's `cli`) leaves it
    /// empty. Addresses are unique and never change, so the lookup finds the admin who
    /// acted or nobody.
    pub(super) async fn record_grant(
        tx: &mut Transaction<'static, D>,
        user: UserId,
        kind: GrantKind,
        roles: Option<Roles>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_grants (user_id, kind, roles, granted_by, actor, at)
             VALUES ($1, $2, $3, (SELECT id FROM users WHERE email = $4), $4, $5)",
        )
        .bind(user.0)
        .bind(kind.as_str())
        .bind(roles.map(Roles::to_stored))
        .bind(actor)
        .bind(at.unix_seconds())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}
