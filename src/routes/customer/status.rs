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
use crate::store::{StoreError, TicketDetail};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(status)
        .service(photo_form)
        .service(photo_upload);
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

/// What happens next, as HTML (the catalogue's marks).
fn next_step(t: Lang, ticket: &TicketDetail) -> String {
    match ticket.summary.status {
        TicketStatus::Open => t.html("status.next_open"),
        TicketStatus::AwaitingPhoto => t.html("status.next_awaiting_photo"),
        TicketStatus::Approved => t.html("status.next_approved"),
        // The reason is the agent's own words, as the console's list has them.
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

#[get("/status/{ticket}")]
async fn status(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
) -> HttpResponse {
    let t = reader.t;
    let number = ticket.summary.number.clone();
    let link = desk.status_link(&number);
    let photo_url =
        (ticket.summary.status == TicketStatus::AwaitingPhoto).then(|| link.to(LinkedPage::Photo));
    let expiry = (ticket.summary.status == TicketStatus::Approved)
        .then(|| ticket.responses.iter().map(|r| r.expires_at).min())
        .flatten()
        .map(|expires_at| Expiry::new(expires_at, desk.clock.now()));
    let page = StatusPage {
        t,
        switch: reader.switch,
        status_text: t.text(status_key(ticket.summary.status)),
        next_step: next_step(t, &ticket),
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
    html(StatusCode::OK, &page)
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
