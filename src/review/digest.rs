//! The supervisors' daily e-mail: the tickets waiting for a second approval.
//!
//! A flagged ticket approved once waits for a second person, at least one of the two a
//! supervisor; a supervisor who does not look at the queue learns of it here, once a day
//! from `second_approval_digest_hour` (UTC). Every replica offers to send it each minute;
//! the one that takes the day's lease (held until the same hour tomorrow) composes one
//! mail per supervisor and queues them all in one transaction with an audit entry. A day
//! with no ticket waiting sends nothing.

use std::time::Duration;

use actix_web::web;

use crate::desk::Desk;
use crate::domain::{Role, Timestamp};
use crate::mail::compose::{self, DigestLine};
use crate::store::{QueueFilter, StoreError};

/// The lease row's name.
const LEASE: &str = "second_approval_digest";
/// Tickets listed in full; the mail counts the rest.
const MAX_LINES: i64 = 50;
const DAY_SECS: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("could not read the waiting tickets or the supervisors")]
    Store(#[from] StoreError),
    #[error("could not load a waiting ticket")]
    Review(#[from] super::ReviewError),
    #[error(transparent)]
    Render(#[from] compose::RenderError),
}

/// What one offer to send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digest {
    /// The setting is off, or today's hour has not come.
    NotDue,
    /// Another replica (or this one, earlier) sent today's.
    SentElsewhere,
    /// Today's was due and taken here: `tickets` wait, `mails` were queued (none when
    /// nothing waits or no supervisor exists).
    Sent { tickets: i64, mails: usize },
}

/// The start (midnight UTC) of the day `now` falls in, in Unix seconds.
fn day_start(now: Timestamp) -> i64 {
    let seconds = now.unix_seconds();
    seconds - seconds.rem_euclid(DAY_SECS)
}

/// When today's digest is due (`hour` UTC of the day `now` falls in).
fn due_at(now: Timestamp, hour: u8) -> i64 {
    day_start(now) + i64::from(hour) * 3600
}

/// Sends today's digest if it is due and nobody sent it yet; `holder` names this
/// process in the lease.
pub async fn send_if_due(desk: &Desk, holder: &str, now: Timestamp) -> Result<Digest, DigestError> {
    let Some(hour) = desk.settings.console.second_approval_digest_hour else {
        return Ok(Digest::NotDue);
    };
    let due = due_at(now, hour);
    if now.unix_seconds() < due {
        return Ok(Digest::NotDue);
    }
    let until = Timestamp::from_unix_seconds(due + DAY_SECS).unwrap_or(now);
    if !desk.store.take_lease(LEASE, holder, now, until).await? {
        return Ok(Digest::SentElsewhere);
    }
    let sent = compose_and_queue(desk, now).await;
    if sent.is_err() {
        // Nothing was queued: give the day's lease back, so this replica or another
        // tries again in a minute rather than tomorrow.
        if let Err(error) = desk.store.take_lease(LEASE, holder, now, now).await {
            tracing::warn!(error = %error, "the digest's lease could not be given back");
        }
    }
    sent
}

/// Today's digest, queued for every supervisor in one transaction.
async fn compose_and_queue(desk: &Desk, now: Timestamp) -> Result<Digest, DigestError> {
    let total = desk.store.awaiting_second_approval_count().await?;
    let supervisors: Vec<_> = desk
        .store
        .users()
        .await?
        .into_iter()
        .filter(|u| !u.disabled && u.roles.contains(Role::Supervisor))
        .collect();
    if total == 0 || supervisors.is_empty() {
        return Ok(Digest::Sent {
            tickets: total,
            mails: 0,
        });
    }
    let waiting = desk
        .store
        .tickets(&QueueFilter {
            awaiting_second_approval: true,
            limit: MAX_LINES,
            ..Default::default()
        })
        .await?;
    let base = desk.settings.http.public_url.trim_end_matches('/');
    let mut lines = Vec::new();
    for ticket in waiting {
        let detail = super::load(desk, &ticket.number).await?;
        lines.push(DigestLine {
            link: format!("{base}/console/tickets/{}", ticket.number),
            number: ticket.number.to_string(),
            expires: format!("{} UTC", ticket.export_expires_at.shown_utc()),
            customer: format!("{} <{}>", ticket.customer_name, ticket.customer_email),
            first_approver: detail
                .approvals
                .first()
                .map(|a| format!("{} ({})", a.email, a.as_role.as_str()))
                .unwrap_or_default(),
            flags: ticket.flags.join("; "),
        });
    }
    let day = &now.to_string()[..10];
    let queue_url = format!("{base}/console?status={}", super::AWAITING_SECOND_APPROVAL);
    let mails = supervisors
        .iter()
        .map(|s| {
            compose::second_approval_digest(&desk.mail, &s.email, day, total, &lines, &queue_url)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let detail = format!(
        "{total} ticket(s) waiting for a second approval, mailed to {} supervisor(s)",
        mails.len()
    );
    desk.store
        .queue_mails(&mails, now, "system", "digest.second_approval", &detail)
        .await?;
    desk.mail_queued.notify_one();
    Ok(Digest::Sent {
        tickets: total,
        mails: mails.len(),
    })
}

/// Offers to send the digest every minute until `stopped`.
pub async fn run(desk: web::Data<Desk>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    if desk.settings.console.second_approval_digest_hour.is_none() {
        return;
    }
    let holder = crate::sweeper::holder();
    let mut timer = tokio::time::interval(Duration::from_secs(60));
    // Once this process took a day's digest, it does not ask again that day: the lease
    // would let its own holder in twice.
    let mut sent_until = 0;
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = stopped.changed() => return,
        }
        let now = desk.clock.now();
        if now.unix_seconds() < sent_until {
            continue;
        }
        match send_if_due(&desk, &holder, now).await {
            Ok(Digest::Sent { tickets, mails }) => {
                tracing::info!(tickets, mails, "second-approval digest queued");
                sent_until = day_start(now) + DAY_SECS;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "the second-approval digest failed; trying again in a minute");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_due_from_its_hour_of_the_utc_day() {
        let at = |raw: &str| Timestamp::parse_rfc3339(raw).unwrap();
        assert_eq!(
            due_at(at("2026-12-06T07:59:59Z"), 8),
            at("2026-12-06T08:00:00Z").unix_seconds()
        );
        assert_eq!(
            due_at(at("2026-12-06T23:10:00Z"), 8),
            at("2026-12-06T08:00:00Z").unix_seconds()
        );
        assert_eq!(
            due_at(at("2026-12-06T00:00:00Z"), 0),
            at("2026-12-06T00:00:00Z").unix_seconds()
        );
    }
}
