//! Data retention (issue 23): a decided ticket keeps its evidence (label photo, its
//! previews, earlier photos, the export and its QR picture) `photo_retention_days`
//! after the decision, and its customer's name, phone and company
//! `customer_retention_days` after; then they are deleted, each ticket's history and
//! the audit log saying so.
//!
//! Every replica offers to run it every `retention_interval_secs` (an hour); the one
//! that takes the `job_leases` row runs it, the others skip, as the blob sweeper does.
//! `resetdesk retention run [--now T]` runs it once. The store stops naming a ticket's
//! blobs and records the deletion in one transaction; the blobs are deleted right
//! after, and one a crash or a failing store left behind is no ticket's any more, so
//! the orphan sweep deletes it.

use std::time::Duration;

use actix_web::web;

use crate::blobs::BlobStore;
use crate::config::Retention;
use crate::desk::Desk;
use crate::domain::{TicketNumber, Timestamp};
use crate::store::{Store, StoreError};

/// The lease row's name.
const LEASE: &str = "retention";

/// Tickets handled per transaction: a first run over years of tickets commits as it goes.
const BATCH: u32 = 200;

const DAY_SECS: i64 = 86_400;

/// What one run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Whether this process held the lease and ran (another replica did otherwise).
    pub ran: bool,
    /// The tickets whose evidence was deleted.
    pub evidence: Vec<TicketNumber>,
    /// The blobs deleted with it.
    pub blobs: usize,
    /// Blobs that could not be deleted now: no ticket names them any more, so the
    /// orphan sweep deletes them later.
    pub blobs_left: usize,
    /// The tickets whose customer's name, phone and company were deleted.
    pub customers: Vec<TicketNumber>,
}

/// One run at `now`: takes the lease (as `holder`, for `lease_secs`), then deletes what
/// the retention periods of `settings` no longer allow to keep.
pub async fn run_once(
    store: &dyn Store,
    blobs: &BlobStore,
    settings: &Retention,
    holder: &str,
    now: Timestamp,
    lease_secs: i64,
) -> Result<Removed, StoreError> {
    if !store
        .take_lease(LEASE, holder, now, now.plus_seconds(lease_secs.max(60)))
        .await?
    {
        return Ok(Removed::default());
    }
    let mut removed = Removed {
        ran: true,
        ..Removed::default()
    };
    let evidence_before = now.plus_seconds(-i64::from(settings.photo_days) * DAY_SECS);
    loop {
        let batch = store
            .remove_evidence_decided_before(evidence_before, settings.photo_days, now, BATCH)
            .await?;
        // A blob another row still names (the same upload kept for an e-mail reply, or
        // taken into a newer ticket) stays: the orphan sweep has it once nothing does.
        let named: Vec<String> = batch.iter().flat_map(|t| t.blobs.clone()).collect();
        let still_named: std::collections::HashSet<String> =
            store.blobs_referenced(&named).await?.into_iter().collect();
        for ticket in &batch {
            for blob in ticket.blobs.iter().filter(|b| !still_named.contains(*b)) {
                match blobs.delete(blob).await {
                    Ok(()) => removed.blobs += 1,
                    Err(error) => {
                        tracing::warn!(ticket = %ticket.ticket, %error, "a deleted ticket's blob could not be removed now; the orphan sweep will");
                        removed.blobs_left += 1;
                    }
                }
            }
        }
        let full = batch.len() == BATCH as usize;
        removed
            .evidence
            .extend(batch.into_iter().map(|ticket| ticket.ticket));
        if !full {
            break;
        }
    }
    let customers_before = now.plus_seconds(-i64::from(settings.customer_days) * DAY_SECS);
    loop {
        let batch = store
            .remove_customer_details_decided_before(
                customers_before,
                settings.customer_days,
                now,
                BATCH,
            )
            .await?;
        let full = batch.len() == BATCH as usize;
        removed.customers.extend(batch);
        if !full {
            break;
        }
    }
    ::metrics::counter!("resetdesk_retention_evidence_removed_total")
        .increment(removed.evidence.len() as u64);
    ::metrics::counter!("resetdesk_retention_customers_removed_total")
        .increment(removed.customers.len() as u64);
    ::metrics::gauge!("resetdesk_retention_last_run_timestamp_seconds")
        .set(now.unix_seconds() as f64);
    if !removed.evidence.is_empty() || !removed.customers.is_empty() {
        tracing::info!(
            evidence = removed.evidence.len(),
            blobs = removed.blobs,
            blobs_left = removed.blobs_left,
            customers = removed.customers.len(),
            "data retention deleted what it keeps no longer"
        );
    }
    Ok(removed)
}

/// Runs every `retention_interval_secs` until `stopped`; off when that is 0.
pub async fn run(desk: web::Data<Desk>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let settings = desk.settings.retention.clone();
    if settings.interval_secs == 0 {
        return;
    }
    let holder = crate::sweeper::holder();
    let mut timer = tokio::time::interval(Duration::from_secs(settings.interval_secs));
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = stopped.changed() => return,
        }
        let lease = i64::try_from(settings.interval_secs).unwrap_or(i64::MAX);
        let now = desk.clock.now();
        if let Err(error) = run_once(
            desk.store.as_ref(),
            &desk.blobs,
            &settings,
            &holder,
            now,
            lease,
        )
        .await
        {
            tracing::error!(%error, "data retention failed; it runs again in an interval");
        }
    }
}

/// A customer erased on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub tickets: Vec<TicketNumber>,
    /// The blobs deleted with them.
    pub blobs: usize,
    /// Blobs that could not be deleted now: no row names them, so the orphan sweep does.
    pub blobs_left: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("no ticket has the address {0}: nothing was erased")]
    NoTickets(String),
    #[error(
        "tickets {} are still pending: decide (or reject) them first, then erase; nothing was erased",
        .0.iter().map(TicketNumber::as_str).collect::<Vec<_>>().join(", ")
    )]
    Pending(Vec<TicketNumber>),
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
    #[error("the erasure log beside the blobs could not be read or written: {0}")]
    Log(#[from] crate::blobs::BlobError),
}

/// One record of the erasure log, kept beside the blobs where a restore of the database
/// does not reach: when, and whose mailbox (an HMAC under the desk secret, not the
/// address).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ErasureRecord {
    at: i64,
    mailbox: String,
    /// The id of the desk secret the HMAC is under: a record of another secret cannot
    /// be matched, and is said so at start.
    #[serde(default)]
    key: String,
}

/// Erases the customer of `email` on request (`resetdesk customer erase`, docs/PRIVACY.md):
/// every ticket of their mailbox loses its personal fields, texts and files in one
/// transaction with its history, its audit entry and the confirmation mail (in the
/// language of their newest ticket); the erasure log gets a record (so a restored backup
/// is erased again at start); the blobs are deleted after. `by` is who asked (a console
/// user's address, or `cli`); `reason` is kept in the history and the log, and must not
/// name the customer.
#[allow(clippy::too_many_arguments)]
pub async fn erase_customer(
    store: &dyn Store,
    blobs: &BlobStore,
    mail: &crate::mail::compose::MailContext,
    secret: &crate::crypto::DeskSecret,
    email: &crate::domain::EmailAddress,
    by: &str,
    reason: &str,
    now: Timestamp,
) -> Result<Erased, ErasureError> {
    // What would refuse the erasure, said before anything is kept: a refused erasure
    // must leave no record for a later start to carry out.
    let tickets = store.customer_tickets(email).await?;
    if tickets.is_empty() {
        return Err(ErasureError::NoTickets(email.to_string()));
    }
    let pending: Vec<TicketNumber> = tickets
        .into_iter()
        .filter(|(_, status)| status.is_pending())
        .map(|(number, _)| number)
        .collect();
    if !pending.is_empty() {
        return Err(ErasureError::Pending(pending));
    }
    // Then the record: an erasure whose record could not be kept would come back with
    // the next restore. Should the erasure still be refused (a ticket reopened since the
    // check above), the record waits for a start after that ticket is decided.
    let record = ErasureRecord {
        at: now.unix_seconds(),
        mailbox: secret.erasure_digest(&email.mailbox()),
        key: secret.key_id(),
    };
    #[allow(clippy::expect_used)]
    let bytes = serde_json::to_vec(&record).expect("a record always serialises");
    blobs.put_erasure_record(bytes).await?;
    let confirmation = |to: &crate::domain::EmailAddress, language, tickets: &[TicketNumber]| {
        crate::mail::compose::erasure_confirmed(mail, language, to, tickets)
            .inspect_err(|error| {
                tracing::error!(%error, "the erasure's confirmation mail could not be written")
            })
            .ok()
    };
    let outcome = store
        .erase_customer(&crate::store::ErasureRequest {
            email,
            by,
            reason,
            confirmation: &confirmation,
            seal: &|words: &str| secret.erasure_seal(words),
            created_before: None,
            at: now,
        })
        .await?;
    let erased = erased_blobs(store, blobs, outcome, email).await?;
    tracing::info!(
        tickets = erased.tickets.len(),
        blobs = erased.blobs,
        "a customer erased on request"
    );
    Ok(erased)
}

/// The blobs of an erasure deleted (those no other row names), or why nothing was erased.
async fn erased_blobs(
    store: &dyn Store,
    blobs: &BlobStore,
    outcome: crate::store::ErasureOutcome,
    email: &crate::domain::EmailAddress,
) -> Result<Erased, ErasureError> {
    let (tickets, names) = match outcome {
        crate::store::ErasureOutcome::Erased { tickets, blobs } => (tickets, blobs),
        crate::store::ErasureOutcome::NoTickets => {
            return Err(ErasureError::NoTickets(email.to_string()));
        }
        crate::store::ErasureOutcome::Pending(pending) => {
            return Err(ErasureError::Pending(pending));
        }
    };
    let still_named: std::collections::HashSet<String> =
        store.blobs_referenced(&names).await?.into_iter().collect();
    let mut erased = Erased {
        tickets,
        blobs: 0,
        blobs_left: 0,
    };
    for name in names.iter().filter(|n| !still_named.contains(*n)) {
        match blobs.delete(name).await {
            Ok(()) => erased.blobs += 1,
            Err(error) => {
                tracing::warn!(%error, "an erased customer's blob could not be removed now; the orphan sweep will");
                erased.blobs_left += 1;
            }
        }
    }
    Ok(erased)
}

/// Erases again, at start, every customer the erasure log names whose tickets a restored
/// backup brought back: the tickets made before each erasure (a customer who wrote
/// again since keeps the new ones), with no mail. A ticket the backup holds as pending
/// is left, and said: an agent decides it, then `customer erase` runs again. Returns the
/// tickets erased again.
pub async fn reapply_erasures(
    store: &dyn Store,
    blobs: &BlobStore,
    secret: &crate::crypto::DeskSecret,
    now: Timestamp,
) -> Result<Vec<TicketNumber>, ErasureError> {
    let mut erased_at: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let key = secret.key_id();
    for bytes in blobs.erasure_records().await? {
        match serde_json::from_slice::<ErasureRecord>(&bytes) {
            Ok(record) if record.key != key => {
                tracing::error!(record_key = %record.key, desk_key = %key, "a record of the erasure log was made under another desk secret and cannot be matched: was desk-secret.key replaced?");
            }
            Ok(record) => {
                // Never later than now: a record dated ahead would erase the tickets a
                // returning customer sends until then.
                let when = record.at.min(now.unix_seconds());
                let at = erased_at.entry(record.mailbox).or_insert(when);
                *at = (*at).max(when);
            }
            Err(error) => {
                tracing::error!(%error, "a damaged record of the erasure log was skipped")
            }
        }
    }
    if erased_at.is_empty() {
        return Ok(Vec::new());
    }
    let mut again = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for address in store.customer_addresses().await? {
        let Ok(email) = crate::domain::EmailAddress::parse(&address) else {
            continue;
        };
        let mailbox = email.mailbox();
        if !seen.insert(mailbox.clone()) {
            continue;
        }
        let Some(at) = erased_at.get(&secret.erasure_digest(&mailbox)) else {
            continue;
        };
        let at = Timestamp::from_unix_seconds(*at).unwrap_or(now);
        let no_mail = |_: &crate::domain::EmailAddress, _, _: &[TicketNumber]| None;
        let reason = format!("re-applied after a restore: the customer was erased at {at}");
        let outcome = store
            .erase_customer(&crate::store::ErasureRequest {
                email: &email,
                by: "system",
                reason: &reason,
                confirmation: &no_mail,
                seal: &|words: &str| secret.erasure_seal(words),
                created_before: Some(at),
                at: now,
            })
            .await?;
        match erased_blobs(store, blobs, outcome, &email).await {
            Ok(erased) => {
                tracing::warn!(
                    tickets = erased.tickets.len(),
                    "an erased customer's tickets came back with a restore: erased again"
                );
                again.extend(erased.tickets);
            }
            Err(ErasureError::NoTickets(_)) => {}
            Err(ErasureError::Pending(pending)) => {
                let pending: Vec<&str> = pending.iter().map(TicketNumber::as_str).collect();
                tracing::error!(tickets = %pending.join(", "), "a restore brought back pending tickets of an erased customer: decide them, then run `resetdesk customer erase` again");
            }
            Err(other) => return Err(other),
        }
    }
    Ok(again)
}
