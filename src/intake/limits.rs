//! Rate limits for the public intake: per client network and per device serial, an hour
//! at a time. Counted in the database (`Store::reserve_intake`), as sign-in attempts
//! are: kept in each replica's memory, three replicas took three times the limits and a
//! restart forgot them (issue 16). Counting and checking are one transaction holding the
//! bucket's lock, so the documented limits hold for the whole deployment. An exceeded
//! limit is a 429 with Retry-After, never a 500.

use std::net::IpAddr;

use crate::desk::Desk;
use crate::domain::Timestamp;
use crate::store::{IntakeBucket, IntakeHit, IntakeReservation, StoreError};

/// The window both limits count in.
pub const WINDOW_SECS: i64 = 3600;

/// Whether a request may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Counted,
    /// The bucket keyed `key` is full: the client may try again in `retry_after` seconds.
    Refused {
        key: String,
        retry_after: i64,
    },
}

/// Counts a request from `client` (its network: an IPv4 address, or an IPv6 /64, as the
/// sign-in throttle counts it), before its body is read.
pub async fn admit_address(
    desk: &Desk,
    client: Option<IpAddr>,
    now: Timestamp,
) -> Result<Admission, StoreError> {
    let network = crate::auth::throttle::network_key(client);
    admit(
        desk,
        IntakeBucket::Address,
        &[network.as_str()],
        desk.settings.intake_per_ip_per_hour,
        now,
    )
    .await
}

/// Counts a request naming `serials`, once per serial; nothing is counted when one of
/// them is full.
pub async fn admit_serials(
    desk: &Desk,
    serials: &[&str],
    now: Timestamp,
) -> Result<Admission, StoreError> {
    admit(
        desk,
        IntakeBucket::Serial,
        serials,
        desk.settings.intake_per_serial_per_hour,
        now,
    )
    .await
}

async fn admit(
    desk: &Desk,
    bucket: IntakeBucket,
    keys: &[&str],
    limit: u32,
    now: Timestamp,
) -> Result<Admission, StoreError> {
    // Zero turns the limit off: nothing is counted.
    if limit == 0 || keys.is_empty() {
        return Ok(Admission::Counted);
    }
    let hits: Vec<IntakeHit<'_>> = keys
        .iter()
        .map(|key| IntakeHit {
            bucket,
            key,
            limit: i64::from(limit),
        })
        .collect();
    Ok(
        match desk.store.reserve_intake(&hits, now, WINDOW_SECS).await? {
            IntakeReservation::Counted => Admission::Counted,
            IntakeReservation::Refused { key, oldest } => Admission::Refused {
                key,
                retry_after: retry_after(oldest, now),
            },
        },
    )
}

/// Seconds until the oldest counted request leaves the window, at least one.
fn retry_after(oldest: Option<Timestamp>, now: Timestamp) -> i64 {
    oldest.map_or(WINDOW_SECS, |t| {
        (t.unix_seconds() + WINDOW_SECS - now.unix_seconds()).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn retry_when_the_oldest_request_leaves_the_window() {
        assert_eq!(retry_after(Some(at(0)), at(600)), 3000);
        assert_eq!(retry_after(Some(at(0)), at(3600)), 1, "never zero");
        assert_eq!(retry_after(None, at(0)), WINDOW_SECS);
    }
}
