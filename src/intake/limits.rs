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

/// What intake accepts: the size of each upload, how far a device's clock may run
/// ahead, which protocol versions, and how many requests an hour. The settings build it
/// (`crate::config`); intake owns it, so the defaults sit beside the checks they bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Largest label photo, in bytes.
    pub max_label_photo_bytes: u64,
    /// Largest QR picture, in bytes (XML exports and reset strings have fixed caps).
    pub max_export_bytes: u64,
    /// Largest label photo in pixels, checked from the header before decoding.
    pub max_label_pixels: u64,
    /// How far ahead of the desk a device's clock may be.
    pub max_clock_skew_secs: i64,
    /// Whether exports in protocol version 1 (entries not bound to their export) are
    /// taken at all; a version 1 export of several devices always needs four eyes.
    pub accept_v1_exports: bool,
    /// Intake requests (form and API) one client address may make per hour; 0: no limit.
    pub per_ip_per_hour: u32,
    /// Intake requests naming one device serial per hour; 0: no limit.
    pub per_serial_per_hour: u32,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self {
            max_label_photo_bytes: 15 * 1024 * 1024,
            max_export_bytes: 15 * 1024 * 1024,
            max_label_pixels: super::photo::DEFAULT_MAX_LABEL_PIXELS,
            max_clock_skew_secs: crate::protocol::DEFAULT_MAX_CLOCK_SKEW_SECS,
            accept_v1_exports: true,
            per_ip_per_hour: 30,
            per_serial_per_hour: 6,
        }
    }
}

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
        desk.settings.intake.per_ip_per_hour,
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
        desk.settings.intake.per_serial_per_hour,
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

/// Seconds until the oldest counted request leaves the window: at least one, and never
/// more than the window, though another replica's clock (which counted that request) runs
/// a little ahead of this one's.
fn retry_after(oldest: Option<Timestamp>, now: Timestamp) -> i64 {
    oldest.map_or(WINDOW_SECS, |t| {
        (t.unix_seconds() + WINDOW_SECS - now.unix_seconds()).clamp(1, WINDOW_SECS)
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
        assert_eq!(
            retry_after(Some(at(2)), at(0)),
            WINDOW_SECS,
            "counted by a replica whose clock runs ahead"
        );
    }
}
