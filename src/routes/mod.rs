//! HTTP routes, one folder per audience: `api/` for programs, `customer/` for customers'
//! pages, `console/` for agents; what they share (error answers, the upload reader,
//! assets, health) stays here. Handlers stay thin: they extract, call one intake, review
//! or store function, and map the outcome to a response.

mod api;
mod assets;
mod console;
mod customer;
mod error;
mod health;
mod installer_page;
mod render;
mod server_timing;
mod upload;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};

use render::{
    answer_page, customer_failure_page, customer_message_page, failure_page, html, message_page,
    refused, with_retry_after,
};

pub use console::console_guard;
pub use customer::{LANGUAGE_COOKIE, LanguageSwitch, Reader, language_of};
pub use error::{ApiError, ErrorAnswer};
pub use server_timing::server_timing;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    assets::configure(cfg);
    api::configure(cfg);
    customer::configure(cfg);
    console::configure(cfg);
    installer_page::configure(cfg);
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

/// Any address the desk has no route for: JSON under the API, a page elsewhere, in the
/// reader's language (a link mistyped from an e-mail lands here).
pub async fn no_such_page(request: actix_web::HttpRequest) -> HttpResponse {
    if request.path().starts_with("/api/") {
        return ErrorAnswer::new(StatusCode::NOT_FOUND, "no such API route").error_response();
    }
    let reader = Reader::of(&request).back_to("/");
    customer_message_page(
        StatusCode::NOT_FOUND,
        &reader,
        "page.no_page_title",
        reader.t.text("page.no_page_text"),
    )
}
