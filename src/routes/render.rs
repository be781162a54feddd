//! The one place pages are rendered, and with them the HTML answers to errors: a page
//! answering a request that did not go through takes the [`ErrorAnswer`]'s status and
//! `Retry-After`, and its failure goes to the log here, not where the error was made.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use super::customer::{LanguageSwitch, Reader};
use super::error::ErrorAnswer;

/// Renders a page with a status; a template that fails to render is a bug, logged and
/// shown as a plain 500.
pub fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(error) => {
            tracing::error!(%error, "a page template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("something went wrong on our side; please try again in a few minutes")
        }
    }
}

/// A page that says why a request did not go through, in the answer's words the page
/// chose to show.
pub fn refused(answer: &ErrorAnswer, page: &impl Template) -> HttpResponse {
    answer.log_failure();
    with_retry_after(html(answer.status, page), answer.retry_after)
}

/// Adds `Retry-After` to a 429 or 503 page.
pub fn with_retry_after(mut response: HttpResponse, seconds: Option<i64>) -> HttpResponse {
    if let Some(value) = seconds.and_then(|s| s.to_string().parse().ok()) {
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, value);
    }
    response
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct CustomerMessagePage<'a> {
    t: crate::i18n::Lang,
    switch: &'a LanguageSwitch,
    title: String,
    text: &'a str,
}

/// A console page that only says something: not found, expired form, an error.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    html(status, &MessagePage { title, text })
}

/// A console page that says why an action did not go through, in English.
pub fn answer_page(title: &str, answer: &ErrorAnswer) -> HttpResponse {
    refused(
        answer,
        &MessagePage {
            title,
            text: &answer.message.english(),
        },
    )
}

/// A page for a failure on our side: 503 and Retry-After while the database is
/// unreachable, 500 otherwise (see [`ErrorAnswer::internal`]).
pub fn failure_page(title: &str, error: &(dyn std::error::Error + 'static)) -> HttpResponse {
    answer_page(title, &ErrorAnswer::internal(error))
}

/// A page that only tells a customer something, in their language.
pub fn customer_message_page(
    status: StatusCode,
    reader: &Reader,
    title_key: &'static str,
    text: String,
) -> HttpResponse {
    html(
        status,
        &CustomerMessagePage {
            t: reader.t,
            switch: &reader.switch,
            title: reader.t.text(title_key),
            text: &text,
        },
    )
}

/// A failure on our side, told to a customer: 503 and Retry-After while the database
/// is unreachable, 500 otherwise.
pub fn customer_failure_page(
    reader: &Reader,
    error: &(dyn std::error::Error + 'static),
) -> HttpResponse {
    let failure = ErrorAnswer::internal(error);
    refused(
        &failure,
        &CustomerMessagePage {
            t: reader.t,
            switch: &reader.switch,
            title: reader.t.text("page.failure_title"),
            text: &reader.t.message(&failure.message),
        },
    )
}
