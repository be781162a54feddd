//! The agents' console: sign-in, the queue, the ticket page and its actions. Every
//! route needs a session; every state-changing form carries the session's CSRF token.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::routes::{ApiError, html, message_page};
use super::guard::ConsoleUser;
use crate::desk::Desk;
use crate::domain::{TicketNumber, TicketStatus, Timestamp};
use crate::review::{self, ReviewError};
use crate::store::{QueueCursor, QueueFilter, StoreError};

/// Tickets on one queue page.
const QUEUE_PAGE: i64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(queue)
        .service(ticket_view)
        .service(label_photo)
        .service(claim)
        .service(approve)
        .service(reject)
        .service(request_photo)
        .service(retry_mail)
        .service(correct_address)
        .service(reasons_view)
        .service(add_reason)
        .service(remove_reason);
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location.to_owned()))
        .finish()
}

/// The fields of the console's action forms. Their `csrf` field was already checked by
/// the console guard before any handler runs.
#[derive(Deserialize)]
struct ActionForm {
    reason: Option<String>,
    canned: Option<String>,
    note: Option<String>,
    email: Option<String>,
    /// The version of the evidence the page showed (a hidden field of the decision
    /// forms): a decision on an older one is refused.
    evidence_version: Option<i64>,
    /// A supervisor's explicit take-over of another agent's claim.
    take_over: Option<String>,
}

struct QueueRow {
    number: TicketNumber,
    flags: Vec<String>,
    age: String,
    model: String,
    serial: String,
    devices: i64,
    status: &'static str,
    claimed_by: String,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    next: Option<String>,
    user: String,
    csrf: String,
    status: String,
    q: String,
    statuses: Vec<(&'static str, &'static str)>,
    tickets: Vec<QueueRow>,
}

fn age(since: Timestamp, now: Timestamp) -> String {
    let minutes = now.seconds_since(since).max(0) / 60;
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

#[derive(Deserialize)]
struct QueueQuery {
    status: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

#[get("/console")]
async fn queue(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    query: web::Query<QueueQuery>,
) -> HttpResponse {
    let status = query.status.clone().unwrap_or_else(|| "open".to_owned());
    let filter = QueueFilter {
        status: TicketStatus::parse(&status),
        search: query.q.clone(),
        after: query.after.as_deref().and_then(QueueCursor::parse),
        limit: QUEUE_PAGE,
    };
    let tickets = match desk.store.tickets(&filter).await {
        Ok(tickets) => tickets,
        Err(error) => {
            return crate::routes::failure_page("The queue is unavailable", &error);
        }
    };
    let now = desk.clock.now();
    let mut statuses = vec![("all", "All")];
    statuses.extend(
        TicketStatus::ALL
            .iter()
            .map(|s| (s.as_str(), s.describe_short())),
    );
    let next = (tickets.len() as i64 == QUEUE_PAGE)
        .then(|| tickets.last().map(QueueCursor::after))
        .flatten()
        .and_then(|cursor| {
            let params = [
                ("status", status.as_str()),
                ("q", query.q.as_deref().unwrap_or("")),
                ("after", &cursor.to_param()),
            ];
            serde_urlencoded::to_string(params).ok()
        })
        .map(|params| format!("/console?{params}"));
    let page = QueuePage {
        next,
        user: console.user.email.to_string(),
        csrf: console.csrf,
        status,
        q: query.q.clone().unwrap_or_default(),
        statuses,
        tickets: tickets
            .into_iter()
            .map(|t| QueueRow {
                age: age(t.created_at, now),
                flags: t.flags,
                number: t.number,
                model: t.first_model,
                serial: t.first_serial,
                devices: t.device_count,
                status: t.status.describe_short(),
                claimed_by: t.claimed_by.unwrap_or_default(),
            })
            .collect(),
    };
    html(StatusCode::OK, &page)
}

struct DeviceRow {
    model: String,
    serial: String,
    firmware: String,
    mac: String,
    issued_at: String,
    age: String,
}

struct CustomerRow {
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

struct MailRow {
    id: i64,
    kind: String,
    status: String,
    attempts: i64,
    last_error: String,
    /// What the Retry button says, when the mail is dead and can be sent again.
    retry: Option<&'static str>,
    /// Why a dead mail has no Retry button.
    not_retried: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/ticket.html")]
struct TicketPage {
    user: String,
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
    devices: Vec<DeviceRow>,
    customer: CustomerRow,
    canned: Vec<(i64, String)>,
    flags: Vec<String>,
    /// The same customer's approved ticket for this device, within the repeat window.
    repeat_of: Option<TicketNumber>,
    repeat_days: i64,
    /// What the customer said the device answered, newest last.
    feedback: Vec<String>,
    approvals: Vec<(String, &'static str, String, String)>,
    mails: Vec<MailRow>,
    events: Vec<(String, String, String, String)>,
    error: Option<String>,
    notice: Option<String>,
}

fn parse_number(raw: &str) -> Option<TicketNumber> {
    TicketNumber::parse(raw).ok()
}

fn not_a_ticket() -> HttpResponse {
    message_page(
        StatusCode::NOT_FOUND,
        "No such ticket",
        "That is not a ticket number.",
    )
}

async fn ticket_page(
    desk: &Desk,
    console: &ConsoleUser,
    number: &TicketNumber,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> HttpResponse {
    let ticket = match review::load(desk, number).await {
        Ok(ticket) => ticket,
        Err(ReviewError::NotFound(_)) => {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such ticket",
                &format!("There is no ticket {number}."),
            );
        }
        Err(other) => return error_page(other),
    };
    let canned = desk.store.canned_reasons().await.unwrap_or_default();
    let now = desk.clock.now();
    let c = &ticket.customer;
    let page = TicketPage {
        user: console.user.email.to_string(),
        csrf: console.csrf.clone(),
        number: number.clone(),
        status: ticket.summary.status.describe_short(),
        pending: ticket.summary.status.is_pending(),
        open: ticket.summary.status == TicketStatus::Open,
        claimed_by: ticket
            .summary
            .claimed_by
            .clone()
            .unwrap_or_else(|| "nobody yet".to_owned()),
        claimed_by_other: ticket
            .summary
            .claimed_by
            .as_deref()
            .is_some_and(|holder| holder != console.user.email.as_str()),
        may_take_over: console.user.roles.contains(crate::domain::Role::Supervisor),
        evidence_version: ticket.evidence_version,
        decided_by: ticket.decided_by.clone().unwrap_or_default(),
        reason: ticket.decision_reason.clone().unwrap_or_default(),
        export_form: ticket.export_form.as_str(),
        repeat_of: ticket.repeat_of.clone(),
        repeat_days: crate::customer::REPEAT_WINDOW_DAYS,
        feedback: ticket
            .events
            .iter()
            .filter(|e| e.kind == "customer_feedback")
            .map(|e| e.detail.clone())
            .collect(),
        devices: ticket
            .devices
            .iter()
            .map(|d| DeviceRow {
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
            })
            .collect(),
        customer: CustomerRow {
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
        },
        canned,
        flags: ticket.summary.flags.clone(),
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
        mails: ticket
            .mails
            .iter()
            .map(|m| MailRow {
                id: m.id,
                kind: m.kind.clone(),
                status: m.status.clone(),
                attempts: m.attempts,
                last_error: m.last_error.clone().unwrap_or_default(),
                retry: match m.kind.as_str() {
                    _ if m.status != "dead" => None,
                    crate::mail::compose::kind::APPROVAL => Some("Sign again and send"),
                    crate::mail::compose::kind::ACCESS_CODE => None,
                    _ => Some("Retry"),
                },
                not_retried: (m.status == "dead"
                    && m.kind == crate::mail::compose::kind::ACCESS_CODE)
                    .then_some("Not sent twice: the customer asks for a new code."),
            })
            .collect(),
        events: ticket
            .events
            .iter()
            .map(|e| {
                (
                    e.at.to_string(),
                    e.actor.clone(),
                    e.kind.clone(),
                    e.detail.clone(),
                )
            })
            .collect(),
        error,
        notice,
    };
    html(status, &page)
}

fn error_page(error: ReviewError) -> HttpResponse {
    let api = ApiError::from(error);
    message_page(
        api.status,
        "The action did not go through",
        &api.message.english(),
    )
}

#[get("/console/tickets/{ticket}")]
async fn ticket_view(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> HttpResponse {
    let notice = Done::ALL
        .into_iter()
        .find(|d| query.done.as_deref() == Some(d.as_str()))
        .map(|d| d.notice().to_owned());
    match parse_number(&path) {
        Some(number) => ticket_page(&desk, &console, &number, StatusCode::OK, None, notice).await,
        None => not_a_ticket(),
    }
}

/// The label photo, for signed-in agents only. Served with the type checked at intake,
/// never sniffed, and sandboxed so a crafted file cannot run as a page.
#[get("/console/tickets/{ticket}/label")]
async fn label_photo(
    desk: web::Data<Desk>,
    _console: ConsoleUser,
    path: web::Path<String>,
) -> HttpResponse {
    let Some(number) = parse_number(&path) else {
        return not_a_ticket();
    };
    let ticket = match review::load(&desk, &number).await {
        Ok(ticket) => ticket,
        Err(error) => return error_page(error),
    };
    match desk.blobs.get(&ticket.label_blob).await {
        Ok(bytes) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, ticket.label_media_type.clone()))
            .insert_header(("Content-Security-Policy", "sandbox; default-src 'none'"))
            .insert_header(("Cache-Control", "private, no-store"))
            .body(bytes),
        Err(error) => crate::routes::failure_page("The photo is unavailable", &error),
    }
}

/// Runs one console action after the CSRF check and shows the ticket again.
async fn act<F, Fut>(desk: &Desk, console: &ConsoleUser, raw: &str, action: F) -> HttpResponse
where
    F: FnOnce(TicketNumber) -> Fut,
    Fut: std::future::Future<Output = Result<Done, ReviewError>>,
{
    let Some(number) = parse_number(raw) else {
        return not_a_ticket();
    };
    match action(number.clone()).await {
        Ok(done) => see_other(&format!("/console/tickets/{number}?done={}", done.as_str())),
        Err(ReviewError::Internal(cause)) => error_page(ReviewError::Internal(cause)),
        Err(error) => {
            // A stale page is a conflict with what the ticket holds now; 412 belongs to
            // the API's If-Match.
            let stale = matches!(error, ReviewError::Stale);
            let api = ApiError::from(error);
            ticket_page(
                desk,
                console,
                &number,
                if stale {
                    StatusCode::CONFLICT
                } else {
                    api.status
                },
                Some(api.message.english()),
                None,
            )
            .await
        }
    }
}

/// What a console action did, carried in the redirect so the ticket page can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Claimed,
    TakenOver,
    Approved,
    FirstApproval,
    Rejected,
    PhotoRequested,
    MailRetried,
    AddressChanged,
    MailSignedAgain,
}

impl Done {
    const ALL: [Done; 9] = [
        Self::Claimed,
        Self::TakenOver,
        Self::Approved,
        Self::FirstApproval,
        Self::Rejected,
        Self::PhotoRequested,
        Self::MailRetried,
        Self::AddressChanged,
        Self::MailSignedAgain,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::TakenOver => "taken-over",
            Self::Approved => "approved",
            Self::FirstApproval => "first-approval",
            Self::Rejected => "rejected",
            Self::PhotoRequested => "photo-requested",
            Self::MailRetried => "mail-retried",
            Self::AddressChanged => "address-changed",
            Self::MailSignedAgain => "mail-signed-again",
        }
    }

    fn notice(self) -> &'static str {
        match self {
            Self::Claimed => {
                "You claimed this ticket: other agents see that you are working on it and cannot claim it."
            }
            Self::TakenOver => {
                "You took the claim over: the history and the audit log record from whom."
            }
            Self::Approved => {
                "Approved: the responses are signed and the e-mail to the customer is on its way."
            }
            Self::FirstApproval => {
                "Your approval is recorded. This flagged ticket needs a second approval by another person; at least one of you must be a supervisor. Nothing was signed yet."
            }
            Self::Rejected => "Rejected: the customer is told the reason by e-mail.",
            Self::PhotoRequested => {
                "The customer is asked for a new label photo; the ticket comes back when it arrives."
            }
            Self::MailRetried => "The e-mail is queued again.",
            Self::AddressChanged => {
                "The customer's address is changed: the confirmation went to the new address and the old one was told. Earlier approvals are withdrawn; the ticket now needs two approvals from two people, at least one a supervisor."
            }
            Self::MailSignedAgain => {
                "The responses are signed again and the new e-mail is queued (recorded in the audit log)."
            }
        }
    }
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

#[post("/console/tickets/{ticket}/claim")]
async fn claim(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let take_over = form.take_over.as_deref() == Some("yes");
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::claim(d, u, &n, take_over).await.map(|()| {
            if take_over {
                Done::TakenOver
            } else {
                Done::Claimed
            }
        })
    })
    .await
}

#[post("/console/tickets/{ticket}/approve")]
async fn approve(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let (note, seen) = (form.note.clone().unwrap_or_default(), form.evidence_version);
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        match review::approve(d, u, &n, &note, seen).await? {
            review::Approved::Signed => Ok(Done::Approved),
            review::Approved::AwaitingSecond => Ok(Done::FirstApproval),
        }
    })
    .await
}

#[post("/console/tickets/{ticket}/reject")]
async fn reject(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let typed = form
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let reason = typed
        .or(form
            .canned
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty()))
        .unwrap_or("")
        .to_owned();
    let seen = form.evidence_version;
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::reject(d, u, &n, &reason, seen)
            .await
            .map(|()| Done::Rejected)
    })
    .await
}

#[post("/console/tickets/{ticket}/request-photo")]
async fn request_photo(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let (note, seen) = (form.note.clone().unwrap_or_default(), form.evidence_version);
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::request_photo(d, u, &n, &note, seen)
            .await
            .map(|()| Done::PhotoRequested)
    })
    .await
}

#[post("/console/tickets/{ticket}/mails/{mail}/retry")]
async fn retry_mail(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<(String, i64)>,
) -> HttpResponse {
    let (raw, mail_id) = path.into_inner();
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &raw, |n| async move {
        review::retry_mail(d, u, &n, mail_id)
            .await
            .map(|retried| match retried {
                review::Retried::Queued => Done::MailRetried,
                review::Retried::SignedAgain => Done::MailSignedAgain,
            })
    })
    .await
}

#[post("/console/tickets/{ticket}/email")]
async fn correct_address(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let email = form.email.clone().unwrap_or_default();
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::correct_address(d, u, &n, &email)
            .await
            .map(|()| Done::AddressChanged)
    })
    .await
}

/// Canned reasons are the supervisors' to keep.
fn supervisors_only(console: &ConsoleUser) -> Option<HttpResponse> {
    (!console.user.roles.contains(crate::domain::Role::Supervisor)).then(|| {
        message_page(
            StatusCode::FORBIDDEN,
            "Supervisors only",
            "Editing the rejection reasons needs the supervisor role.",
        )
    })
}

#[derive(Template)]
#[template(path = "console/reasons.html")]
struct ReasonsPage {
    user: String,
    csrf: String,
    reasons: Vec<(i64, String)>,
    error: Option<String>,
}

async fn reasons_page(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    match desk.store.canned_reasons().await {
        Ok(reasons) => html(
            status,
            &ReasonsPage {
                user: console.user.email.to_string(),
                csrf: console.csrf.clone(),
                reasons,
                error,
            },
        ),
        Err(e) => crate::routes::failure_page("The list is unavailable", &e),
    }
}

#[get("/console/reasons")]
async fn reasons_view(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    reasons_page(&desk, &console, StatusCode::OK, None).await
}

#[post("/console/reasons")]
async fn add_reason(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    if let Some(refusal) = supervisors_only(&console) {
        return refusal;
    }
    let text = match crate::domain::PlainText::parse(
        form.reason.as_deref().unwrap_or(""),
        review::MAX_REASON_CHARS,
    ) {
        Ok(text) => text,
        Err(e) => {
            return reasons_page(
                &desk,
                &console,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!("The reason {e}.")),
            )
            .await;
        }
    };
    match desk
        .store
        .add_canned_reason(text.as_str(), console.user.id, desk.clock.now())
        .await
    {
        Ok(()) => see_other("/console/reasons"),
        Err(StoreError::Conflict(message)) => {
            reasons_page(
                &desk,
                &console,
                StatusCode::CONFLICT,
                Some(message.to_string()),
            )
            .await
        }
        Err(e) => crate::routes::failure_page("The reason was not saved", &e),
    }
}

#[post("/console/reasons/{id}/delete")]
async fn remove_reason(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
) -> HttpResponse {
    if let Some(refusal) = supervisors_only(&console) {
        return refusal;
    }
    match desk
        .store
        .remove_canned_reason(path.into_inner(), console.user.id, desk.clock.now())
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => see_other("/console/reasons"),
        Err(e) => crate::routes::failure_page("The reason was not removed", &e),
    }
}
