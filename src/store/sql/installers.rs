//! Registered installers (issue 20): their rows, tokens and devices.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db, is_unique_violation};
use crate::domain::{DeviceSerial, EmailAddress, Timestamp};
use crate::store::dialect::Dialect;
use crate::store::rows;
use crate::store::{
    Conflict, DeviceSource, Installer, InstallerDevice, InstallerId, InstallerStore, Registered,
    StoreError, StoreResult,
};

const INSTALLER: &str =
    "SELECT id, email, company, created_at, suspended_at, suspended_reason FROM installers";

type InstallerRow = (i64, String, String, i64, Option<i64>, Option<String>);

fn installer(row: InstallerRow) -> StoreResult<Installer> {
    let (id, email, company, created_at, suspended_at, reason) = row;
    Ok(Installer {
        id: InstallerId(id),
        email: EmailAddress::parse(&email)
            .map_err(|_| rows::corrupt("installer e-mail", &email))?,
        company,
        created_at: rows::time(created_at)?,
        suspended: match suspended_at {
            Some(at) => Some((rows::time(at)?, reason.unwrap_or_default())),
            None => None,
        },
    })
}

const DEVICE: &str = "SELECT d.installer_id, i.email, d.serial, d.source, d.registered_at
     FROM installer_devices d JOIN installers i ON i.id = d.installer_id";

type DeviceRow = (i64, String, String, String, i64);

fn device(row: DeviceRow) -> StoreResult<InstallerDevice> {
    let (installer, installer_email, serial, source, registered_at) = row;
    Ok(InstallerDevice {
        installer: InstallerId(installer),
        installer_email,
        serial,
        source: DeviceSource::parse(&source).ok_or_else(|| rows::corrupt("source", &source))?,
        registered_at: rows::time(registered_at)?,
    })
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
    /// The installer's address, read in `tx`; `NotFound` for no such installer.
    async fn installer_email(
        tx: &mut sqlx::Transaction<'static, D>,
        installer: InstallerId,
    ) -> StoreResult<String> {
        sqlx::query_scalar("SELECT email FROM installers WHERE id = $1")
            .bind(installer.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)
    }

    /// Suspends an installer's track inside `tx` (an earlier suspension keeps its time and
    /// reason) and revokes every token of theirs: whoever holds one (a thief, if the mark
    /// of suspicion is right) can no longer register devices or send requests as them.
    /// Their address and the tokens revoked; `None` when there is no such installer.
    pub(super) async fn suspend_installer(
        tx: &mut sqlx::Transaction<'static, D>,
        installer: InstallerId,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<Option<(String, u64)>> {
        let email: Option<String> = sqlx::query_scalar(
            "UPDATE installers SET suspended_at = COALESCE(suspended_at, $1),
                    suspended_reason = COALESCE(suspended_reason, $2)
             WHERE id = $3 RETURNING email",
        )
        .bind(at.unix_seconds())
        .bind(reason)
        .bind(installer.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        let Some(email) = email else {
            return Ok(None);
        };
        let revoked = sqlx::query(
            "UPDATE installer_tokens SET revoked_at = $1 WHERE installer_id = $2 AND revoked_at IS NULL",
        )
        .bind(at.unix_seconds())
        .bind(installer.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(Some((
            email,
            crate::store::dialect::RowsAffected::rows_affected(&revoked),
        )))
    }
}

#[async_trait]
impl<D: Dialect> InstallerStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> i64: Value<'q, D>,
    for<'q> String: Value<'q, D>,
    for<'q> bool: Value<'q, D>,
    for<'q> Vec<u8>: Value<'q, D>,
    for<'q> Option<String>: Value<'q, D>,
    for<'q> Option<i64>: Value<'q, D>,
    for<'q> &'q str: Param<'q, D>,
    for<'q> &'q [u8]: Param<'q, D>,
    for<'q> Option<i64>: Param<'q, D>,
    for<'q> Option<String>: Param<'q, D>,
    for<'q> Option<&'q str>: Param<'q, D>,
    for<'q> Option<&'q [u8]>: Param<'q, D>,
    usize: ColumnIndex<D::Row>,
    for<'r> &'r str: ColumnIndex<D::Row>,
{
    async fn add_installer(
        &self,
        email: &EmailAddress,
        company: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<InstallerId> {
        let mut tx = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO installers (email, mailbox, company, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(email.as_str())
        .bind(email.mailbox())
        .bind(company)
        .bind(at.unix_seconds())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(Conflict::InstallerExists {
                    email: email.to_string(),
                })
            } else {
                db(e)
            }
        })?;
        let detail = format!("{email} ({company})");
        Self::append_audit(&mut tx, at, actor, "installer.add", None, &detail).await?;
        tx.commit().await.map_err(db)?;
        Ok(InstallerId(id))
    }

    async fn installer_by_email(&self, email: &EmailAddress) -> StoreResult<Installer> {
        // One installer per mailbox, however the address is spelled.
        let row: Option<InstallerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{INSTALLER} WHERE mailbox = $1"
        )))
        .bind(email.mailbox())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        installer(row.ok_or(StoreError::NotFound)?)
    }

    async fn installer(&self, id: InstallerId) -> StoreResult<Installer> {
        let row: Option<InstallerRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{INSTALLER} WHERE id = $1")))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        installer(row.ok_or(StoreError::NotFound)?)
    }

    async fn installers(&self) -> StoreResult<Vec<Installer>> {
        let rows: Vec<InstallerRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{INSTALLER} ORDER BY email")))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.into_iter().map(installer).collect()
    }

    async fn create_installer_token(
        &self,
        installer: InstallerId,
        token_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let email = Self::installer_email(&mut tx, installer).await?;
        sqlx::query(
            "INSERT INTO installer_tokens (installer_id, token_hash, scope, created_at)
             VALUES ($1, $2, 'submit', $3)",
        )
        .bind(installer.0)
        .bind(token_hash)
        .bind(at.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let detail = format!("{email}: a token with scope submit");
        Self::append_audit(&mut tx, at, actor, "installer.token", None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn installer_by_token(&self, token_hash: &str, now: Timestamp) -> StoreResult<Installer> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT installer_id FROM installer_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let id = InstallerId(id.ok_or(StoreError::NotFound)?);
        // At most once a minute per token, so a busy installer does not write per request;
        // best-effort: a request is not refused for its bookkeeping.
        let used = sqlx::query(
            "UPDATE installer_tokens SET last_used_at = $1
             WHERE token_hash = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now.unix_seconds())
        .bind(token_hash)
        .bind(now.unix_seconds() - 60)
        .execute(self.writer())
        .await;
        if let Err(error) = used {
            tracing::warn!(%error, "an installer token's last use was not recorded");
        }
        self.installer(id).await
    }

    async fn register_installer_devices(
        &self,
        installer: InstallerId,
        serials: &[DeviceSerial],
        source: DeviceSource,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Registered> {
        let mut tx = self.write().await?;
        let email = Self::installer_email(&mut tx, installer).await?;
        let mut added = 0;
        for serial in serials {
            // A serial registered again keeps its first registration (and its hold).
            let inserted = sqlx::query(
                "INSERT INTO installer_devices (installer_id, serial, source, registered_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (installer_id, serial) DO NOTHING",
            )
            .bind(installer.0)
            .bind(serial.as_str())
            .bind(source.as_str())
            .bind(at.unix_seconds())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            added += crate::store::dialect::RowsAffected::rows_affected(&inserted) as usize;
        }
        let registered = Registered {
            added,
            already: serials.len() - added,
        };
        // The serials themselves, so the log says which devices came to whom (the first
        // 50 of a large import, with how many more).
        let named: Vec<&str> = serials.iter().take(50).map(DeviceSerial::as_str).collect();
        let more = serials.len().saturating_sub(named.len());
        let detail = format!(
            "{email}: {} device(s) registered ({}), {} already: {}{}",
            registered.added,
            source.as_str(),
            registered.already,
            named.join(" "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        Self::append_audit(&mut tx, at, actor, "installer.devices", None, &detail).await?;
        tx.commit().await.map_err(db)?;
        Ok(registered)
    }

    async fn remove_installer_devices(
        &self,
        installer: InstallerId,
        serials: &[DeviceSerial],
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<usize> {
        let mut tx = self.write().await?;
        let email = Self::installer_email(&mut tx, installer).await?;
        let mut removed = Vec::new();
        for serial in serials {
            let deleted = sqlx::query(
                "DELETE FROM installer_devices WHERE installer_id = $1 AND serial = $2",
            )
            .bind(installer.0)
            .bind(serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if crate::store::dialect::RowsAffected::rows_affected(&deleted) > 0 {
                removed.push(serial.as_str());
            }
        }
        let detail = format!(
            "{email}: {} device(s) removed: {}",
            removed.len(),
            removed.join(" ")
        );
        Self::append_audit(
            &mut tx,
            at,
            actor,
            "installer.devices_removed",
            None,
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(removed.len())
    }

    async fn registrations_of(&self, serials: &[String]) -> StoreResult<Vec<InstallerDevice>> {
        // One query per serial (an export holds a few), each through the serial's index.
        let mut found = Vec::new();
        for serial in serials {
            let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{DEVICE} WHERE d.serial = $1 ORDER BY d.installer_id"
            )))
            .bind(serial.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            for row in rows {
                found.push(device(row)?);
            }
        }
        Ok(found)
    }

    async fn self_registrations(&self, limit: i64) -> StoreResult<Vec<InstallerDevice>> {
        let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{DEVICE} WHERE d.source = 'self' ORDER BY d.registered_at DESC, d.serial LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(device).collect()
    }

    async fn installer_device_counts(&self) -> StoreResult<Vec<(InstallerId, i64, i64)>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT installer_id,
                    SUM(CASE WHEN source = 'import' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN source = 'self' THEN 1 ELSE 0 END)
             FROM installer_devices GROUP BY installer_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(id, imported, registered)| (InstallerId(id), imported, registered))
            .collect())
    }

    async fn installer_devices(
        &self,
        installer: InstallerId,
        limit: i64,
    ) -> StoreResult<Vec<InstallerDevice>> {
        let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{DEVICE} WHERE d.installer_id = $1 ORDER BY d.registered_at DESC, d.serial LIMIT $2"
        )))
        .bind(installer.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(device).collect()
    }

    async fn set_installer_suspended(
        &self,
        installer: InstallerId,
        reason: Option<&str>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (action, detail) = match reason {
            Some(reason) => {
                let (email, revoked) = Self::suspend_installer(&mut tx, installer, reason, at)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let detail = format!("{email}: {reason}; {revoked} token(s) revoked");
                ("installer.suspend", detail)
            }
            None => {
                let email: Option<String> = sqlx::query_scalar(
                    "UPDATE installers SET suspended_at = NULL, suspended_reason = NULL
                     WHERE id = $1 RETURNING email",
                )
                .bind(installer.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                let email = email.ok_or(StoreError::NotFound)?;
                (
                    "installer.resume",
                    format!("{email} (it needs a new token)"),
                )
            }
        };
        Self::append_audit(&mut tx, at, actor, action, None, &detail).await?;
        tx.commit().await.map_err(db)
    }
}
