//! The reserved e-mail rule, condition by condition, on tickets built here (the stories
//! on both backends are in tests/it/fast_track.rs).

use super::*;
use crate::crypto::DeviceKey;
use crate::domain::{
    CountryCode, CustomerRole, DeviceModel, DeviceSerial, FirmwareVersion, PlainText, TicketNumber,
};
use crate::i18n::Lang;
use crate::protocol::{DeviceChallenge, DeviceIdentity, ExportBinding, ExportId, Nonce};
use crate::store::{ExportForm, TicketId, TicketSummary};

const NOW: i64 = 1_800_000_000;

fn device(
    serial: &str,
    reserved: Option<&str>,
    binding: Option<&ExportBinding>,
) -> DeviceChallenge {
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-2CD2143G2-I").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V5.7.3").unwrap(),
        mac_address: None,
        reserved_email: reserved.map(|e| EmailAddress::parse(e).unwrap()),
    };
    let key = DeviceKey::from_bytes([7; 32]);
    let issued_at = Timestamp::from_unix_seconds(NOW - 10 * 60).unwrap();
    match binding {
        Some(binding) => DeviceChallenge::issue_bound(
            identity,
            Nonce::random(),
            issued_at,
            binding.clone(),
            &key,
        ),
        None => DeviceChallenge::issue(identity, Nonce::random(), issued_at, &key),
    }
}

fn binding() -> ExportBinding {
    ExportBinding {
        export_id: ExportId::random(),
        exported_by: DeviceSerial::parse("NVR0001234567").unwrap(),
    }
}

/// An open ticket from `submitter` for an NVR and a camera, both reserved to
/// owner@example.com, in a version 2 export made ten minutes before `NOW`.
fn ticket(submitter: &str) -> TicketDetail {
    let binding = binding();
    let devices = vec![
        device("NVR0001234567", Some("owner@example.com"), Some(&binding)),
        device("CAM0007654321", Some("Owner@Example.com"), Some(&binding)),
    ];
    let number = TicketNumber::generate();
    TicketDetail {
        id: TicketId(1),
        summary: TicketSummary {
            id: TicketId(1),
            number,
            status: TicketStatus::Open,
            created_at: Timestamp::from_unix_seconds(NOW - 60).unwrap(),
            device_count: 2,
            first_model: "DS-2CD2143G2-I".to_owned(),
            first_serial: "NVR0001234567".to_owned(),
            export_expires_at: Timestamp::from_unix_seconds(NOW + 3600).unwrap(),
            customer_name: "Ana".to_owned(),
            customer_email: submitter.to_owned(),
            claimed_by: None,
            flags: Vec::new(),
        },
        customer: Customer {
            name: PlainText::parse("Ana", 100).unwrap(),
            email: EmailAddress::parse(submitter).unwrap(),
            phone: None,
            company: None,
            country: CountryCode::parse("ES").unwrap(),
            role: CustomerRole::EndUser,
            purchase_channel: None,
            language: Lang::En,
        },
        export_form: ExportForm::Xml,
        export_blob: None,
        label_blob: "label".to_owned(),
        label_media_type: "image/jpeg".to_owned(),
        evidence_version: 1,
        devices,
        decided_by: None,
        decision_reason: None,
        superseded_by: None,
        repeat_of: None,
        installer: None,
        responses: Vec::new(),
        approvals: Vec::new(),
        events: Vec::new(),
        mails: Vec::new(),
        messages: Vec::new(),
        evidence_removed_at: None,
        customer_removed_at: None,
        erased_at: None,
    }
}

fn matches() -> Vec<(String, LabelFinding)> {
    vec![
        ("NVR0001234567".to_owned(), LabelFinding::Matches),
        ("CAM0007654321".to_owned(), LabelFinding::NotOnLabel),
    ]
}

fn decide(ticket: &TicketDetail, findings: &[(String, LabelFinding)]) -> Result<String, Declined> {
    reserved_email(
        ticket,
        Some(findings),
        Timestamp::from_unix_seconds(NOW).unwrap(),
        60,
    )
    .map(|to| to.as_str().to_owned())
}

#[test]
fn answers_the_submitter_whose_mailbox_every_device_reserves_at_the_devices_address() {
    // The submitter wrote a +tag: the same mailbox, and the response goes to the
    // address as the device holds it, not as the submitter typed it.
    assert_eq!(
        decide(&ticket("owner+reset@example.com"), &matches()),
        Ok("owner@example.com".to_owned())
    );
}

#[test]
fn another_submitter_goes_to_agents_with_the_reason_agents_read() {
    let declined = decide(&ticket("someone@example.net"), &matches()).unwrap_err();
    assert_eq!(declined, Declined::ReservedEmailDiffers);
    assert_eq!(
        declined.to_string(),
        "the device has a reserved e-mail that differs from the submitter's"
    );
}

#[test]
fn a_device_without_a_reserved_email_goes_to_agents() {
    let mut t = ticket("owner@example.com");
    t.devices[1].identity.reserved_email = None;
    assert_eq!(decide(&t, &matches()), Err(Declined::NoReservedEmail));
    // One device reserved to someone else: that is the reason, not the missing one.
    t.devices[0].identity.reserved_email = Some(EmailAddress::parse("x@example.org").unwrap());
    assert_eq!(decide(&t, &matches()), Err(Declined::ReservedEmailDiffers));
}

#[test]
fn a_version_1_export_goes_to_agents() {
    let mut t = ticket("owner@example.com");
    for d in &mut t.devices {
        d.binding = None;
    }
    assert_eq!(decide(&t, &matches()), Err(Declined::NotBound));
}

#[test]
fn a_flag_goes_to_agents() {
    let mut t = ticket("owner@example.com");
    t.summary.flags = vec!["watched domain".to_owned()];
    assert_eq!(
        decide(&t, &matches()),
        Err(Declined::Flagged("watched domain".to_owned()))
    );
}

#[test]
fn an_export_older_than_the_limit_goes_to_agents() {
    let t = ticket("owner@example.com");
    let now = Timestamp::from_unix_seconds(NOW).unwrap();
    // Made ten minutes ago: fresh under 10 minutes and more, old under 9.
    assert!(reserved_email(&t, Some(&matches()), now, 10).is_ok());
    assert_eq!(
        reserved_email(&t, Some(&matches()), now, 9),
        Err(Declined::ExportTooOld {
            minutes: 10,
            limit: 9
        })
    );
}

#[test]
fn a_label_naming_another_device_or_never_read_goes_to_agents() {
    let t = ticket("owner@example.com");
    let other = vec![
        ("NVR0001234567".to_owned(), LabelFinding::OtherSerial),
        ("CAM0007654321".to_owned(), LabelFinding::NotOnLabel),
    ];
    assert!(matches!(
        decide(&t, &other),
        Err(Declined::LabelCheck(why)) if why.contains("another device")
    ));
    let now = Timestamp::from_unix_seconds(NOW).unwrap();
    assert!(matches!(
        reserved_email(&t, None, now, 60),
        Err(Declined::LabelCheck(_))
    ));
    // An unreadable label is no reason to doubt the reserved address.
    let unreadable = vec![
        ("NVR0001234567".to_owned(), LabelFinding::Unreadable),
        ("CAM0007654321".to_owned(), LabelFinding::Unreadable),
    ];
    assert!(decide(&t, &unreadable).is_ok());
}

#[test]
fn a_ticket_in_an_agents_hands_is_theirs() {
    let mut t = ticket("owner@example.com");
    t.summary.claimed_by = Some("agent@vendor.example".to_owned());
    assert_eq!(decide(&t, &matches()), Err(Declined::InAgentsHands));
    let mut t = ticket("owner@example.com");
    t.summary.status = TicketStatus::AwaitingPhoto;
    assert_eq!(decide(&t, &matches()), Err(Declined::InAgentsHands));
}

#[test]
fn a_ticket_a_person_touched_is_theirs_even_unclaimed() {
    use crate::store::TicketEvent;
    for kind in [
        TicketEventKind::Note,
        TicketEventKind::PhotoRequested,
        TicketEventKind::AddressCorrected,
        TicketEventKind::CustomerReply,
        TicketEventKind::ApprovalRefused,
    ] {
        let mut t = ticket("owner@example.com");
        t.events.push(TicketEvent {
            at: Timestamp::from_unix_seconds(NOW - 30).unwrap(),
            actor: "agent@vendor.example".to_owned(),
            kind: kind.clone(),
            detail: String::new(),
        });
        assert_eq!(
            decide(&t, &matches()),
            Err(Declined::InAgentsHands),
            "{kind:?}"
        );
    }
    // The desk's own steps are no one's doubt.
    let mut t = ticket("owner@example.com");
    for kind in [
        TicketEventKind::Submitted,
        TicketEventKind::LabelRead,
        TicketEventKind::MailSent,
    ] {
        t.events.push(TicketEvent {
            at: Timestamp::from_unix_seconds(NOW - 30).unwrap(),
            actor: "desk".to_owned(),
            kind,
            detail: String::new(),
        });
    }
    assert!(decide(&t, &matches()).is_ok());
}

const INSTALLER: &str = "ops@installer.example";

fn the_installer(suspended: bool) -> Installer {
    Installer {
        id: InstallerId(7),
        email: EmailAddress::parse(INSTALLER).unwrap(),
        company: "Instalaciones Sur".to_owned(),
        created_at: Timestamp::from_unix_seconds(NOW - 86_400 * 30).unwrap(),
        suspended: suspended.then(|| {
            (
                Timestamp::from_unix_seconds(NOW - 60).unwrap(),
                "marked suspicious".to_owned(),
            )
        }),
    }
}

/// The fixture's NVR and camera, sent by the installer, with no reserved e-mail.
fn installer_ticket() -> TicketDetail {
    let mut t = ticket(INSTALLER);
    for d in &mut t.devices {
        d.identity.reserved_email = None;
    }
    t
}

fn registered(
    serial: &str,
    installer: i64,
    source: DeviceSource,
    hours_ago: i64,
) -> InstallerDevice {
    InstallerDevice {
        installer: InstallerId(installer),
        installer_email: INSTALLER.to_owned(),
        serial: serial.to_owned(),
        source,
        registered_at: Timestamp::from_unix_seconds(NOW - hours_ago * 3600).unwrap(),
    }
}

fn both_imported() -> Vec<InstallerDevice> {
    vec![
        registered("NVR0001234567", 7, DeviceSource::Import, 1),
        registered("CAM0007654321", 7, DeviceSource::Import, 1),
    ]
}

fn decide_installer(
    t: &TicketDetail,
    installer: &Installer,
    registrations: &[InstallerDevice],
    findings: &[(String, LabelFinding)],
) -> Result<String, Declined> {
    let facts = InstallerFacts {
        installer,
        registrations,
        max_age_minutes: 60,
        hold_hours: 24,
    };
    self::installer(
        t,
        &facts,
        Some(findings),
        Timestamp::from_unix_seconds(NOW).unwrap(),
    )
    .map(|to| to.as_str().to_owned())
}

#[test]
fn an_installers_own_devices_are_answered_to_the_installer() {
    assert_eq!(
        decide_installer(
            &installer_ticket(),
            &the_installer(false),
            &both_imported(),
            &matches()
        ),
        Ok(INSTALLER.to_owned())
    );
}

#[test]
fn the_label_must_show_the_exporting_device() {
    let t = installer_ticket();
    let installer = the_installer(false);
    // Unreadable, or only the camera's label: the NVR that exported is not shown.
    for findings in [
        vec![
            ("NVR0001234567".to_owned(), LabelFinding::Unreadable),
            ("CAM0007654321".to_owned(), LabelFinding::Unreadable),
        ],
        vec![
            ("NVR0001234567".to_owned(), LabelFinding::NotOnLabel),
            ("CAM0007654321".to_owned(), LabelFinding::Matches),
        ],
    ] {
        assert!(matches!(
            decide_installer(&t, &installer, &both_imported(), &findings),
            Err(Declined::LabelCheck(why)) if why.contains("NVR0001234567")
        ));
    }
}

#[test]
fn every_device_must_be_the_installers_alone() {
    let t = installer_ticket();
    let installer = the_installer(false);
    let only_the_nvr = vec![registered("NVR0001234567", 7, DeviceSource::Import, 1)];
    assert_eq!(
        decide_installer(&t, &installer, &only_the_nvr, &matches()),
        Err(Declined::NotRegistered("CAM0007654321".to_owned()))
    );
    let mut shared = both_imported();
    shared.push(registered(
        "CAM0007654321",
        8,
        DeviceSource::SelfRegistered,
        100,
    ));
    assert_eq!(
        decide_installer(&t, &installer, &shared, &matches()),
        Err(Declined::RegisteredTwice("CAM0007654321".to_owned()))
    );
}

#[test]
fn a_device_the_installer_registered_counts_after_the_hold() {
    let t = installer_ticket();
    let installer = the_installer(false);
    let at = |seconds_ago: i64| {
        let mut list = both_imported();
        list[1] = InstallerDevice {
            registered_at: Timestamp::from_unix_seconds(NOW - seconds_ago).unwrap(),
            ..registered("CAM0007654321", 7, DeviceSource::SelfRegistered, 0)
        };
        list
    };
    assert!(decide_installer(&t, &installer, &at(24 * 3600), &matches()).is_ok());
    assert_eq!(
        decide_installer(&t, &installer, &at(24 * 3600 - 1), &matches()),
        Err(Declined::RegistrationOnHold {
            serial: "CAM0007654321".to_owned(),
            hours: 24
        })
    );
}

#[test]
fn a_suspended_installer_or_an_owners_own_address_goes_to_agents() {
    let t = installer_ticket();
    assert!(matches!(
        decide_installer(&t, &the_installer(true), &both_imported(), &matches()),
        Err(Declined::InstallerSuspended(_))
    ));
    // The owner set their own address on the camera.
    let mut owned = installer_ticket();
    owned.devices[1].identity.reserved_email =
        Some(EmailAddress::parse("owner@example.com").unwrap());
    assert_eq!(
        decide_installer(&owned, &the_installer(false), &both_imported(), &matches()),
        Err(Declined::ReservedEmailDiffers)
    );
}
