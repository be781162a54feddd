//! The pages behind a ticket's status link: the status itself and the new label photo.
//! Every one of them is reached only with the link's token ([`LinkedTicket`]).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::customer::DeviceAnswer;
use crate::desk::{Desk, LinkedPage};
use crate::domain::{TicketNumber, TicketStatus, Timestamp};
use crate::i18n::Lang;
use crate::intake;
use crate::routes::{ErrorAnswer, LanguageSwitch, Reader, html, refused, upload};
use crate::store::{StoreError, TicketDetail, TicketEventKind};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(status)
        .service(photo_form)
        .service(photo_upload)
        .service(again)
        .service(reply);
}

#[derive(Deserialize)]
struct TokenQuery {
    t: Option<String>,
}

/// A ticket reached through its status link: the `{ticket}` in the path and the link's
/// token in `?t=`. Handlers that take it never see a ticket whose link was not shown.
/// A wrong token and a missing ticket answer the same "not found" page, so links cannot
/// be probed.
pub(super) struct LinkedTicket(pub TicketDetail);

impl actix_web::FromRequest for LinkedTicket {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let refused = |response| {
                actix_web::error::InternalError::from_response("status link refused", response)
                    .into()
            };
            let Some(desk) = request.app_data::<web::Data<Desk>>() else {
                return Err(actix_web::error::ErrorInternalServerError(
                    "the desk is not configured",
                ));
            };
            let number = request.match_info().get("ticket").unwrap_or_default();
            let token = web::Query::<TokenQuery>::from_query(request.query_string())
                .ok()
                .and_then(|query| query.into_inner().t);
            let reader = Reader::of(&request);
            ticket_for_link(desk, &reader, number, token.as_deref())
                .await
                .map(LinkedTicket)
                .map_err(refused)
        })
    }
}

async fn ticket_for_link(
    desk: &Desk,
    reader: &Reader,
    number: &str,
    token: Option<&str>,
) -> Result<TicketDetail, HttpResponse> {
    let not_found = || {
        crate::routes::customer_message_page(
            StatusCode::NOT_FOUND,
            reader,
            "page.not_found_title",
            reader.t.text("page.not_found_text"),
        )
    };
    let number = TicketNumber::parse(number).map_err(|_| not_found())?;
    let token = token.ok_or_else(not_found)?;
    if !desk
        .keys
        .desk_secret
        .status_token_is_valid(number.as_str(), token)
    {
        return Err(not_found());
    }
    match desk.store.ticket(&number).await {
        Ok(ticket) => Ok(ticket),
        Err(StoreError::NotFound) => Err(not_found()),
        Err(other) => Err(crate::routes::customer_failure_page(reader, &other)),
    }
}

#[derive(Template)]
#[template(path = "pages/status.html")]
struct StatusPage {
    t: Lang,
    switch: LanguageSwitch,
    number: TicketNumber,
    status_text: String,
    next_step: String,
    photo_url: Option<String>,
    expiry: Option<Expiry>,
    /// While the ticket is pending: when its export, and so the request, dies.
    deadline: Option<Expiry>,
    /// What the customer last told us about a response that did not work.
    reported: Option<Reported>,
    /// The form for a new request, with this ticket's country and role chosen.
    again_url: String,
    /// Where the customer writes to support, while the ticket takes messages.
    reply_url: Option<String>,
    /// Said at the top after a message: that it arrived.
    notice: Option<String>,
    /// Why a message was not sent, and the message itself, kept in the form.
    reply_error: Option<String>,
    reply_kept: String,
    reply_max: usize,
    /// Where to ask for a one-time code that shows the response here.
    code_url: Option<String>,
    /// Where to say the response did not work, with the answers to choose from.
    feedback_url: Option<String>,
    answers: &'static [DeviceAnswer],
    devices: Vec<String>,
    submitted: String,
}

/// When an approved ticket's response stops working, as the status page shows it: the
/// time, and the time left counted from the desk's clock (the page's script keeps it
/// current from there).
struct Expiry {
    /// RFC 3339, for the page's `<time datetime>` and its script.
    iso: String,
    /// `2026-11-30 14:05:00`, shown with "UTC".
    shown: String,
    /// The desk's clock when the page was made, in Unix seconds.
    now: i64,
    /// `47:59:12`: hours, minutes, seconds.
    left: String,
    expired: bool,
}

impl Expiry {
    fn new(expires_at: Timestamp, now: Timestamp) -> Self {
        let left = expires_at.seconds_since(now).max(0);
        Self {
            iso: expires_at.to_string(),
            shown: expires_at.shown_utc(),
            now: now.unix_seconds(),
            left: format!("{}:{:02}:{:02}", left / 3600, left / 60 % 60, left % 60),
            expired: left == 0,
        }
    }
}

/// The customer's last "it did not work", as the status page says it back: when, what
/// the device said (and their note), why that happens and what comes next.
struct Reported {
    at: String,
    said: String,
    note: String,
    /// Why that happens, as HTML.
    cause: String,
    /// Whether this response can no longer work: a new request is the way on.
    dead: bool,
}

impl Reported {
    /// From the ticket's newest `customer_feedback` event (`answer` or `answer: note`).
    fn of(t: Lang, ticket: &TicketDetail) -> Option<Self> {
        let event = ticket
            .events
            .iter()
            .rev()
            .find(|e| e.kind == TicketEventKind::CustomerFeedback)?;
        let (code, note) = event
            .detail
            .split_once(": ")
            .unwrap_or((event.detail.as_str(), ""));
        let answer = DeviceAnswer::parse(code)?;
        Some(Self {
            at: event.at.shown_utc(),
            said: t.text(answer.label_key()),
            note: note.to_owned(),
            cause: t.html(answer.cause_key()),
            dead: answer.needs_new_request(),
        })
    }
}

/// How the status reads to a customer.
fn status_key(state: TicketStatus) -> &'static str {
    match state {
        TicketStatus::Open => "ticket_status.open",
        TicketStatus::AwaitingPhoto => "ticket_status.awaiting_photo",
        TicketStatus::Approved => "ticket_status.approved",
        TicketStatus::Rejected => "ticket_status.rejected",
        TicketStatus::Superseded => "ticket_status.superseded",
    }
}

/// What happens next, as HTML (the catalogue's marks); for an open ticket, with how
/// long answering took last week when the desk measured it.
fn next_step(t: Lang, ticket: &TicketDetail, answer_secs: Option<i64>) -> String {
    match ticket.summary.status {
        TicketStatus::Open => match answer_secs {
            Some(seconds) => t
                .fill("status.next_open")
                .with("duration", crate::customer::answer_time::words(t, seconds))
                .html(),
            None => t.html("status.next_open_unmeasured"),
        },
        // What the agent asked the photo to fix, in the words the customer was mailed,
        // when an agent's request is what sent the ticket back (not the desk's own, for a
        // photo it could not read).
        TicketStatus::AwaitingPhoto => match ticket
            .events
            .iter()
            .rev()
            .find(|e| {
                e.kind == TicketEventKind::PhotoRequested
                    || (e.kind == TicketEventKind::PhotoUnreadable
                        && e.detail.starts_with(crate::store::SENT_BACK))
            })
            .filter(|e| e.kind == TicketEventKind::PhotoRequested)
            .map(|e| e.detail.as_str())
            .filter(|note| !note.is_empty())
        {
            Some(note) => t
                .fill("status.next_awaiting_photo_note")
                .with("note", note)
                .html(),
            None => t.html("status.next_awaiting_photo"),
        },
        TicketStatus::Approved => t.html("status.next_approved"),
        // The reason as the customer was mailed it: the agent's words, or a canned
        // reason in the customer's language.
        TicketStatus::Rejected => match ticket.decision_reason.as_deref() {
            Some(reason) => t.fill("status.next_rejected").with("reason", reason).html(),
            None => t.html("status.next_rejected_no_reason"),
        },
        TicketStatus::Superseded => match &ticket.superseded_by {
            Some(newer) => t
                .fill("status.next_superseded_by")
                .with("number", newer)
                .html(),
            None => t.html("status.next_superseded"),
        },
    }
}

/// "Send a new request", after a response that did not work: the form, with what of
/// this ticket is not personal filled in (see `form::filled_in`).
#[get("/status/{ticket}/again")]
async fn again(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
) -> HttpResponse {
    super::form::filled_in(&desk, reader, &ticket.customer)
}

#[derive(Deserialize)]
struct StatusQuery {
    /// What the page just did, said once at its top: `replied`, `reopened`.
    done: Option<String>,
}

#[get("/status/{ticket}")]
async fn status(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
    query: web::Query<StatusQuery>,
) -> HttpResponse {
    let said = match query.done.as_deref() {
        Some("replied") => Some(Said::Notice(reader.t.text("status.reply_done"))),
        Some("reopened") => Some(Said::Notice(reader.t.text("status.reply_reopened"))),
        Some("replied-too-late") => Some(Said::Notice(reader.t.text("status.reply_too_late"))),
        _ => None,
    };
    status_page(&desk, reader, &ticket, said, StatusCode::OK).await
}

#[derive(Deserialize)]
struct ReplyForm {
    #[serde(default)]
    message: String,
}

/// The customer's message to support (`customer::reply`): back to the status page,
/// which says it arrived (and that a rejected ticket is with support again), or with
/// what to fix and the message kept.
#[post("/status/{ticket}/reply")]
async fn reply(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
    form: web::Form<ReplyForm>,
) -> HttpResponse {
    match crate::customer::reply::reply(&desk, &ticket, &form.message).await {
        Ok(outcome) => {
            let link = desk.status_link(&ticket.summary.number);
            let done = match outcome {
                crate::store::ReplyOutcome::Noted => "replied",
                crate::store::ReplyOutcome::Reopened => "reopened",
                crate::store::ReplyOutcome::TooLateToReopen => "replied-too-late",
            };
            HttpResponse::SeeOther()
                .insert_header((
                    actix_web::http::header::LOCATION,
                    format!("{}&done={done}", link.to(LinkedPage::Status)),
                ))
                .finish()
        }
        Err(error) => {
            let answer = ErrorAnswer::from(error);
            let status_url = desk.status_url(&ticket.summary.number);
            let reader = reader.back_to(&status_url);
            let said = Said::Error {
                message: reader.t.message(&answer.message),
                kept: form.message.clone(),
            };
            answer.log_failure();
            status_page(&desk, reader, &ticket, Some(said), answer.status).await
        }
    }
}

/// What the page says at its top after the customer did something there.
enum Said {
    Notice(String),
    /// A message not sent, with why and what was typed.
    Error {
        message: String,
        kept: String,
    },
}

async fn status_page(
    desk: &Desk,
    reader: Reader,
    ticket: &TicketDetail,
    said: Option<Said>,
    code: StatusCode,
) -> HttpResponse {
    let t = reader.t;
    let number = ticket.summary.number.clone();
    let link = desk.status_link(&number);
    let photo_url =
        (ticket.summary.status == TicketStatus::AwaitingPhoto).then(|| link.to(LinkedPage::Photo));
    let reported = (ticket.summary.status == TicketStatus::Approved)
        .then(|| Reported::of(t, ticket))
        .flatten();
    // A response the customer says can no longer work has no time left to count down.
    let expiry = (ticket.summary.status == TicketStatus::Approved
        && !reported.as_ref().is_some_and(|r| r.dead))
    .then(|| ticket.responses.iter().map(|r| r.expires_at).min())
    .flatten()
    .map(|expires_at| Expiry::new(expires_at, desk.clock.now()));
    // While support works on it, the request itself dies when its export does.
    let deadline = ticket
        .summary
        .status
        .is_pending()
        .then(|| Expiry::new(ticket.summary.export_expires_at, desk.clock.now()));
    let answer_secs = if ticket.summary.status == TicketStatus::Open {
        desk.answer_secs().await
    } else {
        None
    };
    let page = StatusPage {
        t,
        switch: reader.switch,
        status_text: t.text(status_key(ticket.summary.status)),
        next_step: next_step(t, ticket, answer_secs),
        deadline,
        reported,
        again_url: link.to(LinkedPage::Again),
        reply_url: crate::customer::reply::accepts_replies(ticket.summary.status)
            .then(|| link.to(LinkedPage::Reply)),
        notice: match &said {
            Some(Said::Notice(notice)) => Some(notice.clone()),
            _ => None,
        },
        reply_error: match &said {
            Some(Said::Error { message, .. }) => Some(message.clone()),
            _ => None,
        },
        reply_kept: match said {
            Some(Said::Error { kept, .. }) => kept,
            _ => String::new(),
        },
        reply_max: crate::customer::reply::MAX_REPLY_CHARS,
        feedback_url: (ticket.summary.status == TicketStatus::Approved)
            .then(|| link.to(LinkedPage::Feedback)),
        answers: &DeviceAnswer::ALL,
        code_url: expiry
            .as_ref()
            .filter(|e| !e.expired)
            .map(|_| link.to(LinkedPage::Code)),
        photo_url,
        expiry,
        devices: ticket
            .devices
            .iter()
            .map(|d| {
                t.fill("status.device_line")
                    .with("model", &d.identity.model)
                    .with("serial", &d.identity.serial)
                    .to_string()
            })
            .collect(),
        submitted: ticket.summary.created_at.shown_utc(),
        number,
    };
    html(code, &page)
}

#[derive(Template)]
#[template(path = "pages/photo.html")]
struct PhotoPage {
    t: Lang,
    switch: LanguageSwitch,
    number: TicketNumber,
    status_url: String,
    error: Option<String>,
    done: bool,
}

#[get("/status/{ticket}/photo")]
async fn photo_form(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
) -> HttpResponse {
    let number = ticket.summary.number;
    html(
        StatusCode::OK,
        &PhotoPage {
            t: reader.t,
            switch: reader.switch,
            status_url: desk.status_url(&number),
            number,
            error: None,
            done: false,
        },
    )
}

#[post("/status/{ticket}/photo")]
async fn photo_upload(
    desk: web::Data<Desk>,
    request: HttpRequest,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
    payload: web::Payload,
) -> HttpResponse {
    let number = ticket.summary.number.clone();
    let status_url = desk.status_url(&number);
    let reader = reader.back_to(&status_url);
    let mut page = PhotoPage {
        t: reader.t,
        switch: reader.switch,
        status_url,
        number,
        error: None,
        done: false,
    };
    let outcome = match upload::read_submission(&desk, &request, payload).await {
        Ok(raw) if raw.too_large.is_some() => Err(upload::too_large_answer(
            raw.too_large.as_ref().expect("checked just above"),
        )),
        Ok(raw) => intake::replace_label_photo(&desk, ticket.id, raw)
            .await
            .map_err(ErrorAnswer::from),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => {
            page.done = true;
            html(StatusCode::OK, &page)
        }
        Err(error) => {
            page.error = Some(page.t.message(&error.message));
            refused(&error, &page)
        }
    }
}
