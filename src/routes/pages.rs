//! The customer's pages: the request form, the status page and the new-photo upload.
//! They work without JavaScript and on a phone.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::{ApiError, html, upload};
use crate::customer::DeviceAnswer;
use crate::desk::Desk;
use crate::domain::{CustomerRole, TicketNumber, TicketStatus, Timestamp};
use crate::intake::{self, FieldIssue, IntakeError};
use crate::store::{StoreError, TicketDetail};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(form)
        .service(submit)
        .service(status)
        .service(photo_form)
        .service(photo_upload);
}

pub struct TextField {
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub required: bool,
}

const TEXT_FIELDS: &[TextField] = &[
    TextField {
        name: "name",
        label: "Your name",
        hint: "",
        kind: "text",
        autocomplete: "name",
        required: true,
    },
    TextField {
        name: "email",
        label: "E-mail address",
        hint: "We send the response here. Check that it is right.",
        kind: "email",
        autocomplete: "email",
        required: true,
    },
    TextField {
        name: "phone",
        label: "Phone",
        hint: "In case we need to call you about this request.",
        kind: "tel",
        autocomplete: "tel",
        required: false,
    },
    TextField {
        name: "company",
        label: "Company",
        hint: "",
        kind: "text",
        autocomplete: "organization",
        required: false,
    },
    TextField {
        name: "purchase_channel",
        label: "Where the device was bought",
        hint: "The shop, installer or distributor.",
        kind: "text",
        autocomplete: "off",
        required: false,
    },
];

/// Countries offered in the form (ISO 3166-1 alpha-2); any valid code is accepted by the API.
const COUNTRIES: &[(&str, &str)] = &[
    ("AR", "Argentina"),
    ("AU", "Australia"),
    ("AT", "Austria"),
    ("BE", "Belgium"),
    ("BR", "Brazil"),
    ("CA", "Canada"),
    ("CL", "Chile"),
    ("CN", "China"),
    ("CO", "Colombia"),
    ("CZ", "Czechia"),
    ("DK", "Denmark"),
    ("EG", "Egypt"),
    ("FI", "Finland"),
    ("FR", "France"),
    ("DE", "Germany"),
    ("GR", "Greece"),
    ("IN", "India"),
    ("ID", "Indonesia"),
    ("IE", "Ireland"),
    ("IL", "Israel"),
    ("IT", "Italy"),
    ("JP", "Japan"),
    ("KR", "Korea"),
    ("MY", "Malaysia"),
    ("MX", "Mexico"),
    ("MA", "Morocco"),
    ("NL", "Netherlands"),
    ("NZ", "New Zealand"),
    ("NG", "Nigeria"),
    ("NO", "Norway"),
    ("PE", "Peru"),
    ("PH", "Philippines"),
    ("PL", "Poland"),
    ("PT", "Portugal"),
    ("RO", "Romania"),
    ("SA", "Saudi Arabia"),
    ("SG", "Singapore"),
    ("ZA", "South Africa"),
    ("ES", "Spain"),
    ("SE", "Sweden"),
    ("CH", "Switzerland"),
    ("TH", "Thailand"),
    ("TR", "Türkiye"),
    ("AE", "United Arab Emirates"),
    ("GB", "United Kingdom"),
    ("US", "United States"),
    ("UY", "Uruguay"),
    ("VN", "Viet Nam"),
];

#[derive(Template)]
#[template(path = "pages/form.html")]
struct FormPage {
    values: BTreeMap<String, String>,
    errors: Vec<FieldIssue>,
    general_error: Option<String>,
    text_fields: &'static [TextField],
    countries: &'static [(&'static str, &'static str)],
    roles: Vec<(&'static str, &'static str)>,
    max_photo_mb: u64,
}

impl FormPage {
    fn new(desk: &Desk) -> Self {
        Self {
            values: BTreeMap::new(),
            errors: Vec::new(),
            general_error: None,
            text_fields: TEXT_FIELDS,
            countries: COUNTRIES,
            roles: CustomerRole::ALL
                .iter()
                .map(|r| (r.as_str(), r.label()))
                .collect(),
            max_photo_mb: desk.settings.max_label_photo_bytes / (1024 * 1024),
        }
    }

    fn value(&self, field: &str) -> &str {
        self.values.get(field).map_or("", String::as_str)
    }

    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

#[derive(Template)]
#[template(path = "pages/submitted.html")]
struct SubmittedPage {
    number: TicketNumber,
    status_url: String,
    existing: bool,
    superseded: Vec<TicketNumber>,
}

#[get("/")]
async fn form(desk: web::Data<Desk>) -> HttpResponse {
    html(StatusCode::OK, &FormPage::new(&desk))
}

/// The form posts the same multipart fields as the API; problems come back on the form,
/// with what was typed kept and each problem next to its field.
#[post("/")]
async fn submit(
    desk: web::Data<Desk>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let mut page = FormPage::new(&desk);
    let read = match upload::check_address_limit(&desk, &request) {
        Ok(()) => upload::read_submission(&desk, &request, payload).await,
        Err(error) => Err(error),
    };
    let raw = match read {
        Ok(raw) => raw,
        Err(error) => {
            page.general_error = Some(error.message.clone());
            let response = html(
                error.status,
                &FormPage {
                    errors: error.issues.clone(),
                    ..page
                },
            );
            return super::with_retry_after(response, error.retry_after);
        }
    };
    page.values = raw.text.clone();
    match intake::submit(&desk, raw).await {
        Ok(submitted) => html(
            if submitted.existing {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            &SubmittedPage {
                number: submitted.number,
                status_url: submitted.status_url,
                existing: submitted.existing,
                superseded: submitted.superseded,
            },
        ),
        Err(IntakeError::Invalid(issues)) => {
            page.errors = issues;
            html(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(IntakeError::Conflict(field, message)) => {
            page.errors = vec![FieldIssue {
                field: if field.starts_with("export") || field == "reset_string" {
                    "export"
                } else {
                    field
                },
                message,
            }];
            html(StatusCode::CONFLICT, &page)
        }
        Err(
            error
            @ (IntakeError::RateLimited { .. } | IntakeError::StorageFull | IntakeError::Busy),
        ) => {
            let api = ApiError::from(error);
            page.general_error = Some(api.message.clone());
            super::with_retry_after(html(api.status, &page), api.retry_after)
        }
        Err(IntakeError::Internal(cause)) => {
            let error = ApiError::internal(cause.as_ref());
            page.general_error = Some(error.message);
            super::with_retry_after(html(error.status, &page), error.retry_after)
        }
    }
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
            ticket_for_link(desk, number, token.as_deref())
                .await
                .map(LinkedTicket)
                .map_err(refused)
        })
    }
}

async fn ticket_for_link(
    desk: &Desk,
    number: &str,
    token: Option<&str>,
) -> Result<TicketDetail, HttpResponse> {
    let not_found = || {
        super::message_page(
            StatusCode::NOT_FOUND,
            "Ticket not found",
            "This link is not valid. Please use the link from your confirmation e-mail.",
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
        Err(other) => Err(super::failure_page("Something went wrong", &other)),
    }
}

#[derive(Template)]
#[template(path = "pages/status.html")]
struct StatusPage {
    number: TicketNumber,
    status_text: &'static str,
    next_step: String,
    photo_url: Option<String>,
    expiry: Option<Expiry>,
    /// Where to ask for a one-time code that shows the response here.
    code_url: Option<String>,
    /// Where to say the response did not work, with the answers to choose from.
    feedback_url: Option<String>,
    answers: &'static [DeviceAnswer],
    devices: Vec<(String, String)>,
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

fn next_step(ticket: &TicketDetail) -> String {
    match ticket.summary.status {
        TicketStatus::Open => "A support agent compares your export with the label photo. You will get an e-mail with the reset response, usually within one working day.".to_owned(),
        TicketStatus::AwaitingPhoto => "We could not read the label on your photo. Please send a new one; your request then goes back to our support team.".to_owned(),
        TicketStatus::Approved => "Import the file attached to our e-mail on the device's Forgot password screen, or type the key from the e-mail there, then choose a new password.".to_owned(),
        TicketStatus::Rejected => format!(
            "Reason: {}. You can send a new request with a new export and a clear photo of the label.",
            ticket.decision_reason.as_deref().unwrap_or("not given")
        ),
        TicketStatus::Superseded => match &ticket.superseded_by {
            Some(newer) => format!("Nothing: your newer request {newer} replaces this one."),
            None => "Nothing: a newer request replaces this one.".to_owned(),
        },
    }
}

#[get("/status/{ticket}")]
async fn status(desk: web::Data<Desk>, LinkedTicket(ticket): LinkedTicket) -> HttpResponse {
    let number = ticket.summary.number.clone();
    let token = desk.keys.desk_secret.status_token(number.as_str());
    let photo_url = (ticket.summary.status == TicketStatus::AwaitingPhoto)
        .then(|| format!("/status/{number}/photo?t={token}"));
    let expiry = (ticket.summary.status == TicketStatus::Approved)
        .then(|| ticket.responses.iter().map(|r| r.expires_at).min())
        .flatten()
        .map(|expires_at| Expiry::new(expires_at, desk.clock.now()));
    let page = StatusPage {
        status_text: ticket.summary.status.describe(),
        next_step: next_step(&ticket),
        feedback_url: (ticket.summary.status == TicketStatus::Approved)
            .then(|| format!("/status/{number}/feedback?t={token}")),
        answers: &DeviceAnswer::ALL,
        code_url: expiry
            .as_ref()
            .filter(|e| !e.expired)
            .map(|_| format!("/status/{number}/code?t={token}")),
        photo_url,
        expiry,
        devices: ticket
            .devices
            .iter()
            .map(|d| (d.identity.model.to_string(), d.identity.serial.to_string()))
            .collect(),
        submitted: ticket.summary.created_at.shown_utc(),
        number,
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "pages/photo.html")]
struct PhotoPage {
    number: TicketNumber,
    status_url: String,
    error: Option<String>,
    done: bool,
}

#[get("/status/{ticket}/photo")]
async fn photo_form(desk: web::Data<Desk>, LinkedTicket(ticket): LinkedTicket) -> HttpResponse {
    let number = ticket.summary.number;
    html(
        StatusCode::OK,
        &PhotoPage {
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
    LinkedTicket(ticket): LinkedTicket,
    payload: web::Payload,
) -> HttpResponse {
    let number = ticket.summary.number.clone();
    let mut page = PhotoPage {
        status_url: desk.status_url(&number),
        number,
        error: None,
        done: false,
    };
    let outcome = match upload::read_submission(&desk, &request, payload).await {
        Ok(raw) => intake::replace_label_photo(&desk, ticket.id, raw)
            .await
            .map_err(|e| match e {
                IntakeError::Invalid(_) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                }
                other => ApiError::from(other),
            }),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => {
            page.done = true;
            html(StatusCode::OK, &page)
        }
        Err(error) => {
            page.error = Some(error.message);
            super::with_retry_after(html(error.status, &page), error.retry_after)
        }
    }
}
