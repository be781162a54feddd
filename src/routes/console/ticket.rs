//! The ticket page: what an agent decides on (devices, customer, evidence version,
//! approvals, mails, history), and the label photo.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

use super::actions::Done;
use super::age;
use super::guard::ConsoleUser;
use crate::desk::Desk;
use crate::domain::{TicketNumber, TicketStatus, Timestamp};
use crate::protocol::DeviceChallenge;
use crate::review::{self, ReviewError};
use crate::routes::{ErrorAnswer, answer_page, html, message_page};
use crate::store::{
    Customer, EvidenceState, ExportForm, LabelEvidence, LabelFinding, MailKind, MailStatus,
    MessageAuthor, OutboxStatus, ReadCode, TicketDetail, TicketEventKind, TicketMessage,
    TicketView,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(ticket_view)
        .service(label_photo)
        .service(export_picture);
}

struct DeviceRowView {
    model: String,
    serial: String,
    firmware: String,
    mac: String,
    issued_at: String,
    age: String,
    /// What the machine read on the label about this device; `None` for a ticket whose
    /// photo was checked before the evidence worker existed.
    label: Option<LabelCheckView>,
}

/// One device's label check as its row says it: words a person reads (a screen reader
/// too), with a mark beside them for the eye only.
struct LabelCheckView {
    /// ⚠ (or nothing), hidden from assistive technology: the words say the same.
    mark: &'static str,
    words: String,
    /// The serial the label shows instead, set apart so it never breaks mid-string;
    /// empty when the words name none.
    serial: String,
    /// What follows the serial ("(and 2 more serials)").
    after: String,
    /// A warning: the label names another device (the four-eyes risk).
    warning: bool,
}

/// A code read on the label, as the page lists it. Its text is whatever the label (or
/// whoever printed it) put there: the template escapes it like any input.
struct CodeView {
    format: &'static str,
    text: String,
}

struct CustomerRowView {
    name: String,
    email: String,
    phone: String,
    company: String,
    country: String,
    role: &'static str,
    purchase_channel: String,
    /// The language the customer's e-mails are written in ("Español"): a reason or a
    /// note the agent types goes into them as typed.
    language: &'static str,
}

struct MailRowView {
    id: i64,
    kind: &'static str,
    status: &'static str,
    attempts: i64,
    last_error: String,
    /// What the Retry button says, when the mail is dead and can be sent again.
    retry: Option<&'static str>,
    /// Why a dead mail has no Retry button.
    not_retried: Option<&'static str>,
}

/// One message of the conversation. Its text is plain (a mail's HTML was converted
/// before it was stored) and escaped by the template like any input.
struct MessageView {
    /// "Customer", "Not proven to be the customer", or the agent's "Support".
    who: &'static str,
    sender: String,
    at: String,
    body: String,
    /// Why the agents should not act on it: a message not proven to be the customer's.
    warning: Option<&'static str>,
    /// `in` or `out`, for the page's layout.
    direction: &'static str,
}

impl MessageView {
    fn of(message: &TicketMessage) -> Self {
        let (who, warning) = match message.author {
            MessageAuthor::Customer => ("Customer", None),
            MessageAuthor::Agent => ("Support", None),
            MessageAuthor::Stranger => (
                "Not proven to be the customer",
                Some(
                    "This e-mail named the ticket but did not answer one of the desk's e-mails to the customer's address, so anyone could have sent it. It changed nothing on the ticket: do not act on what it asks without checking with the customer.",
                ),
            ),
        };
        Self {
            who,
            sender: message.sender.clone(),
            at: message.at.shown_utc(),
            body: message.body.clone(),
            warning,
            direction: message.author.direction(),
        }
    }
}

/// The desk's automatic decision on the ticket, as its page says it.
struct AutomaticView {
    track: &'static str,
    rule: &'static str,
    recipient: String,
    decided_at: String,
    /// Who marked it suspicious, when, and why.
    suspicious: Option<(String, String, String)>,
}

impl AutomaticView {
    fn of(decision: &crate::store::AutomaticDecision) -> Self {
        Self {
            track: decision.track.title(),
            rule: decision.track.describe(),
            recipient: decision.recipient.to_string(),
            decided_at: decision.decided_at.to_string(),
            suspicious: decision
                .suspicious
                .as_ref()
                .map(|s| (s.by.clone(), s.at.to_string(), s.note.clone())),
        }
    }
}

#[derive(Template)]
#[template(path = "console/ticket.html")]
struct TicketPage {
    nav: super::Nav,
    csrf: String,
    number: TicketNumber,
    status: &'static str,
    pending: bool,
    open: bool,
    claimed_by: String,
    /// Someone other than the viewer holds the claim.
    claimed_by_other: bool,
    /// The viewer may take another agent's claim over.
    may_take_over: bool,
    evidence_version: i64,
    decided_by: String,
    reason: String,
    export_form: &'static str,
    devices: Vec<DeviceRowView>,
    /// Whether the label was read by the machine (or is waiting to be): the devices
    /// table then has its label column.
    label_checked: bool,
    /// The codes read on the label, in the order read.
    label_codes: Vec<CodeView>,
    /// Why the desk could not read the photo, for agents.
    label_error: Option<String>,
    /// The XML file or reset string as the customer sent it (escaped by the template
    /// like any input); `None` for a picture of a QR code, which the page shows instead.
    export_text: Option<String>,
    /// The export came as a picture of a QR code (`/console/tickets/{n}/export`).
    export_picture: bool,
    /// When data retention deleted the photo and the export (UTC), and after how many
    /// days it does (`photo_retention_days`).
    evidence_removed: Option<String>,
    photo_days: u32,
    /// When data retention deleted the customer's name, phone and company (UTC), and
    /// after how many days it does (`customer_retention_days`).
    customer_removed: Option<String>,
    customer_days: u32,
    /// When the customer was erased on request (UTC): said instead of the above.
    erased: Option<String>,
    customer: CustomerRowView,
    /// The canned rejection reasons and photo requests to pick from: (id, English
    /// text); the customer is sent their own language's.
    canned: Vec<(i64, String)>,
    photo_canned: Vec<(i64, String)>,
    /// The customer's latest message, when no agent has written since: (when, the
    /// words), said at the top of the page.
    latest_reply: Option<(String, String)>,
    /// The conversation with the customer, oldest first.
    messages: Vec<MessageView>,
    max_message_chars: usize,
    /// The label photos the current one replaced, oldest first: when each was replaced.
    earlier_photos: Vec<String>,
    /// When the viewer last looked, if the customer sent a new photo since.
    new_photo_since: Option<String>,
    /// The agents' internal notes, oldest first: (when, who, the words).
    notes: Vec<(String, String, String)>,
    /// Whom the ticket can be given to: every console user who decides tickets.
    assignees: Vec<String>,
    max_note_chars: usize,
    /// The reserved e-mails the devices carry (each once), and whether one is not the
    /// submitter's mailbox, which is why the reserved e-mail track left the ticket here.
    reserved_emails: Vec<String>,
    reserved_email_differs: bool,
    /// Why a fast track last left the ticket to agents.
    fast_track_declined: Option<String>,
    /// The desk's own decision, when it answered the ticket alone.
    automatic: Option<AutomaticView>,
    /// The registered installer whose token sent the request: "address (company)".
    installer: Option<String>,
    max_suspicion_chars: usize,
    flags: Vec<String>,
    /// The same customer's approved ticket for this device, within the shortened-review window.
    repeat_of: Option<TicketNumber>,
    repeat_days: i64,
    /// What the customer said the device answered, newest last.
    feedback: Vec<String>,
    approvals: Vec<(String, &'static str, String, String)>,
    mails: Vec<MailRowView>,
    events: Vec<(String, String, String, String)>,
    error: Option<String>,
    notice: Option<String>,
}

pub(super) fn parse_number(raw: &str) -> Option<TicketNumber> {
    TicketNumber::parse(raw).ok()
}

/// The ticket a console path names (`/console/tickets/{ticket}/…`), or the page that
/// says why there is none: not a ticket number, no such ticket, or the store failing.
pub(super) async fn ticket_at(desk: &Desk, raw_number: &str) -> Result<TicketDetail, HttpResponse> {
    let Some(number) = parse_number(raw_number) else {
        return Err(not_a_ticket());
    };
    review::load(desk, &number).await.map_err(error_page)
}

pub(super) fn not_a_ticket() -> HttpResponse {
    message_page(
        StatusCode::NOT_FOUND,
        "No such ticket",
        "That is not a ticket number.",
    )
}

/// What the page says besides the ticket: why the last action was refused, or what it
/// did.
pub(super) struct Outcome {
    pub status: StatusCode,
    pub error: Option<String>,
    pub notice: Option<String>,
}

/// Shows a ticket: loads it, makes the page's view of it, renders that.
pub(super) async fn ticket_page(
    desk: &Desk,
    console: &ConsoleUser,
    number: &TicketNumber,
    outcome: Outcome,
) -> HttpResponse {
    match load_ticket_page(desk, console, number, outcome.error, outcome.notice).await {
        Ok(page) => html(outcome.status, &page),
        Err(refusal) => refusal,
    }
}

/// Loads what the ticket page shows: the ticket as review reads it, and the canned
/// reasons for the reject form.
async fn load_ticket_page(
    desk: &Desk,
    console: &ConsoleUser,
    number: &TicketNumber,
    error: Option<String>,
    notice: Option<String>,
) -> Result<TicketPage, HttpResponse> {
    let ticket = match review::load(desk, number).await {
        Ok(ticket) => ticket,
        Err(ReviewError::NotFound(_)) => {
            return Err(message_page(
                StatusCode::NOT_FOUND,
                "No such ticket",
                &format!("There is no ticket {number}."),
            ));
        }
        Err(other) => return Err(error_page(other)),
    };
    let evidence = review::label_evidence(desk, &ticket)
        .await
        .map_err(error_page)?;
    let listed = desk.store.canned_reasons().await.unwrap_or_default();
    let canned_of = |kind: crate::domain::CannedKind| -> Vec<(i64, String)> {
        listed
            .iter()
            .filter(|text| text.kind == kind)
            .map(|text| (text.id, text.text.clone()))
            .collect()
    };
    let (canned, photo_canned) = (
        canned_of(crate::domain::CannedKind::Reject),
        canned_of(crate::domain::CannedKind::Photo),
    );
    let earlier_photos = desk
        .store
        .earlier_photos(ticket.id)
        .await
        .map_err(|e| crate::routes::failure_page("The ticket is unavailable", &e))?;
    let new_photo_since = new_photo_since(desk, console, &ticket).await;
    let automatic = desk
        .store
        .automatic_decision(ticket.id)
        .await
        .map_err(|e| crate::routes::failure_page("The ticket is unavailable", &e))?;
    let installer = match ticket.installer {
        Some(id) => {
            let installer = desk
                .store
                .installer(id)
                .await
                .map_err(|e| crate::routes::failure_page("The ticket is unavailable", &e))?;
            let state = match &installer.suspended {
                Some(_) => ", suspended",
                None => "",
            };
            Some(format!(
                "{} ({}{state})",
                installer.email, installer.company
            ))
        }
        None => None,
    };
    let assignees = if ticket.summary.status.is_pending() {
        desk.store
            .users()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|u| !u.disabled && u.roles.reviews_tickets())
            .map(|u| u.email.to_string())
            .collect()
    } else {
        Vec::new()
    };
    // Evidence beside the parsed fields, read only for an export in the ticket's row: a
    // QR picture is fetched by the browser on its own.
    let export_text = match ticket.export_form {
        _ if ticket.evidence_removed_at.is_some() => None,
        ExportForm::Qr => None,
        // Evidence beside the decision, not the decision: an export that cannot be read
        // (its blob lost) is said so in its place, and the page still opens.
        ExportForm::Xml | ExportForm::ResetString => {
            Some(match review::export_as_sent(desk, number).await {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(error) => {
                    tracing::warn!(ticket = %number, error = %error, "the export as sent could not be read");
                    "(The export as the customer sent it could not be read: see the desk's log.)"
                        .to_owned()
                }
            })
        }
    };
    let viewer = Viewer {
        console,
        now: desk.clock.now(),
    };
    Ok(TicketPage {
        canned,
        photo_canned,
        assignees,
        earlier_photos: earlier_photos
            .iter()
            .map(|p| p.replaced_at.shown_utc())
            .collect(),
        new_photo_since,
        export_text,
        photo_days: desk.settings.retention.photo_days,
        customer_days: desk.settings.retention.customer_days,
        automatic: automatic.as_ref().map(AutomaticView::of),
        installer,
        error,
        notice,
        ..TicketPage::of(&ticket, evidence.as_ref(), &viewer)
    })
}

/// When the viewer last looked at the ticket, if the customer sent a new label photo
/// since; and this look recorded, once per version of the evidence (a page view writes
/// only when the evidence changed since the viewer's last). Best-effort: a failure to
/// read or record it loses the banner, never the page.
async fn new_photo_since(
    desk: &Desk,
    console: &ConsoleUser,
    ticket: &crate::store::TicketDetail,
) -> Option<String> {
    let user = console.user.id;
    let last = match desk.store.last_seen(ticket.id, user).await {
        Ok(last) => last,
        Err(error) => {
            tracing::warn!(error = %error, "could not read when the agent last looked");
            return None;
        }
    };
    let now_seen = TicketView {
        label_blob: ticket.label_blob.clone(),
        evidence_version: ticket.evidence_version,
        at: desk.clock.now(),
    };
    let unchanged = |seen: &TicketView| {
        seen.label_blob == now_seen.label_blob && seen.evidence_version == now_seen.evidence_version
    };
    if !last.as_ref().is_some_and(unchanged)
        && let Err(error) = desk.store.mark_seen(ticket.id, user, &now_seen).await
    {
        tracing::warn!(error = %error, "could not record that the agent looked");
    }
    last.filter(|seen| seen.label_blob != ticket.label_blob)
        .map(|seen| seen.at.shown_utc())
}

/// Who looks at the ticket, and when.
struct Viewer<'a> {
    console: &'a ConsoleUser,
    now: Timestamp,
}

impl TicketPage {
    /// The page's view of a ticket and what was read on its label, for one viewer; no
    /// canned reasons, error or notice.
    fn of(ticket: &TicketDetail, evidence: Option<&LabelEvidence>, viewer: &Viewer) -> Self {
        let console = viewer.console;
        let summary = &ticket.summary;
        Self {
            nav: super::Nav::of(console),
            csrf: console.csrf.clone(),
            number: summary.number.clone(),
            status: summary.status.describe_short(),
            pending: summary.status.is_pending(),
            open: summary.status == TicketStatus::Open,
            claimed_by: summary
                .claimed_by
                .clone()
                .unwrap_or_else(|| "nobody yet".to_owned()),
            claimed_by_other: summary
                .claimed_by
                .as_deref()
                .is_some_and(|holder| holder != console.user.email.as_str()),
            may_take_over: console.user.roles.contains(crate::domain::Role::Supervisor),
            evidence_version: ticket.evidence_version,
            decided_by: ticket.decided_by.clone().unwrap_or_default(),
            reason: ticket.decision_reason.clone().unwrap_or_default(),
            export_form: ticket.export_form.as_str(),
            repeat_of: ticket.repeat_of.clone(),
            repeat_days: crate::customer::SHORTENED_REVIEW_WINDOW_DAYS,
            feedback: ticket
                .events
                .iter()
                .filter(|e| e.kind == TicketEventKind::CustomerFeedback)
                .map(|e| e.detail.clone())
                .collect(),
            // Unproven messages (anyone who knows the number can send one) neither say
            // nor hide that the customer is waiting for an answer.
            latest_reply: ticket
                .messages
                .iter()
                .rfind(|m| m.author != MessageAuthor::Stranger)
                .filter(|m| m.author == MessageAuthor::Customer)
                .map(|m| (m.at.shown_utc(), m.body.clone())),
            messages: ticket.messages.iter().map(MessageView::of).collect(),
            max_message_chars: review::MAX_MESSAGE_CHARS,
            devices: ticket
                .devices
                .iter()
                .map(|d| DeviceRowView::of(d, evidence, viewer.now))
                .collect(),
            label_checked: evidence.is_some(),
            label_codes: evidence
                .map(|e| e.codes.iter().map(CodeView::of).collect())
                .unwrap_or_default(),
            label_error: evidence
                .filter(|e| e.state == EvidenceState::Failed)
                .and_then(|e| e.error.clone()),
            export_text: None,
            export_picture: ticket.export_form == ExportForm::Qr
                && ticket.evidence_removed_at.is_none(),
            evidence_removed: ticket
                .evidence_removed_at
                .filter(|_| ticket.erased_at.is_none())
                .map(|at| at.shown_utc()),
            photo_days: 0,
            customer_removed: ticket
                .customer_removed_at
                .filter(|_| ticket.erased_at.is_none())
                .map(|at| at.shown_utc()),
            customer_days: 0,
            erased: ticket.erased_at.map(|at| at.shown_utc()),
            customer: CustomerRowView::of(&ticket.customer),
            canned: Vec::new(),
            photo_canned: Vec::new(),
            assignees: Vec::new(),
            earlier_photos: Vec::new(),
            new_photo_since: None,
            max_note_chars: review::MAX_NOTE_CHARS,
            reserved_emails: {
                let mut reserved: Vec<String> = Vec::new();
                for email in ticket
                    .devices
                    .iter()
                    .filter_map(|d| d.identity.reserved_email.as_ref())
                {
                    if !reserved.contains(&email.to_string()) {
                        reserved.push(email.to_string());
                    }
                }
                reserved
            },
            reserved_email_differs: ticket.devices.iter().any(|d| {
                d.identity
                    .reserved_email
                    .as_ref()
                    .is_some_and(|r| r.mailbox() != ticket.customer.email.mailbox())
            }),
            fast_track_declined: ticket
                .events
                .iter()
                .rev()
                .find(|e| e.kind == TicketEventKind::FastTrackDeclined)
                .map(|e| e.detail.clone()),
            automatic: None,
            installer: None,
            max_suspicion_chars: review::automatic::MAX_SUSPICION_CHARS,
            notes: ticket
                .events
                .iter()
                .filter(|e| e.kind == TicketEventKind::Note)
                .map(|e| (e.at.to_string(), e.actor.clone(), e.detail.clone()))
                .collect(),
            flags: summary.flags.clone(),
            approvals: ticket
                .approvals
                .iter()
                .map(|a| {
                    (
                        a.email.clone(),
                        a.as_role.as_str(),
                        a.at.to_string(),
                        a.note.clone(),
                    )
                })
                .collect(),
            mails: ticket.mails.iter().map(MailRowView::of).collect(),
            events: ticket
                .events
                .iter()
                .map(|e| {
                    (
                        e.at.to_string(),
                        e.actor.clone(),
                        e.kind.as_str().to_owned(),
                        e.detail.clone(),
                    )
                })
                .collect(),
            error: None,
            notice: None,
        }
    }
}

impl DeviceRowView {
    fn of(d: &DeviceChallenge, evidence: Option<&LabelEvidence>, now: Timestamp) -> Self {
        let serial = d.identity.serial.as_str();
        Self {
            model: d.identity.model.to_string(),
            serial: d.identity.serial.to_string(),
            firmware: d.identity.firmware.to_string(),
            mac: d
                .identity
                .mac_address
                .map(|m| m.to_string())
                .unwrap_or_default(),
            issued_at: d.issued_at.to_string(),
            age: format!("{} ago", age(d.issued_at, now)),
            label: evidence.and_then(|e| LabelCheckView::of(e, serial)),
        }
    }
}

impl LabelCheckView {
    /// What the label says about the device `serial`; `None` when a read label has no
    /// finding for it.
    fn of(evidence: &LabelEvidence, serial: &str) -> Option<Self> {
        let said = |mark, words: &str, warning| Self {
            mark,
            words: words.to_owned(),
            serial: String::new(),
            after: String::new(),
            warning,
        };
        let finding = match evidence.state {
            EvidenceState::Pending => return Some(said("", "label not read yet", false)),
            EvidenceState::Failed => {
                return Some(said("", "the desk could not read the photo", false));
            }
            EvidenceState::Done => evidence
                .findings
                .iter()
                .find(|(s, _)| s == serial)
                .map(|(_, finding)| *finding)?,
        };
        Some(match finding {
            // Evidence, not proof: whoever holds the export knows the serial and can print
            // it as a code. No tick: the agent still looks at the label itself.
            LabelFinding::Matches => said(
                "",
                "a code on the photo reads this serial (anyone can print one)",
                false,
            ),
            // Which serial, as read: the codes are listed below the table, the serials
            // beyond the first in the ticket's flag.
            LabelFinding::OtherSerial => match evidence.other_serials.as_slice() {
                [] => said("⚠", "label shows another device's serial", true),
                [first, rest @ ..] => Self {
                    serial: first.clone(),
                    after: match rest.len() {
                        0 => String::new(),
                        more => format!(" (and {more} more serials)"),
                    },
                    ..said("⚠", "label shows", true)
                },
            },
            LabelFinding::NotOnLabel => said("", "label read, this serial not on it", false),
            LabelFinding::Unreadable => said("", "no code read on the label", false),
        })
    }
}

impl CodeView {
    fn of(code: &ReadCode) -> Self {
        Self {
            format: match code.format.as_str() {
                "qr" => "QR code",
                "data_matrix" => "Data Matrix",
                "code_128" => "Code 128",
                "code_39" => "Code 39",
                _ => "code",
            },
            text: code.text.clone(),
        }
    }
}

impl CustomerRowView {
    fn of(c: &Customer) -> Self {
        Self {
            name: c.name.to_string(),
            email: c.email.to_string(),
            phone: c
                .phone
                .as_ref()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            company: c
                .company
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            country: c.country.as_str().to_owned(),
            role: c.role.label(),
            language: c.language.name(),
            purchase_channel: c
                .purchase_channel
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }
}

impl MailRowView {
    fn of(m: &MailStatus) -> Self {
        Self {
            id: m.id,
            kind: m.kind.as_str(),
            status: m.status.as_str(),
            attempts: m.attempts,
            last_error: m.last_error.clone().unwrap_or_default(),
            retry: match m.kind {
                _ if m.status != OutboxStatus::Dead => None,
                MailKind::Approval => Some("Sign again and send"),
                MailKind::AccessCode => None,
                _ => Some("Retry"),
            },
            not_retried: (m.status == OutboxStatus::Dead && m.kind == MailKind::AccessCode)
                .then_some("Not sent twice: the customer asks for a new code."),
        }
    }
}

pub(super) fn error_page(error: ReviewError) -> HttpResponse {
    answer_page("The action did not go through", &ErrorAnswer::from(error))
}

#[get("/console/tickets/{ticket}")]
async fn ticket_view(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> HttpResponse {
    let decided = query.decided.as_deref().and_then(parse_number);
    let notice = Done::ALL
        .into_iter()
        .find(|d| query.done.as_deref() == Some(d.as_str()))
        .map(|d| match &decided {
            // "… and next" brought the agent here from the ticket just decided.
            Some(decided) => format!("Ticket {decided}: {}", d.notice()),
            None if query.last.as_deref() == Some("yes") => format!(
                "{} No other open ticket is waiting in the queue.",
                d.notice()
            ),
            None => d.notice().to_owned(),
        });
    match parse_number(&path) {
        Some(number) => {
            let outcome = Outcome {
                status: StatusCode::OK,
                error: None,
                notice,
            };
            ticket_page(&desk, &console, &number, outcome).await
        }
        None => not_a_ticket(),
    }
}

/// Which picture of the label photo: the original as the customer sent it, or what the
/// evidence worker made of it for the console (`?size=preview`, 1,600 px, upright, no
/// metadata) and the queue (`?size=thumbnail`).
#[derive(Deserialize)]
struct LabelSize {
    size: Option<String>,
    /// An earlier photo of the ticket, by its place among them (1 the first replaced),
    /// as it was sent.
    earlier: Option<usize>,
}

/// The label photo, for signed-in agents only. Served with the type checked at intake,
/// never sniffed, and sandboxed so a crafted file cannot run as a page. A preview or a
/// thumbnail not made yet (the photo is still being read, or could not be) is the
/// original.
#[get("/console/tickets/{ticket}/label")]
async fn label_photo(
    desk: web::Data<Desk>,
    _console: ConsoleUser,
    path: web::Path<String>,
    query: web::Query<LabelSize>,
) -> HttpResponse {
    let ticket = match ticket_at(&desk, &path).await {
        Ok(ticket) => ticket,
        Err(refusal) => return refusal,
    };
    if let Some(gone) = evidence_deleted(&desk, &ticket, "photo") {
        return gone;
    }
    if let Some(place) = query.earlier {
        let earlier = match desk.store.earlier_photos(ticket.id).await {
            Ok(earlier) => earlier,
            Err(error) => {
                return crate::routes::failure_page("The photo is unavailable", &error);
            }
        };
        let Some(photo) = place.checked_sub(1).and_then(|i| earlier.get(i)) else {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such photo",
                &format!(
                    "Ticket {} has {} earlier photo(s); there is no number {place}.",
                    ticket.summary.number,
                    earlier.len()
                ),
            );
        };
        return match desk.blobs.get(&photo.blob).await {
            Ok(bytes) => customers_picture(&photo.media_type, bytes),
            Err(error) => crate::routes::failure_page("The photo is unavailable", &error),
        };
    }
    let previews = match query.size.as_deref() {
        Some("preview" | "thumbnail") => match review::label_evidence(&desk, &ticket).await {
            Ok(evidence) => evidence.and_then(|e| e.previews),
            Err(error) => return error_page(error),
        },
        _ => None,
    };
    let (blob, media_type) = match (&previews, query.size.as_deref()) {
        (Some(p), Some("thumbnail")) => (p.thumbnail_blob.as_str(), "image/jpeg"),
        (Some(p), _) => (p.preview_blob.as_str(), "image/jpeg"),
        (None, _) => (ticket.label_blob.as_str(), ticket.label_media_type.as_str()),
    };
    match desk.blobs.get(blob).await {
        Ok(bytes) => customers_picture(media_type, bytes),
        Err(error) => crate::routes::failure_page("The photo is unavailable", &error),
    }
}

/// 410 Gone for a picture data retention deleted, saying so, instead of an error.
fn evidence_deleted(desk: &Desk, ticket: &TicketDetail, what: &str) -> Option<HttpResponse> {
    if let Some(at) = ticket.erased_at {
        return Some(message_page(
            StatusCode::GONE,
            "Erased on request",
            &format!(
                "The {what} of ticket {} was erased with the customer's data on {} UTC, at their request.",
                ticket.summary.number,
                at.shown_utc()
            ),
        ));
    }
    let at = ticket.evidence_removed_at?;
    let days = desk.settings.retention.photo_days;
    Some(message_page(
        StatusCode::GONE,
        &format!("Photo deleted after {days} days"),
        &format!(
            "The {what} of ticket {} was deleted on {} UTC: the desk keeps a decided ticket's photos and export {days} days (photo_retention_days).",
            ticket.summary.number,
            at.shown_utc()
        ),
    ))
}

/// A picture a customer sent, as agents' browsers get it: with the type checked at
/// intake, never sniffed, sandboxed so a crafted file cannot run as a page, and kept in
/// no cache.
fn customers_picture(media_type: &str, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, media_type.to_owned()))
        .insert_header(("Content-Security-Policy", "sandbox; default-src 'none'"))
        .insert_header(("Cache-Control", "private, no-store"))
        .body(bytes)
}

/// The picture of the QR code the customer sent as their export, for signed-in agents
/// only; served as the label photo is (its type read off the bytes intake checked,
/// sandboxed, not cached).
#[get("/console/tickets/{ticket}/export")]
async fn export_picture(
    desk: web::Data<Desk>,
    _console: ConsoleUser,
    path: web::Path<String>,
) -> HttpResponse {
    let ticket = match ticket_at(&desk, &path).await {
        Ok(ticket) => ticket,
        Err(refusal) => return refusal,
    };
    if ticket.export_form != ExportForm::Qr {
        return message_page(
            StatusCode::NOT_FOUND,
            "No picture",
            "This ticket's export came as text: the ticket page shows it.",
        );
    }
    if let Some(gone) = evidence_deleted(&desk, &ticket, "picture of the QR code") {
        return gone;
    }
    match review::export_as_sent(&desk, &ticket.summary.number).await {
        Ok(bytes) => {
            // Intake took a PNG or a JPEG and nothing else.
            let media_type = if bytes.starts_with(b"\x89PNG") {
                "image/png"
            } else {
                "image/jpeg"
            };
            customers_picture(media_type, bytes)
        }
        Err(error) => error_page(error),
    }
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
    /// The ticket decided just before this one opened ("… and next").
    decided: Option<String>,
    /// `yes`: the decision's "next" found no other open ticket.
    last: Option<String>,
}
