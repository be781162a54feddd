//! The agents' console: sign-in, the queue, the ticket page and its actions, the
//! rejection reasons, API tokens and the admin pages. Every route but the sign-in page
//! needs a session, checked with its CSRF token by one guard in front of them all.

mod admin;
mod guard;
mod signin;
mod ticket;
mod tokens;

use actix_web::web;

pub use guard::console_guard;

pub fn configure(cfg: &mut web::ServiceConfig) {
    signin::configure(cfg);
    ticket::configure(cfg);
    admin::configure(cfg);
    tokens::configure(cfg);
}
