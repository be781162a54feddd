//! The blob sweeper: removes uploads that no ticket names. Uploads are stored before
//! their ticket commits, so a process killed in between (or a lost commit acknowledgment
//! whose answer could not be checked, or a replaced photo whose removal failed) leaves an
//! object no row owns: a label photo is personal data, and it must not stay forever.
//!
//! Every replica offers to sweep every `blob_sweep_interval_secs`; the one that takes the
//! `job_leases` row sweeps, the others skip. Only blobs older than
//! `blob_sweep_grace_secs` are candidates: an intake in progress has stored its uploads
//! and not yet committed, and its blobs are young.

use std::collections::HashSet;
use std::time::Duration;

use actix_web::web;

use crate::blobs::{BlobError, BlobStore};
use crate::desk::Desk;
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// The lease row's name.
const LEASE: &str = "blob_sweep";

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("could not list or remove blobs")]
    Blobs(#[from] BlobError),
    #[error("could not check which blobs tickets name")]
    Store(#[from] StoreError),
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Whether this process held the lease and swept (another replica did otherwise).
    pub ran: bool,
    /// The blobs removed.
    pub removed: Vec<String>,
    /// Blobs no row names but younger than the grace period, left for a later round.
    pub young: usize,
}

/// One round: takes the lease (as `holder`, until `now` + `lease_secs`), then removes
/// every blob older than `grace_secs` at `now` that no row names.
pub async fn sweep_once(
    store: &dyn Store,
    blobs: &BlobStore,
    holder: &str,
    now: Timestamp,
    grace_secs: i64,
    lease_secs: i64,
) -> Result<Swept, SweepError> {
    if !store
        .take_lease(LEASE, holder, now, now.plus_seconds(lease_secs.max(60)))
        .await?
    {
        return Ok(Swept::default());
    }
    let mut swept = Swept {
        ran: true,
        ..Swept::default()
    };
    // The files of an e-mail the desk answered with what to fix wait for the customer's
    // reply only as long as an export lives: a label photo is personal data, and
    // senders the desk cannot tell from forgers must not fill its storage.
    let forgotten = store
        .forget_inbound_kept(now.plus_seconds(-crate::mail::inbound::KEPT_FOR_SECS))
        .await?;
    if forgotten > 0 {
        tracing::info!(forgotten, "files kept for e-mail replies expired");
    }
    let cutoff = now.unix_seconds() - grace_secs;
    let (old, young): (Vec<_>, Vec<_>) = blobs
        .list()
        .await?
        .into_iter()
        .partition(|(_, stored_at)| *stored_at <= cutoff);
    let old: Vec<String> = old.into_iter().map(|(name, _)| name).collect();
    let owned: HashSet<String> = store.blobs_referenced(&old).await?.into_iter().collect();
    for name in old.into_iter().filter(|n| !owned.contains(n)) {
        blobs.delete(&name).await?;
        swept.removed.push(name);
    }
    // Young blobs are not candidates; how many of them no row names yet is worth a line.
    let young: Vec<String> = young.into_iter().map(|(name, _)| name).collect();
    swept.young = young
        .len()
        .saturating_sub(store.blobs_referenced(&young).await?.len());
    ::metrics::counter!("resetdesk_blobs_swept_total").increment(swept.removed.len() as u64);
    ::metrics::gauge!("resetdesk_blobs_sweep_last_removed").set(swept.removed.len() as f64);
    ::metrics::gauge!("resetdesk_blobs_sweep_last_run_timestamp_seconds")
        .set(now.unix_seconds() as f64);
    if !swept.removed.is_empty() {
        tracing::info!(
            removed = swept.removed.len(),
            young = swept.young,
            "orphaned blobs removed"
        );
        // The names, so an operator can match them to a backup; a long round lists the
        // first hundred.
        let shown: Vec<&str> = swept.removed.iter().take(100).map(String::as_str).collect();
        let more = swept.removed.len() - shown.len();
        let detail = format!(
            "{} orphaned blob(s) older than {grace_secs} s removed: {}{}",
            swept.removed.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        store.audit(now, "system", "blobs_swept", &detail).await?;
    }
    Ok(swept)
}

/// A name for this process's lease, different on every start.
pub fn holder() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<6>())
    )
}

/// Sweeps every `blob_sweep_interval_secs` until `stopped`; off when that is 0.
pub async fn run(desk: web::Data<Desk>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let interval = desk.settings.storage.blob_sweep_interval_secs;
    if interval == 0 {
        return;
    }
    let holder = holder();
    let mut timer = tokio::time::interval(Duration::from_secs(interval));
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = stopped.changed() => return,
        }
        let lease = i64::try_from(interval).unwrap_or(i64::MAX);
        if let Err(error) = sweep_once(
            desk.store.as_ref(),
            &desk.blobs,
            &holder,
            desk.clock.now(),
            desk.settings.storage.blob_sweep_grace_secs,
            lease,
        )
        .await
        {
            tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "blob sweep failed; trying again next round");
        }
    }
}
