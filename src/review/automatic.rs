//! The fast tracks (issue 20): requests the desk answers with no agent, because the
//! evidence is as strong as the vendor's self-service paths and the decision is at least
//! as safe as an agent's.
//!
//! The desk looks at a ticket once its label photo is read (`evidence::worker`), since
//! a label naming another device needs four eyes and must never be skipped. Each rule is
//! a pure function of the ticket, its findings and the settings ([`reserved_email`]);
//! what it cannot see from the ticket (the live switch, console users' addresses, the
//! per-address count) is asked here, the count inside the approval's transaction. A
//! decision is an approval by the desk's own user, signed and mailed exactly as an
//! agent's, with the rule that allowed it in history and the audit log. Anything that
//! does not pass leaves the ticket to agents, and where the rule nearly applied the
//! history says why.

use crate::desk::Desk;
use crate::domain::{
    EmailAddress, FastTrack, LabelFinding, Role, TicketNumber, TicketStatus, Timestamp,
    WrittenText, WrittenTextError,
};
use crate::mail::compose::{self, SuspicionNotice};
use crate::store::{
    Approval, AutomaticApproval, Conflict, Customer, DeviceSource, Installer, InstallerDevice,
    InstallerId, StoreError, SuspicionMark, TicketDetail, TicketEventKind, User,
};

use super::{ReviewError, sign_and_write, verified_challenges};

/// Why a fast track left a ticket to agents. `Display` is what agents read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declined {
    /// Supervisors or the settings switched the track off.
    SwitchedOff,
    /// Not every device of the export carries a reserved e-mail.
    NoReservedEmail,
    /// A device's reserved e-mail is not the submitter's address.
    ReservedEmailDiffers,
    /// A version 1 export, which binds its entries to no export.
    NotBound,
    /// A risk rule flagged the ticket (or its address is staff's or a console user's).
    Flagged(String),
    /// The export is older than `fast_track_max_export_age_minutes`.
    ExportTooOld { minutes: i64, limit: u32 },
    /// The label photo names another device, or it was not read.
    LabelCheck(String),
    /// The track already answered its limit for this address or installer today.
    LimitReached { limit: u32 },
    /// An agent holds the ticket, or it is not open, or it has an approval: theirs.
    InAgentsHands,
    /// The installer's track is suspended (a mark of suspicion, or an admin).
    InstallerSuspended(String),
    /// A device of the export is not registered to the installer.
    NotRegistered(String),
    /// A device is registered to another installer as well.
    RegisteredTwice(String),
    /// The installer registered a device themselves less than the hold ago.
    RegistrationOnHold { serial: String, hours: u32 },
    /// The export no longer verifies (it expired meanwhile).
    NotVerified(String),
}

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SwitchedOff => f.write_str("the track is switched off"),
            Self::NoReservedEmail => f.write_str("not every device has a reserved e-mail"),
            Self::ReservedEmailDiffers => {
                f.write_str("the device has a reserved e-mail that differs from the submitter's")
            }
            Self::NotBound => f.write_str(
                "the export is in protocol version 1, whose entries are not bound to one export",
            ),
            Self::Flagged(flag) => write!(f, "the ticket needs four eyes: {flag}"),
            Self::ExportTooOld { minutes, limit } => write!(
                f,
                "the export is {minutes} minutes old; the fast track answers exports up to {limit} minutes old"
            ),
            Self::LabelCheck(why) => write!(f, "the label check {why}"),
            Self::LimitReached { limit } => write!(
                f,
                "the fast track already answered {limit} requests for this address or installer in the last 24 hours"
            ),
            Self::InAgentsHands => f.write_str("an agent is already working on the ticket"),
            Self::InstallerSuspended(why) => write!(f, "the installer's track is suspended: {why}"),
            Self::NotRegistered(serial) => {
                write!(f, "device {serial} is not registered to the installer")
            }
            Self::RegisteredTwice(serial) => write!(
                f,
                "device {serial} is registered to another installer as well"
            ),
            Self::RegistrationOnHold { serial, hours } => write!(
                f,
                "the installer registered device {serial} themselves less than {hours} hours ago"
            ),
            Self::NotVerified(why) => write!(f, "the export no longer verifies: {why}"),
        }
    }
}

impl Declined {
    /// A short word for `/metrics`.
    pub fn metric(&self) -> &'static str {
        match self {
            Self::SwitchedOff => "switched_off",
            Self::NoReservedEmail => "no_reserved_email",
            Self::ReservedEmailDiffers => "reserved_email_differs",
            Self::NotBound => "protocol_v1",
            Self::Flagged(_) => "flagged",
            Self::ExportTooOld { .. } => "export_too_old",
            Self::LabelCheck(_) => "label_check",
            Self::LimitReached { .. } => "limit",
            Self::InAgentsHands => "in_agents_hands",
            Self::InstallerSuspended(_) => "installer_suspended",
            Self::NotRegistered(_) => "not_registered",
            Self::RegisteredTwice(_) => "registered_twice",
            Self::RegistrationOnHold { .. } => "registration_on_hold",
            Self::NotVerified(_) => "not_verified",
        }
    }

    /// Whether the ticket's history says so: a ticket the track was never meant for
    /// (no reserved e-mail, an agent already on it) is left without a word.
    fn worth_saying(&self) -> bool {
        !matches!(
            self,
            Self::NoReservedEmail | Self::InAgentsHands | Self::SwitchedOff
        )
    }
}

/// The reserved e-mail rule, on what the ticket shows: every device of a genuine
/// (verified at intake, and again before signing), version 2 export carries a reserved
/// e-mail, each is the submitter's mailbox (as the four-eyes rule compares addresses),
/// no risk flag, the export at most `max_age_minutes` old, and a label check that was
/// read and names no other device. The address the response goes to: the first
/// device's reserved e-mail, as set on the device.
pub fn reserved_email(
    ticket: &TicketDetail,
    findings: Option<&[(String, LabelFinding)]>,
    now: Timestamp,
    max_age_minutes: u32,
) -> Result<EmailAddress, Declined> {
    not_in_agents_hands(ticket)?;
    let reserved: Vec<&EmailAddress> = ticket
        .devices
        .iter()
        .filter_map(|d| d.identity.reserved_email.as_ref())
        .collect();
    let submitter = ticket.customer.email.mailbox();
    if reserved.iter().any(|r| r.mailbox() != submitter) {
        return Err(Declined::ReservedEmailDiffers);
    }
    if reserved.len() != ticket.devices.len() || reserved.is_empty() {
        return Err(Declined::NoReservedEmail);
    }
    bound_fresh_and_unflagged(ticket, now, max_age_minutes)?;
    label_names_no_other_device(findings)?;
    Ok(reserved[0].clone())
}

/// The steps a ticket may have taken and still be the desk's to decide: its own
/// intake, the label read (and a damaged photo sent back and replaced), its mail and the
/// fast tracks' own words. Anything else is a person's: an agent's note, photo request,
/// claim or refused approval, a corrected address, a customer's message to support, a
/// reopened rejection. The ticket is theirs, even once its new photo is read.
const THE_DESKS_OWN_STEPS: [TicketEventKind; 7] = [
    TicketEventKind::Submitted,
    TicketEventKind::Supersedes,
    TicketEventKind::LabelRead,
    TicketEventKind::PhotoUnreadable,
    TicketEventKind::PhotoReplaced,
    TicketEventKind::MailSent,
    TicketEventKind::FastTrackDeclined,
];

/// Open, unclaimed, unapproved, and touched by nobody (see [`THE_DESKS_OWN_STEPS`]).
fn not_in_agents_hands(ticket: &TicketDetail) -> Result<(), Declined> {
    let touched = ticket
        .events
        .iter()
        .any(|e| !THE_DESKS_OWN_STEPS.contains(&e.kind));
    if ticket.summary.status != TicketStatus::Open
        || ticket.summary.claimed_by.is_some()
        || !ticket.approvals.is_empty()
        || touched
    {
        return Err(Declined::InAgentsHands);
    }
    Ok(())
}

/// What every fast track asks of the export and the ticket: bound to one export
/// (version 2), made at most `max_age_minutes` ago, no risk flag.
fn bound_fresh_and_unflagged(
    ticket: &TicketDetail,
    now: Timestamp,
    max_age_minutes: u32,
) -> Result<(), Declined> {
    if ticket.devices.iter().any(|d| d.binding.is_none()) {
        return Err(Declined::NotBound);
    }
    if let Some(flag) = ticket.summary.flags.first() {
        return Err(Declined::Flagged(flag.clone()));
    }
    let oldest = ticket
        .devices
        .iter()
        .map(|d| d.issued_at)
        .min()
        .unwrap_or(now);
    // A challenge issued "after now" (clock skew within the intake's allowance) is fresh.
    let seconds = now.unix_seconds() - oldest.unix_seconds();
    if seconds > i64::from(max_age_minutes) * 60 {
        return Err(Declined::ExportTooOld {
            minutes: seconds / 60,
            limit: max_age_minutes,
        });
    }
    Ok(())
}

/// What the installer track needs beside the ticket: the installer whose token sent
/// it, every registration of the export's serials, and the settings.
pub struct InstallerFacts<'a> {
    pub installer: &'a Installer,
    pub registrations: &'a [InstallerDevice],
    pub max_age_minutes: u32,
    pub hold_hours: u32,
}

/// The installer track's rule, on what the ticket shows: sent with the token of an
/// installer whose track is not suspended, every device of a version 2 export
/// registered to that installer (one they registered themselves only after the hold)
/// and to no other, fresh, no risk flag, and the label check found the exporting
/// device's own serial (`matches`). The address the response goes to: the installer's.
pub fn installer(
    ticket: &TicketDetail,
    facts: &InstallerFacts<'_>,
    findings: Option<&[(String, LabelFinding)]>,
    now: Timestamp,
) -> Result<EmailAddress, Declined> {
    not_in_agents_hands(ticket)?;
    let installer = facts.installer;
    if let Some((_, why)) = &installer.suspended {
        return Err(Declined::InstallerSuspended(why.clone()));
    }
    // An owner who set their own address on the device did not hand it to an installer:
    // the agents see the red line on the ticket page, and decide.
    let mailbox = installer.email.mailbox();
    if ticket
        .devices
        .iter()
        .filter_map(|d| d.identity.reserved_email.as_ref())
        .any(|reserved| reserved.mailbox() != mailbox)
    {
        return Err(Declined::ReservedEmailDiffers);
    }
    let hold = i64::from(facts.hold_hours) * 3600;
    for device in &ticket.devices {
        let serial = device.identity.serial.as_str();
        let of_serial: Vec<&InstallerDevice> = facts
            .registrations
            .iter()
            .filter(|r| r.serial == serial)
            .collect();
        if of_serial.iter().any(|r| r.installer != installer.id) {
            return Err(Declined::RegisteredTwice(serial.to_owned()));
        }
        let Some(mine) = of_serial.first() else {
            return Err(Declined::NotRegistered(serial.to_owned()));
        };
        if mine.source == DeviceSource::SelfRegistered
            && now.unix_seconds() - mine.registered_at.unix_seconds() < hold
        {
            return Err(Declined::RegistrationOnHold {
                serial: serial.to_owned(),
                hours: facts.hold_hours,
            });
        }
    }
    bound_fresh_and_unflagged(ticket, now, facts.max_age_minutes)?;
    label_names_no_other_device(findings)?;
    // The label photo must show the device that made the export, not only name no
    // other: an installer answers for their devices, and the photo is the proof that
    // they stand before this one.
    let exporter = ticket
        .devices
        .first()
        .and_then(|d| d.binding.as_ref())
        .map(|b| b.exported_by.as_str())
        .unwrap_or_default();
    let finding = findings
        .unwrap_or_default()
        .iter()
        .find(|(serial, _)| serial == exporter)
        .map(|(_, finding)| *finding);
    if finding != Some(LabelFinding::Matches) {
        return Err(Declined::LabelCheck(format!(
            "did not find the exporting device's serial {exporter} on the label ({})",
            finding.map_or("no finding", LabelFinding::as_str)
        )));
    }
    Ok(installer.email.clone())
}

/// The label check must have been read, and must name no device other than the
/// export's: an `other_serial` needs four eyes, and a photo never read (given up on,
/// or damaged) is an agent's to look at.
fn label_names_no_other_device(
    findings: Option<&[(String, LabelFinding)]>,
) -> Result<(), Declined> {
    let Some(findings) = findings.filter(|f| !f.is_empty()) else {
        return Err(Declined::LabelCheck("was not read".to_owned()));
    };
    if let Some((serial, _)) = findings
        .iter()
        .find(|(_, finding)| *finding == LabelFinding::OtherSerial)
    {
        return Err(Declined::LabelCheck(format!(
            "found another device's label beside {serial}"
        )));
    }
    Ok(())
}

/// Whether `track` is on: in the settings, and not switched off by a supervisor since.
pub async fn track_enabled(desk: &Desk, track: FastTrack) -> Result<bool, StoreError> {
    if !desk.settings.fast_tracks.allows(track) {
        return Ok(false);
    }
    let switches = desk.store.fast_track_switches().await?;
    Ok(is_on(&desk.settings.fast_tracks, &switches, track))
}

/// Whether `track` is on, from the settings and the supervisors' `switches` as read: a
/// track with no switch is as the settings say.
pub fn is_on(
    settings: &crate::config::FastTracks,
    switches: &[crate::store::FastTrackSwitch],
    track: FastTrack,
) -> bool {
    settings.allows(track)
        && switches
            .iter()
            .find(|s| s.track == track)
            .is_none_or(|s| s.enabled)
}

/// What looking at a ticket came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Considered {
    /// Signed and mailed by the desk under this track.
    Answered(FastTrack),
    /// Left to agents.
    Declined(FastTrack, Declined),
}

/// Looks at a ticket whose label photo was just read, and answers it if a fast track
/// allows: the installer track for a request an installer's token sent, the reserved
/// e-mail track for any other. Every outcome is counted on `/metrics`; a decline worth
/// an agent's knowing is written to the ticket's history.
#[tracing::instrument(skip_all, fields(ticket = %ticket.summary.number))]
pub async fn consider(desk: &Desk, ticket: &TicketDetail) -> Result<Considered, ReviewError> {
    let (track, decided) = match ticket.installer {
        Some(installer) => (
            FastTrack::Installer,
            installer_track(desk, ticket, installer).await?,
        ),
        None => (
            FastTrack::ReservedEmail,
            reserved_email_track(desk, ticket).await?,
        ),
    };
    match decided {
        Ok(()) => {
            ::metrics::counter!("resetdesk_automatic_decisions_total", "track" => track.as_str())
                .increment(1);
            tracing::info!(track = %track, "answered by the desk alone");
            Ok(Considered::Answered(track))
        }
        Err(declined) => {
            if declined.worth_saying() {
                desk.store
                    .record_fast_track_declined(
                        ticket.id,
                        track,
                        &declined.to_string(),
                        desk.clock.now(),
                    )
                    .await
                    .map_err(ReviewError::internal)?;
            }
            ::metrics::counter!("resetdesk_fast_track_declined_total",
                "track" => track.as_str(), "reason" => declined.metric())
            .increment(1);
            Ok(Considered::Declined(track, declined))
        }
    }
}

/// The findings of the ticket's label check, once read.
async fn findings(
    desk: &Desk,
    ticket: &TicketDetail,
) -> Result<Option<Vec<(String, LabelFinding)>>, ReviewError> {
    Ok(desk
        .store
        .label_evidence(ticket.id)
        .await
        .map_err(ReviewError::internal)?
        .map(|e| e.findings))
}

async fn reserved_email_track(
    desk: &Desk,
    ticket: &TicketDetail,
) -> Result<Result<(), Declined>, ReviewError> {
    let findings = findings(desk, ticket).await?;
    let to = match reserved_email(
        ticket,
        findings.as_deref(),
        desk.clock.now(),
        desk.settings.fast_tracks.max_export_age_minutes,
    ) {
        Ok(to) => to,
        Err(declined) => return Ok(Err(declined)),
    };
    let why = format!(
        "every device's reserved e-mail is the submitter's mailbox; the response went to {to} only"
    );
    let limit = desk.settings.fast_tracks.per_address_per_day;
    answer(desk, ticket, FastTrack::ReservedEmail, to, None, limit, why).await
}

async fn installer_track(
    desk: &Desk,
    ticket: &TicketDetail,
    id: InstallerId,
) -> Result<Result<(), Declined>, ReviewError> {
    let installer = desk
        .store
        .installer(id)
        .await
        .map_err(ReviewError::internal)?;
    let serials: Vec<String> = ticket
        .devices
        .iter()
        .map(|d| d.identity.serial.to_string())
        .collect();
    let registrations = desk
        .store
        .registrations_of(&serials)
        .await
        .map_err(ReviewError::internal)?;
    let findings = findings(desk, ticket).await?;
    let settings = &desk.settings.fast_tracks;
    let facts = InstallerFacts {
        installer: &installer,
        registrations: &registrations,
        max_age_minutes: settings.max_export_age_minutes,
        hold_hours: settings.installer_registration_hold_hours,
    };
    let to = match self::installer(ticket, &facts, findings.as_deref(), desk.clock.now()) {
        Ok(to) => to,
        Err(declined) => return Ok(Err(declined)),
    };
    let why = format!(
        "every device is registered to the installer {} ({}), and the label shows the exporting device",
        installer.email, installer.company
    );
    let limit = settings.installer_daily_quota;
    answer(desk, ticket, FastTrack::Installer, to, Some(id), limit, why).await
}

/// The decision a rule allowed, made as an agent's approval is made: the switch and
/// console users' addresses asked now, the export verified again, the responses signed
/// and mailed to `to`, and the approval stored with the automatic decision's record if
/// the limit (counted in its transaction) allows one more.
async fn answer(
    desk: &Desk,
    ticket: &TicketDetail,
    track: FastTrack,
    to: EmailAddress,
    installer: Option<InstallerId>,
    limit: u32,
    why: String,
) -> Result<Result<(), Declined>, ReviewError> {
    let now = desk.clock.now();
    if !track_enabled(desk, track)
        .await
        .map_err(ReviewError::internal)?
    {
        return Ok(Err(Declined::SwitchedOff));
    }
    // Asked now, as an agent's approval asks: an address can have become a console
    // user's, or staff's, since intake. Both the ticket's and the response's.
    for address in [&ticket.customer.email, &to] {
        let insider = crate::intake::risk::insider(desk, address)
            .await
            .map_err(ReviewError::internal)?;
        if let Some(flag) = insider.into_iter().next() {
            return Ok(Err(Declined::Flagged(flag)));
        }
    }
    let verified =
        match verified_challenges(desk, ticket, now, |e| ReviewError::Invalid(e.to_string())).await
        {
            Ok(verified) => verified,
            Err(ReviewError::Invalid(why)) => return Ok(Err(Declined::NotVerified(why))),
            Err(other) => return Err(other),
        };
    if limit == 0 {
        return Ok(Err(Declined::LimitReached { limit }));
    }
    let recipient = Customer {
        email: to.clone(),
        ..ticket.customer.clone()
    };
    let (signed, mail, key_id) = sign_and_write(desk, ticket, &recipient, &verified).await?;
    let desk_user = desk
        .store
        .desk_user()
        .await
        .map_err(ReviewError::internal)?;
    let devices = signed.len();
    let stored = desk
        .store
        .approve_automatically(&AutomaticApproval {
            approval: Approval {
                ticket_id: ticket.id,
                by: desk_user,
                as_role: Role::Agent,
                note: format!("automatic: {}", track.describe()),
                at: now,
                prior_approvals: 0,
                evidence_version: ticket.evidence_version,
                responses: signed,
                mail,
            },
            customer_email: ticket.customer.email.clone(),
            track,
            installer,
            recipient_mailbox: to.mailbox(),
            limit,
            why,
        })
        .await;
    match stored {
        Ok(()) => {}
        Err(StoreError::Conflict(Conflict::FastTrackLimit { limit })) => {
            return Ok(Err(Declined::LimitReached { limit }));
        }
        Err(StoreError::Conflict(Conflict::FastTrackStopped)) => {
            return Ok(Err(Declined::SwitchedOff));
        }
        // Someone decided first, the address or the photo changed meanwhile: the
        // ticket is in agents' hands, or will be looked at again after its new photo.
        Err(StoreError::Conflict(_) | StoreError::EvidenceChanged) => {
            return Ok(Err(Declined::InAgentsHands));
        }
        Err(other) => return Err(ReviewError::internal(other)),
    }
    desk.mail_queued.notify_one();
    crate::observability::signatures(key_id.as_str(), devices);
    Ok(Ok(()))
}

/// The longest note on a mark of suspicion, in characters.
pub const MAX_SUSPICION_CHARS: usize = 1000;

/// Switches a fast track on or off for every replica: supervisors only, audited. A track
/// off in the settings stays off (its switch can be set, and takes effect once the
/// settings allow the track again).
pub async fn switch(
    desk: &Desk,
    user: &User,
    track: FastTrack,
    enabled: bool,
) -> Result<(), ReviewError> {
    if user.disabled || !user.roles.contains(Role::Supervisor) {
        return Err(ReviewError::Forbidden(
            "switching a fast track needs the supervisor role".to_owned(),
        ));
    }
    desk.store
        .switch_fast_track(track, enabled, user.id, desk.clock.now())
        .await
        .map_err(ReviewError::internal)?;
    tracing::info!(%track, enabled, by = %user.email, "fast track switched");
    Ok(())
}

/// Marks an automatic decision suspicious: any agent may. The supervisors are mailed,
/// and for the installer track the installer's track is suspended, in the mark's
/// transaction. The installer suspended, if any.
pub async fn mark_suspicious(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    note: &str,
) -> Result<Option<String>, ReviewError> {
    super::may_review(user)?;
    let note = WrittenText::parse(note, MAX_SUSPICION_CHARS).map_err(|e| match e {
        WrittenTextError::Empty => ReviewError::Invalid(
            "say why the decision looks suspicious: the supervisors read it".to_owned(),
        ),
        WrittenTextError::TooLong { chars } => ReviewError::Invalid(format!(
            "a note is at most {MAX_SUSPICION_CHARS} characters; this one has {chars}"
        )),
    })?;
    let ticket = super::load(desk, number).await?;
    let decision = desk
        .store
        .automatic_decision(ticket.id)
        .await
        .map_err(ReviewError::internal)?
        .ok_or_else(|| ReviewError::Conflict(Conflict::NotAutomatic.to_string()))?;
    let base = desk.settings.http.public_url.trim_end_matches('/');
    let ticket_url = format!("{base}/console/tickets/{number}");
    let automatic_url = format!("{base}/console/automatic");
    let supervisors: Vec<_> = desk
        .store
        .users()
        .await
        .map_err(ReviewError::internal)?
        .into_iter()
        .filter(|u| !u.disabled && u.roles.contains(Role::Supervisor))
        .collect();
    let suspended = decision.installer.as_deref();
    let notice = SuspicionNotice {
        number,
        track: decision.track.title(),
        rule: decision.track.describe(),
        marked_by: user.email.as_str(),
        note: note.as_str(),
        suspended,
        ticket_url: &ticket_url,
        automatic_url: &automatic_url,
    };
    let mails = supervisors
        .iter()
        .map(|s| compose::suspicious_decision(&desk.mail, &s.email, &notice))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ReviewError::internal)?;
    let marked = desk
        .store
        .mark_suspicious(&SuspicionMark {
            ticket_id: ticket.id,
            by: user.id,
            note: note.as_str().to_owned(),
            at: desk.clock.now(),
            mails,
        })
        .await
        .map_err(|e| ReviewError::from_store(e, number))?;
    desk.mail_queued.notify_one();
    ::metrics::counter!("resetdesk_automatic_suspicious_total", "track" => decision.track.as_str())
        .increment(1);
    tracing::warn!(track = %decision.track, by = %user.email, "an automatic decision was marked suspicious");
    Ok(marked.suspended)
}

/// Whom a ticket's response goes to: its customer, or for a ticket the desk answered
/// alone, the address that decision mailed (the device's reserved address, as the device
/// holds it). The status page's one-time code, which opens the response, and a response
/// mail sent again go there too: never to the submitter's own spelling of the address.
pub async fn response_recipient(
    desk: &Desk,
    ticket: &TicketDetail,
) -> Result<Customer, StoreError> {
    Ok(match desk.store.automatic_decision(ticket.id).await? {
        Some(decision) => Customer {
            email: decision.recipient,
            ..ticket.customer.clone()
        },
        None => ticket.customer.clone(),
    })
}

#[cfg(test)]
mod tests;
