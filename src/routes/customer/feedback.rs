//! "It didn't work" on the status page: what the device said, and what the desk makes of
//! it (`customer::feedback`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use askama::Template;
use serde::Deserialize;

use super::status::LinkedTicket;
use crate::customer::{self, DeviceAnswer, SHORTENED_REVIEW_WINDOW_DAYS};
use crate::desk::Desk;
use crate::domain::TicketNumber;
use crate::i18n::Lang;
use crate::routes::{ErrorAnswer, LanguageSwitch, Reader, html, refused};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(report);
}

#[derive(Deserialize)]
struct FeedbackForm {
    answer: Option<String>,
    #[serde(default)]
    note: String,
}

#[derive(Template)]
#[template(path = "pages/feedback.html")]
struct FeedbackPage {
    t: Lang,
    switch: LanguageSwitch,
    number: TicketNumber,
    status_url: String,
    answer: Option<DeviceAnswer>,
    error: Option<String>,
    repeat_days: i64,
}

#[post("/status/{ticket}/feedback")]
async fn report(
    desk: web::Data<Desk>,
    reader: Reader,
    LinkedTicket(ticket): LinkedTicket,
    form: web::Form<FeedbackForm>,
) -> HttpResponse {
    let number = ticket.summary.number.clone();
    let status_url = desk.status_url(&number);
    let reader = reader.back_to(&status_url);
    let mut page = FeedbackPage {
        t: reader.t,
        switch: reader.switch,
        status_url,
        number,
        answer: None,
        error: None,
        repeat_days: SHORTENED_REVIEW_WINDOW_DAYS,
    };
    match customer::report(&desk, &ticket, form.answer.as_deref(), &form.note).await {
        Ok(answer) => {
            page.answer = Some(answer);
            html(StatusCode::OK, &page)
        }
        Err(error) => {
            let answer = ErrorAnswer::from(error);
            page.error = Some(page.t.message(&answer.message));
            refused(&answer, &page)
        }
    }
}
