//! What customers see: the request form, the status page reached through the status
//! link, a new label photo, the response after a one-time code, "it did not work", the
//! address correction and the language switch. Pages in the reader's language, working
//! without JavaScript.

mod address;
mod contact;
mod feedback;
mod form;
mod language;
mod response;
mod status;

use actix_web::web;

pub(super) use address::passes_of;
pub use language::{LANGUAGE_COOKIE, LanguageSwitch, Reader, language_of};

pub fn configure(cfg: &mut web::ServiceConfig) {
    language::configure(cfg);
    form::configure(cfg);
    status::configure(cfg);
    address::configure(cfg);
    response::configure(cfg);
    feedback::configure(cfg);
}
