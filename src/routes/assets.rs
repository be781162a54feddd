//! The few files the pages use besides themselves, compiled into the binary: the icon,
//! and three scripts. Pages work without the scripts (a phone with scripts off still sends
//! a request and reads its status; an agent still decides with the buttons); they add a
//! live countdown, dropping or pasting a file onto the form, and the console's keyboard
//! shortcuts. The Content-Security-Policy allows scripts from here and nowhere else.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(file).service(favicon);
}

/// Browsers ask for `/favicon.ico` on their own (for a photo or a JSON answer opened in
/// a tab, and some on every page, whatever the page's `<link rel=icon>` says): the icon.
#[get("/favicon.ico")]
async fn favicon() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/static/icon.svg"))
        .finish()
}

const JS: &str = "text/javascript; charset=utf-8";

/// Each file by its name under /static/, with its media type.
const FILES: &[(&str, &str, &str)] = &[
    ("status.js", JS, include_str!("../../static/status.js")),
    ("form.js", JS, include_str!("../../static/form.js")),
    ("console.js", JS, include_str!("../../static/console.js")),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../static/icon.svg"),
    ),
];

#[get("/static/{name}")]
async fn file(name: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(known, ..)| *known == name.as_str()) {
        Some((_, media_type, body)) => HttpResponse::Ok()
            .content_type(*media_type)
            // An hour: a release's new script reaches everyone within one.
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*body),
        None => super::message_page(
            actix_web::http::StatusCode::NOT_FOUND,
            "Not found",
            "There is no such file.",
        ),
    }
}
