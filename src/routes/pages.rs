//! The customer's pages: the request form, the status page and the new-photo upload.
//! They work without JavaScript and on a phone.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::address::{self, FixForm};
use super::{ApiError, LanguageSwitch, Reader, html, upload};
use crate::customer::DeviceAnswer;
use crate::desk::Desk;
use crate::domain::{CustomerRole, TicketNumber, TicketStatus, Timestamp};
use crate::i18n::Lang;
use crate::intake::{self, FieldIssue, IntakeError};
use crate::store::{StoreError, TicketDetail};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(form)
        .service(submit)
        .service(status)
        .service(photo_form)
        .service(photo_upload);
}

/// A text field of the form: its label and hint are catalogue keys.
pub struct TextField {
    pub name: &'static str,
    pub label: &'static str,
    pub hint: Option<&'static str>,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub required: bool,
}

const TEXT_FIELDS: &[TextField] = &[
    TextField {
        name: "name",
        label: "form.name_label",
        hint: None,
        kind: "text",
        autocomplete: "name",
        required: true,
    },
    TextField {
        name: "email",
        label: "form.email_label",
        hint: Some("form.email_hint"),
        kind: "email",
        autocomplete: "email",
        required: true,
    },
    TextField {
        name: "phone",
        label: "form.phone_label",
        hint: Some("form.phone_hint"),
        kind: "tel",
        autocomplete: "tel",
        required: false,
    },
    TextField {
        name: "company",
        label: "form.company_label",
        hint: None,
        kind: "text",
        autocomplete: "organization",
        required: false,
    },
    TextField {
        name: "purchase_channel",
        label: "form.purchase_channel_label",
        hint: Some("form.purchase_channel_hint"),
        kind: "text",
        autocomplete: "off",
        required: false,
    },
];

/// Countries offered in the form (ISO 3166-1 alpha-2), named by the catalogue's
/// `country.XX`; any valid code is accepted by the API.
const COUNTRIES: &[&str] = &[
    "AR", "AU", "AT", "BE", "BR", "CA", "CL", "CN", "CO", "CZ", "DK", "EG", "FI", "FR", "DE", "GR",
    "IN", "ID", "IE", "IL", "IT", "JP", "KR", "MY", "MX", "MA", "NL", "NZ", "NG", "NO", "PE", "PH",
    "PL", "PT", "RO", "SA", "SG", "ZA", "ES", "SE", "CH", "TH", "TR", "AE", "GB", "US", "UY", "VN",
];

/// The form's country list in each language, in that language's alphabetical order:
/// made once, not on every form (a submission makes one too, for its errors).
static COUNTRY_LISTS: std::sync::LazyLock<Vec<Vec<(&'static str, String)>>> =
    std::sync::LazyLock::new(|| {
        Lang::ALL
            .iter()
            .map(|t| {
                let mut list: Vec<(&'static str, String)> = COUNTRIES
                    .iter()
                    .map(|code| (*code, t.text(&format!("country.{code}"))))
                    .collect();
                // Accents sort with their letter ("Émirats" among the E's), close enough
                // to a collation for one short list.
                list.sort_by_key(|(_, name)| sort_key(name));
                list
            })
            .collect()
    });

/// The form's country list in the reader's language.
fn countries(t: Lang) -> &'static [(&'static str, String)] {
    &COUNTRY_LISTS[t as usize]
}

fn sort_key(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'á' | 'à' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'ü' | 'Ú' => 'u',
            'ñ' => 'n',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// The catalogue key of a role's name.
fn role_key(role: CustomerRole) -> &'static str {
    match role {
        CustomerRole::EndUser => "role.end_user",
        CustomerRole::Installer => "role.installer",
        CustomerRole::Reseller => "role.reseller",
        CustomerRole::Distributor => "role.distributor",
    }
}

#[derive(Template)]
#[template(path = "pages/form.html")]
struct FormPage {
    t: Lang,
    switch: LanguageSwitch,
    values: BTreeMap<String, String>,
    errors: Vec<FieldIssue>,
    general_error: Option<String>,
    text_fields: &'static [TextField],
    countries: &'static [(&'static str, String)],
    roles: Vec<(&'static str, &'static str)>,
    max_photo_mb: u64,
}

impl FormPage {
    fn new(desk: &Desk, reader: Reader) -> Self {
        Self {
            values: BTreeMap::new(),
            errors: Vec::new(),
            general_error: None,
            text_fields: TEXT_FIELDS,
            countries: countries(reader.t),
            roles: CustomerRole::ALL
                .iter()
                .map(|r| (r.as_str(), role_key(*r)))
                .collect(),
            max_photo_mb: desk.settings.intake.max_label_photo_bytes / (1024 * 1024),
            t: reader.t,
            switch: reader.switch,
        }
    }

    fn value(&self, field: &str) -> &str {
        self.values.get(field).map_or("", String::as_str)
    }

    fn error(&self, field: &str) -> Option<String> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| self.t.message(&e.message))
    }
}

#[derive(Template)]
#[template(path = "pages/submitted.html")]
struct SubmittedPage {
    t: Lang,
    switch: LanguageSwitch,
    number: TicketNumber,
    /// None for the same export from another address: the link went elsewhere.
    status_url: Option<String>,
    existing: bool,
    superseded: Vec<TicketNumber>,
    /// "Wrong address? Correct it", for the browser that sent the request.
    fix: Option<FixForm>,
}

impl SubmittedPage {
    /// "R-1, R-2": the tickets this one replaces.
    fn superseded_list(&self) -> String {
        self.superseded
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[get("/")]
async fn form(desk: web::Data<Desk>, reader: Reader) -> HttpResponse {
    html(StatusCode::OK, &FormPage::new(&desk, reader))
}

/// The form posts the same multipart fields as the API; problems come back on the form,
/// with what was typed kept and each problem next to its field.
#[post("/")]
async fn submit(
    desk: web::Data<Desk>,
    request: HttpRequest,
    reader: Reader,
    payload: web::Payload,
) -> HttpResponse {
    let mut page = FormPage::new(&desk, reader);
    let read = match upload::check_address_limit(&desk, &request).await {
        Ok(()) => upload::read_submission(&desk, &request, payload).await,
        Err(error) => Err(error),
    };
    let raw = match read {
        Ok(raw) => raw,
        Err(error) => {
            page.general_error = Some(page.t.message(&error.message));
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
        Ok(submitted) => submitted_page(&desk, &request, page.t, page.value("email"), submitted),
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
            error @ (IntakeError::RateLimited { .. }
            | IntakeError::StorageFull
            | IntakeError::Busy
            | IntakeError::BlobsUnavailable
            | IntakeError::Unconfirmed(_)),
        ) => {
            let api = ApiError::from(error);
            page.general_error = Some(page.t.message(&api.message));
            super::with_retry_after(html(api.status, &page), api.retry_after)
        }
        Err(IntakeError::Internal(cause)) => {
            let error = ApiError::internal(cause.as_ref());
            page.general_error = Some(page.t.message(&error.message));
            super::with_retry_after(html(error.status, &page), error.retry_after)
        }
    }
}

/// The answer to a submission from the form. A new ticket's page sets the cookie that
/// lets this browser correct the address for a while, and shows the form for it; the
/// same export sent again from this browser shows the form too, while the cookie lives.
fn submitted_page(
    desk: &Desk,
    request: &HttpRequest,
    t: Lang,
    typed_email: &str,
    submitted: intake::Submitted,
) -> HttpResponse {
    let number = submitted.number;
    let (code, pass, cookie) = if submitted.existing {
        (
            StatusCode::OK,
            address::pass_of(desk, request, &number),
            None,
        )
    } else {
        let pass = crate::customer::address::new_pass(desk, &number);
        let cookie = address::pass_cookie(desk, &number, &pass);
        (StatusCode::CREATED, Some(pass), Some(cookie))
    };
    // A page without the status link must not lead to it through its language switch.
    let back = submitted.status_url.as_deref().unwrap_or("/");
    let page = SubmittedPage {
        t,
        switch: LanguageSwitch::to_page(t, back),
        fix: pass.map(|pass| FixForm::new(&number, &pass, typed_email)),
        number,
        status_url: submitted.status_url,
        existing: submitted.existing,
        superseded: submitted.superseded,
    };
    let mut response = html(code, &page);
    if let Some(cookie) = cookie
        && let Err(error) = response.add_cookie(&cookie)
    {
        tracing::error!(%error, "the address-fix cookie could not be set");
    }
    response
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
        super::customer_message_page(
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
        Err(other) => Err(super::customer_failure_page(reader, &other)),
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
    let token = desk.keys.desk_secret.status_token(number.as_str());
    let photo_url = (ticket.summary.status == TicketStatus::AwaitingPhoto)
        .then(|| format!("/status/{number}/photo?t={token}"));
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
            .map_err(|e| match e {
                IntakeError::Invalid(mut issues) if !issues.is_empty() => ApiError::said(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    issues.swap_remove(0).message,
                ),
                IntakeError::Conflict(_, message) => ApiError::said(StatusCode::CONFLICT, message),
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
            page.error = Some(page.t.message(&error.message));
            super::with_retry_after(html(error.status, &page), error.retry_after)
        }
    }
}
