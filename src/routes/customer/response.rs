//! The response on the status page, for a customer whose e-mail never arrived: ask for
//! a one-time code, type it, see the keys and download the file (`customer` module).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::status::LinkedTicket;
use crate::customer::{self, AccessError};
use crate::desk::{Desk, LinkedPage};
use crate::domain::TicketNumber;
use crate::i18n::Lang;
use crate::routes::{ErrorAnswer, LanguageSwitch, Reader, html, refused};
use crate::store::TicketDetail;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(code_page)
        .service(send_code)
        .service(show_response)
        .service(response_file);
}

#[derive(Template)]
#[template(path = "pages/code.html")]
struct CodePage {
    t: Lang,
    switch: LanguageSwitch,
    number: TicketNumber,
    status_url: String,
    code_url: String,
    response_url: String,
    masked_email: String,
    /// The code e-mail's subject, in the language the e-mails to this ticket use.
    code_subject: String,
    sent: bool,
    error: Option<String>,
    general_error: Option<String>,
}

impl CodePage {
    async fn new(desk: &Desk, reader: Reader, ticket: &TicketDetail) -> Self {
        let number = ticket.summary.number.clone();
        // Where the code goes: where the response went (the device's reserved address
        // when the desk answered alone). Only shown, masked: a failure shows the
        // ticket's own.
        let to = crate::review::automatic::response_recipient(desk, ticket)
            .await
            .map_or_else(|_| ticket.customer.email.clone(), |c| c.email);
        let link = desk.status_link(&number);
        let code_url = link.to(LinkedPage::Code);
        // The page answers forms too; its switch leads to the page as fetched.
        let reader = reader.back_to(&code_url);
        Self {
            t: reader.t,
            switch: reader.switch,
            status_url: desk.status_url(&number),
            code_url,
            response_url: link.to(LinkedPage::Response),
            masked_email: to.masked(),
            code_subject: ticket
                .customer
                .language
                .fill("mail.access_code.subject")
                .with("number", &number)
                .to_string(),
            number,
            sent: false,
            error: None,
            general_error: None,
        }
    }
}

/// Never cached or kept by a browser or proxy: the page or file shows a reset key.
fn private(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// The code page again, with what went wrong next to the code or above the form.
fn refused_page(page: CodePage, error: AccessError) -> HttpResponse {
    let beside_the_code = matches!(
        error,
        AccessError::WrongCode { .. } | AccessError::Malformed
    );
    let answer = ErrorAnswer::from(error);
    let message = Some(page.t.message(&answer.message));
    let (error, general_error) = if beside_the_code {
        (message, None)
    } else {
        (None, message)
    };
    refused(
        &answer,
        &CodePage {
            error,
            general_error,
            ..page
        },
    )
}

#[get("/status/{ticket}/code")]
async fn code_page(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
) -> HttpResponse {
    html(StatusCode::OK, &CodePage::new(&desk, reader, &ticket).await)
}

#[post("/status/{ticket}/code")]
async fn send_code(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
) -> HttpResponse {
    let page = CodePage::new(&desk, reader, &ticket).await;
    match customer::send_access_code(&desk, &ticket).await {
        Ok(()) => html(StatusCode::OK, &CodePage { sent: true, ..page }),
        Err(error) => refused_page(page, error),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

struct ResponseLine {
    model: String,
    serial: String,
    key: String,
}

#[derive(Template)]
#[template(path = "pages/response.html")]
struct ResponsePage {
    t: Lang,
    switch: LanguageSwitch,
    number: TicketNumber,
    status_url: String,
    file_url: String,
    expires_at: String,
    responses: Vec<ResponseLine>,
}

#[post("/status/{ticket}/response")]
async fn show_response(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let shown = match customer::show_response(&desk, &ticket, &form.code).await {
        Ok(shown) => shown,
        Err(error) => {
            return refused_page(CodePage::new(&desk, reader, &ticket).await, error);
        }
    };
    let number = ticket.summary.number.clone();
    // The keys are shown once, after the code: switching language goes to the ticket.
    let reader = reader.back_to(&desk.status_url(&number));
    let expires_at = shown
        .devices
        .iter()
        .map(|d| d.expires_at())
        .min()
        .map(|t| t.shown_utc())
        .unwrap_or_default();
    let page = ResponsePage {
        t: reader.t,
        switch: reader.switch,
        status_url: desk.status_url(&number),
        file_url: desk.status_link(&number).response_file(&shown.file_token),
        expires_at,
        responses: shown
            .devices
            .iter()
            .map(|d| ResponseLine {
                model: d.model.to_string(),
                serial: d.serial.to_string(),
                key: d.key.to_string(),
            })
            .collect(),
        number,
    };
    private(html(StatusCode::OK, &page))
}

/// The file token, beside the status link's own `t`.
#[derive(Deserialize)]
struct FileQuery {
    f: Option<String>,
}

#[get("/status/{ticket}/response.xml")]
async fn response_file(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
    query: web::Query<FileQuery>,
) -> HttpResponse {
    match customer::response_file(&desk, &ticket, query.f.as_deref().unwrap_or_default()) {
        Ok((name, xml)) => private(
            HttpResponse::Ok()
                .content_type("application/xml")
                .insert_header(header::ContentDisposition::attachment(name))
                .body(xml),
        ),
        Err(_) => {
            let reader = reader.back_to(&desk.status_url(&ticket.summary.number));
            crate::routes::customer_message_page(
                StatusCode::FORBIDDEN,
                &reader,
                "response.download_expired_title",
                reader.t.text("response.download_expired_text"),
            )
        }
    }
}
