//! Risk rules: a ticket any rule fires on is flagged, and then needs two approvals from
//! two people, at least one a supervisor (see `review`). Each flag is a sentence the
//! agents read on the queue and the ticket.

use crate::desk::Desk;
use crate::domain::{EmailAddress, Timestamp};
use crate::protocol::DeviceChallenge;
use crate::store::StoreError;

/// Requests for one device within this window are unusual.
const REPEAT_WINDOW_SECS: i64 = 30 * 24 * 3600;
/// An export older than this when submitted went through more hands than usual.
const STALE_EXPORT_SECS: i64 = 24 * 3600;
/// Exports covering more devices than this are unusual for one owner.
const MAX_ORDINARY_DEVICES: usize = 4;

pub async fn flags(
    desk: &Desk,
    customer: &EmailAddress,
    devices: &[DeviceChallenge],
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    let mut flags = Vec::new();
    for device in devices {
        let serial = device.identity.serial.as_str();
        let earlier = desk
            .store
            .tickets_for_serial_since(serial, now.plus_seconds(-REPEAT_WINDOW_SECS))
            .await?;
        if earlier > 0 {
            flags.push(format!("another request for {serial} in the last 30 days"));
        }
        let age = now.seconds_since(device.issued_at);
        if age > STALE_EXPORT_SECS {
            flags.push(format!(
                "the export of {serial} was made {} hours before it was submitted (more than 24)",
                age / 3600
            ));
        }
    }
    if desk
        .settings
        .watch_domains
        .iter()
        .any(|d| d == customer.domain())
    {
        flags.push(format!(
            "the customer's e-mail domain {} is on the watch list",
            customer.domain()
        ));
    }
    if devices.len() > MAX_ORDINARY_DEVICES {
        flags.push(format!(
            "{} devices in one export (more than {MAX_ORDINARY_DEVICES})",
            devices.len()
        ));
    }
    Ok(flags)
}
