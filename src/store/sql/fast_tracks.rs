//! The desk's own decisions (issue 20): automatic approvals beside their record in
//! `automatic_decisions`, the supervisors' live switches, and agents' marks of suspicion.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Executor};

use super::{Param, SqlStore, Value, db};
use crate::domain::{EmailAddress, FastTrack, TicketNumber, Timestamp};
use crate::store::dialect::Dialect;
use crate::store::rows;
use crate::store::{
    AutomaticApproval, AutomaticDecision, AutomaticFilter, Conflict, FastTrackStore,
    FastTrackSwitch, InstallerId, Marked, StoreError, StoreResult, Suspicion, SuspicionMark,
    TicketEventKind, TicketId, UserId,
};

/// The lock namespace the per-address and per-installer counts are taken under
/// ("RDFT"): two replicas deciding for one address at once count one after the other.
const FAST_TRACK_LOCK: i32 = 0x5244_4654;

/// A day, for the limits.
const DAY_SECS: i64 = 24 * 3600;

const AUTOMATIC: &str =
    "SELECT t.number, a.track, i.email, a.recipient, a.recipient_mailbox, a.decided_at,
            u.email, a.suspicious_at, a.suspicious_note
     FROM automatic_decisions a
     JOIN tickets t ON t.id = a.ticket_id
     LEFT JOIN installers i ON i.id = a.installer_id
     LEFT JOIN users u ON u.id = a.suspicious_by";

type AutomaticRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn automatic(row: AutomaticRow) -> StoreResult<AutomaticDecision> {
    let (number, track, installer, recipient, recipient_mailbox, decided_at, by, at, note) = row;
    let suspicious = match (by, at) {
        (Some(by), Some(at)) => Some(Suspicion {
            by,
            at: rows::time(at)?,
            note: note.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(AutomaticDecision {
        ticket: TicketNumber::parse(&number)
            .map_err(|_| rows::corrupt("ticket number", &number))?,
        track: FastTrack::parse(&track).ok_or_else(|| rows::corrupt("fast track", &track))?,
        installer,
        recipient: EmailAddress::parse(&recipient)
            .map_err(|_| rows::corrupt("recipient", &recipient))?,
        recipient_mailbox,
        decided_at: rows::time(decided_at)?,
        suspicious,
    })
}

#[async_trait]
impl<D: Dialect> FastTrackStore for SqlStore<D>
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
    async fn desk_user(&self) -> StoreResult<UserId> {
        let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE kind = 'desk'")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(UserId(id))
    }

    async fn approve_automatically(&self, automatic: &AutomaticApproval) -> StoreResult<()> {
        let approval = &automatic.approval;
        let mut tx = self.write().await?;
        let since = approval.at.unix_seconds() - DAY_SECS;
        let earlier: i64 = match automatic.installer {
            Some(installer) => {
                D::lock_bucket(
                    &mut tx,
                    FAST_TRACK_LOCK,
                    &format!("installer {}", installer.0),
                )
                .await?;
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM automatic_decisions WHERE installer_id = $1 AND decided_at > $2",
                )
                .bind(installer.0)
                .bind(since)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?
            }
            None => {
                D::lock_bucket(&mut tx, FAST_TRACK_LOCK, &automatic.recipient_mailbox).await?;
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM automatic_decisions
                     WHERE recipient_mailbox = $1 AND track = $2 AND decided_at > $3",
                )
                .bind(automatic.recipient_mailbox.as_str())
                .bind(automatic.track.as_str())
                .bind(since)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?
            }
        };
        if earlier >= i64::from(automatic.limit) {
            return Err(StoreError::Conflict(Conflict::FastTrackLimit {
                limit: automatic.limit,
            }));
        }
        // Asked again in the transaction: a supervisor's switch or a mark of suspicion
        // committed since the desk looked stops this decision. The installer's row is
        // locked (PostgreSQL) so a suspension waits for this decision or stops it.
        if let Some(installer) = automatic.installer {
            let live = sqlx::query(
                "UPDATE installers SET suspended_at = suspended_at WHERE id = $1 AND suspended_at IS NULL",
            )
            .bind(installer.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if crate::store::dialect::RowsAffected::rows_affected(&live) == 0 {
                return Err(StoreError::Conflict(Conflict::FastTrackStopped));
            }
        }
        let switched: Option<i64> =
            sqlx::query_scalar("SELECT enabled FROM fast_track_switches WHERE track = $1")
                .bind(automatic.track.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if switched == Some(0) {
            return Err(StoreError::Conflict(Conflict::FastTrackStopped));
        }
        let how = format!(
            "; decided by the desk alone, fast track {}: {}",
            automatic.track, automatic.why
        );
        Self::approve_in(
            &mut tx,
            approval,
            automatic.customer_email.as_str(),
            &how,
            true,
        )
        .await?;
        sqlx::query(
            "INSERT INTO automatic_decisions (ticket_id, track, installer_id, recipient, recipient_mailbox, decided_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(approval.ticket_id)
        .bind(automatic.track.as_str())
        .bind(automatic.installer.map(|i| i.0))
        .bind(approval.mail.recipient.as_str())
        .bind(automatic.recipient_mailbox.as_str())
        .bind(approval.at.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn record_fast_track_declined(
        &self,
        ticket_id: TicketId,
        track: FastTrack,
        why: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let desk: String = sqlx::query_scalar("SELECT email FROM users WHERE kind = 'desk'")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let detail = format!("fast track {track}: {why}");
        Self::event(
            &mut tx,
            ticket_id,
            at,
            &desk,
            &TicketEventKind::FastTrackDeclined,
            &detail,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            at,
            &desk,
            "automatic.declined",
            Some(ticket_id),
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn automatic_decisions(
        &self,
        filter: &AutomaticFilter,
    ) -> StoreResult<Vec<AutomaticDecision>> {
        let rows: Vec<AutomaticRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{AUTOMATIC}
             WHERE ($1 = '' OR a.track = $1) AND ($2 = '' OR i.mailbox = $2)
               AND ($3 = 0 OR a.suspicious_at IS NOT NULL)
             ORDER BY a.decided_at DESC, a.ticket_id DESC LIMIT $4"
        )))
        .bind(filter.track.map_or("", FastTrack::as_str))
        .bind(
            filter
                .installer
                .as_ref()
                .map(|i| i.mailbox())
                .unwrap_or_default(),
        )
        .bind(i64::from(filter.only_suspicious))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(automatic).collect()
    }

    async fn automatic_decision(
        &self,
        ticket_id: TicketId,
    ) -> StoreResult<Option<AutomaticDecision>> {
        let row: Option<AutomaticRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{AUTOMATIC} WHERE a.ticket_id = $1"
        )))
        .bind(ticket_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(automatic).transpose()
    }

    async fn fast_track_switches(&self) -> StoreResult<Vec<FastTrackSwitch>> {
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT s.track, s.enabled, u.email, s.changed_at
             FROM fast_track_switches s JOIN users u ON u.id = s.changed_by ORDER BY s.track",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(track, enabled, changed_by, changed_at)| {
                Ok(FastTrackSwitch {
                    track: FastTrack::parse(&track)
                        .ok_or_else(|| rows::corrupt("fast track", &track))?,
                    enabled: enabled != 0,
                    changed_by,
                    changed_at: rows::time(changed_at)?,
                })
            })
            .collect()
    }

    async fn switch_fast_track(
        &self,
        track: FastTrack,
        enabled: bool,
        by: UserId,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let before: Option<i64> =
            sqlx::query_scalar("SELECT enabled FROM fast_track_switches WHERE track = $1")
                .bind(track.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        sqlx::query(
            "INSERT INTO fast_track_switches (track, enabled, changed_by, changed_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (track) DO UPDATE SET enabled = excluded.enabled,
                 changed_by = excluded.changed_by, changed_at = excluded.changed_at",
        )
        .bind(track.as_str())
        .bind(i64::from(enabled))
        .bind(by.0)
        .bind(at.unix_seconds())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let word = |on: bool| if on { "on" } else { "off" };
        let detail = format!(
            "fast track {track} switched {} (was {})",
            word(enabled),
            before.map_or("as the settings say", |b| word(b != 0))
        );
        let email = Self::user_email(&mut tx, by).await?;
        Self::append_audit(&mut tx, at, &email, "fast_track.switch", None, &detail).await?;
        tx.commit().await.map_err(db)
    }

    async fn mark_suspicious(&self, mark: &SuspicionMark) -> StoreResult<Marked> {
        let mut tx = self.write().await?;
        let row: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT track, installer_id, suspicious_at FROM automatic_decisions WHERE ticket_id = $1",
        )
        .bind(mark.ticket_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let (track, installer, _) = match row {
            None => return Err(StoreError::Conflict(Conflict::NotAutomatic)),
            Some((_, _, Some(_))) => return Err(StoreError::Conflict(Conflict::AlreadySuspicious)),
            Some(row) => row,
        };
        sqlx::query(
            "UPDATE automatic_decisions SET suspicious_at = $1, suspicious_by = $2, suspicious_note = $3
             WHERE ticket_id = $4",
        )
        .bind(mark.at.unix_seconds())
        .bind(mark.by.0)
        .bind(mark.note.as_str())
        .bind(mark.ticket_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let email = Self::user_email(&mut tx, mark.by).await?;
        let mut suspended = None;
        let mut revoked = 0;
        if let Some(installer) = installer {
            // The installer's requests go to agents until an admin lifts the suspension.
            let reason = format!("an automatic decision was marked suspicious by {email}");
            if let Some((address, tokens)) =
                Self::suspend_installer(&mut tx, InstallerId(installer), &reason, mark.at).await?
            {
                suspended = Some(address);
                revoked = tokens;
            }
        }
        let detail = match &suspended {
            Some(installer) => format!(
                "fast track {track}: {}; installer {installer} suspended, {revoked} token(s) revoked",
                mark.note
            ),
            None => format!("fast track {track}: {}", mark.note),
        };
        Self::event(
            &mut tx,
            mark.ticket_id,
            mark.at,
            &email,
            &TicketEventKind::MarkedSuspicious,
            &detail,
        )
        .await?;
        Self::append_audit(
            &mut tx,
            mark.at,
            &email,
            "automatic.suspicious",
            Some(mark.ticket_id),
            &detail,
        )
        .await?;
        for mail in &mark.mails {
            Self::enqueue(&mut tx, Some(mark.ticket_id), mail, mark.at).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(Marked { suspended })
    }
}
