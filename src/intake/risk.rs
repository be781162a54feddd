//! Risk rules: a ticket any rule fires on is flagged, and then needs two approvals from
//! two people, at least one a supervisor (see `review`). Each flag is a sentence the
//! agents read on the queue and the ticket.

use crate::desk::Desk;
use crate::domain::{EmailAddress, Timestamp};
use crate::protocol::{DeviceChallenge, PROTOCOL_V1};
use crate::store::StoreError;

/// Earlier requests for one device within this window flag a new one for four eyes.
/// An owner forgets a device's password perhaps once a year; a second reset within a
/// month is what someone taking the device over looks like (and a camera moved between
/// sites, or an entry copied into another export). A month keeps the owner's next
/// ordinary reset unflagged. Not [`crate::customer::SHORTENED_REVIEW_WINDOW_DAYS`]:
/// that one eases a repeat from the same customer; this one warns of anyone's. The flag
/// sentences below and docs/SECURITY.md say "30 days": change them together.
const FLAGGED_REPEAT_WINDOW_SECS: i64 = 30 * 24 * 3600;
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
    let Some(exporter) = devices.first().map(|d| d.identity.serial.as_str()) else {
        return Ok(flags);
    };
    if devices.len() > 1 && devices[0].version() == PROTOCOL_V1 {
        // Version 1 entries each carry their own MAC and nothing else: one copied out of
        // another device's export looks exactly like one exported with this device.
        flags.push("version 1 export: its devices are not bound together".to_owned());
    }
    let since = now.plus_seconds(-FLAGGED_REPEAT_WINDOW_SECS);
    for device in devices {
        let serial = device.identity.serial.as_str();
        // Every ticket has an exporting device, so the exporters of the window's tickets
        // naming this serial say both whether there were any and who exported them.
        let earlier = desk.store.exporters_of_serial_since(serial, since).await?;
        if !earlier.is_empty() {
            flags.push(format!("another request for {serial} in the last 30 days"));
        }
        // Defence in depth behind the version 2 binding: a camera belongs to one
        // recorder, so the same serial under another exporting device, or exported on
        // its own before and now inside a recorder's export, is how a stolen entry (or a
        // camera moved between sites) shows. Whichever ticket comes second carries it.
        let (alone, others): (Vec<String>, Vec<String>) = earlier
            .into_iter()
            .filter(|earlier_exporter| earlier_exporter != exporter)
            .partition(|earlier_exporter| earlier_exporter == serial);
        if !others.is_empty() {
            flags.push(format!(
                "{serial} was exported in the last 30 days as part of another device's export ({})",
                others.join(", ")
            ));
        }
        if !alone.is_empty() {
            flags.push(format!(
                "{serial} was exported on its own in the last 30 days and now comes in {exporter}'s export"
            ));
        }
        let age = now.seconds_since(device.issued_at);
        if age > STALE_EXPORT_SECS {
            flags.push(format!(
                "the export of {serial} was made {} hours before it was submitted (more than 24)",
                age / 3600
            ));
        }
    }
    flags.extend(address_flags(desk, customer).await?);
    if devices.len() > MAX_ORDINARY_DEVICES {
        flags.push(format!(
            "{} devices in one export (more than {MAX_ORDINARY_DEVICES})",
            devices.len()
        ));
    }
    Ok(flags)
}

/// Whether a request comes from inside, as flags: the customer's address is at one of
/// the `staff_domains` (or a subdomain), or is the mailbox of a console user (case,
/// `+tag` and Gmail's dots aside, `EmailAddress::mailbox`). An agent who sends a
/// request for their own device from such an address cannot approve it alone. Asked at
/// intake, and again at approval: a console user created after the request came in
/// still counts.
/// The rules that look only at the customer's address: the watch list and insiders.
/// Asked at intake, and again when a customer corrects the address, so a correction
/// cannot move a request out from under them.
pub async fn address_flags(
    desk: &Desk,
    customer: &EmailAddress,
) -> Result<Vec<String>, StoreError> {
    let mut flags = Vec::new();
    if desk
        .settings
        .four_eyes
        .watch_domains
        .iter()
        .any(|d| d == customer.domain())
    {
        flags.push(format!(
            "the customer's e-mail domain {} is on the watch list",
            customer.domain()
        ));
    }
    flags.extend(insider(desk, customer).await?);
    Ok(flags)
}

pub async fn insider(desk: &Desk, customer: &EmailAddress) -> Result<Vec<String>, StoreError> {
    let users = desk.store.users().await?;
    let addresses: Vec<&EmailAddress> = users.iter().map(|u| &u.email).collect();
    Ok(insider_flags(
        &desk.settings.four_eyes.staff_domains,
        &addresses,
        customer,
    ))
}

fn insider_flags(
    staff_domains: &[String],
    console_addresses: &[&EmailAddress],
    customer: &EmailAddress,
) -> Vec<String> {
    let domain = customer.domain();
    let staff_domain = staff_domains.iter().find(|d| {
        domain == d.as_str()
            || domain
                .strip_suffix(d.as_str())
                .is_some_and(|sub| sub.ends_with('.'))
    });
    let mut flags: Vec<String> = staff_domain
        .map(|d| format!("the customer's address belongs to staff: {d} is a staff domain"))
        .into_iter()
        .collect();
    let mailbox = customer.mailbox();
    flags.extend(
        console_addresses
            .iter()
            .filter(|a| a.mailbox() == mailbox)
            .map(|a| format!("the customer's address is the address of console user {a}")),
    );
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(staff: &[&str], console: &[&str], customer: &str) -> Vec<String> {
        let staff: Vec<String> = staff.iter().map(|d| d.to_string()).collect();
        let console: Vec<EmailAddress> = console
            .iter()
            .map(|a| EmailAddress::parse(a).unwrap())
            .collect();
        let console: Vec<&EmailAddress> = console.iter().collect();
        insider_flags(&staff, &console, &EmailAddress::parse(customer).unwrap())
    }

    #[test]
    fn staff_domains_and_their_subdomains_are_inside() {
        let staff = ["vendor.example"];
        assert_eq!(
            flags(&staff, &[], "ana@vendor.example"),
            ["the customer's address belongs to staff: vendor.example is a staff domain"]
        );
        assert_eq!(flags(&staff, &[], "ana@eu.vendor.example").len(), 1);
        assert!(flags(&staff, &[], "ana@notvendor.example").is_empty());
        assert!(flags(&staff, &[], "ana@vendor.example.net").is_empty());
        assert!(flags(&[], &[], "ana@vendor.example").is_empty());
    }

    #[test]
    fn a_console_users_address_is_inside_however_it_is_written() {
        let console = ["jo.smith@gmail.com", "Sam@vendor.example"];
        for customer in ["JoSmith+reset@googlemail.com", "jo.smith@gmail.com"] {
            assert_eq!(
                flags(&[], &console, customer),
                ["the customer's address is the address of console user jo.smith@gmail.com"],
                "{customer}"
            );
        }
        assert_eq!(flags(&[], &console, "sam+x@VENDOR.example").len(), 1);
        assert!(flags(&[], &console, "s.am@vendor.example").is_empty());
    }
}
