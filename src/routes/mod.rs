//! HTTP routes, one module per audience. Handlers stay thin: they extract, call one
//! intake, review or store function, and map the outcome to a response.

mod address;
mod admin;
mod agent_api;
mod assets;
mod console;
mod error;
mod feedback;
mod health;
mod intake_api;
mod language;
mod pages;
mod response_page;
mod server_timing;
mod signin;
mod tokens;
mod upload;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;

pub use error::ApiError;
pub use language::{LANGUAGE_COOKIE, LanguageSwitch, Reader, language_of};
pub use server_timing::server_timing;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    assets::configure(cfg);
    intake_api::configure(cfg);
    agent_api::configure(cfg);
    language::configure(cfg);
    pages::configure(cfg);
    address::configure(cfg);
    response_page::configure(cfg);
    feedback::configure(cfg);
    signin::configure(cfg);
    console::configure(cfg);
    admin::configure(cfg);
    tokens::configure(cfg);
}

/// Renders a page with a status; a template that fails to render is a bug, logged and
/// shown as a plain 500.
fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
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

/// The client's address for rate limits and throttling. The peer address, unless the
/// peer is one of the configured `trusted_proxies` (a load balancer): then the last
/// address in its `X-Forwarded-For`, which that proxy appended. A client cannot choose
/// its own address by sending the header itself. An IPv6 client counts by its /64: one
/// machine holds a whole /64 and can rotate through it (`auth::throttle::network_key`).
pub fn client_address(desk: &crate::desk::Desk, request: &actix_web::HttpRequest) -> String {
    crate::auth::throttle::network_key(client_ip(desk, request))
}

/// The client's address as [`client_address`] finds it, as an address.
pub fn client_ip(
    desk: &crate::desk::Desk,
    request: &actix_web::HttpRequest,
) -> Option<std::net::IpAddr> {
    let peer = request.peer_addr()?.ip();
    if desk.settings.http.trusted_proxies.contains(&peer)
        && let Some(forwarded) = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|last| last.trim().parse::<std::net::IpAddr>().ok())
    {
        return Some(forwarded);
    }
    Some(peer)
}

/// Whether the desk's cookies carry `Secure`: when it is served over HTTPS.
fn secure_cookies(desk: &crate::desk::Desk) -> bool {
    desk.settings.http.public_url.starts_with("https://")
}

/// Adds `Retry-After` to a 429 page.
fn with_retry_after(mut response: HttpResponse, seconds: Option<i64>) -> HttpResponse {
    if let Some(value) = seconds.and_then(|s| s.to_string().parse().ok()) {
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, value);
    }
    response
}

/// Answers a form body that cannot be read (wrong type, missing field) with a page,
/// not actix's plain-text default.
pub fn form_error(
    error: actix_web::error::UrlencodedError,
    request: &actix_web::HttpRequest,
) -> actix_web::Error {
    tracing::info!(%error, path = request.path(), "a form body could not be read");
    let response = if request.path().starts_with("/console") {
        message_page(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            &format!("Go back, reload the page and try again ({error})."),
        )
    } else {
        let reader = Reader::of(request);
        customer_message_page(
            StatusCode::BAD_REQUEST,
            &reader,
            "page.form_unreadable_title",
            reader.t.text("page.form_unreadable_text"),
        )
    };
    actix_web::error::InternalError::from_response(error, response).into()
}

/// A page that only says something: not found, expired form, an error.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    html(status, &MessagePage { title, text })
}

/// Any address the desk has no route for: JSON under the API, a page elsewhere, in the
/// reader's language (a link mistyped from an e-mail lands here).
pub async fn no_such_page(request: actix_web::HttpRequest) -> HttpResponse {
    if request.path().starts_with("/api/") {
        return ApiError::new(StatusCode::NOT_FOUND, "no such API route").error_response();
    }
    let reader = Reader::of(&request).back_to("/");
    customer_message_page(
        StatusCode::NOT_FOUND,
        &reader,
        "page.no_page_title",
        reader.t.text("page.no_page_text"),
    )
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
    let failure = ApiError::internal(error);
    with_retry_after(
        customer_message_page(
            failure.status,
            reader,
            "page.failure_title",
            reader.t.message(&failure.message),
        ),
        failure.retry_after,
    )
}

/// A page for a failure on our side: 503 and Retry-After while the database is
/// unreachable, 500 otherwise (see [`ApiError::internal`]).
pub fn failure_page(title: &str, error: &(dyn std::error::Error + 'static)) -> HttpResponse {
    let failure = ApiError::internal(error);
    with_retry_after(
        message_page(failure.status, title, &failure.message.english()),
        failure.retry_after,
    )
}
