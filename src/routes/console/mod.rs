//! The agents' console: sign-in, the queue, the ticket page and its actions, the
//! rejection reasons, API tokens and the admin pages. Every route but the sign-in page
//! needs a session, checked with its CSRF token by one guard in front of them all.

mod actions;
mod admin;
mod automatic;
mod guard;
mod installers;
mod queue;
mod reasons;
mod signin;
mod ticket;
mod tokens;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::domain::Timestamp;
use crate::review;

pub use guard::console_guard;

pub fn configure(cfg: &mut web::ServiceConfig) {
    signin::configure(cfg);
    queue::configure(cfg);
    ticket::configure(cfg);
    actions::configure(cfg);
    reasons::configure(cfg);
    admin::configure(cfg);
    automatic::configure(cfg);
    installers::configure(cfg);
    tokens::configure(cfg);
}

/// What the console's menu shows its viewer: only the pages their roles open, so no
/// link leads an agent to a refusal.
struct Nav {
    user: String,
    /// Keeps the rejection reasons.
    supervisor: bool,
    /// Sees the users and the audit log.
    admin: bool,
}

impl Nav {
    fn of(console: &guard::ConsoleUser) -> Self {
        let roles = &console.user.roles;
        Self {
            user: console.user.email.to_string(),
            supervisor: roles.contains(crate::domain::Role::Supervisor),
            admin: roles.contains(crate::domain::Role::Admin),
        }
    }
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location.to_owned()))
        .finish()
}

/// The fields of the console's action forms. Their `csrf` field was already checked by
/// the console guard before any handler runs.
#[derive(Deserialize)]
struct ActionForm {
    reason: Option<String>,
    /// A canned text picked from the list, by id (a reason or a photo request).
    canned: Option<String>,
    note: Option<String>,
    /// An agent's answer to the customer, e-mailed as written.
    message: Option<String>,
    email: Option<String>,
    /// The version of the evidence the page showed (a hidden field of the decision
    /// forms): a decision on an older one is refused.
    evidence_version: Option<i64>,
    /// A supervisor's explicit take-over of another agent's claim.
    take_over: Option<String>,
    /// Whom to give the ticket to: a console user's address.
    assignee: Option<String>,
    /// `next`: after the decision, open the next ticket of the queue rather than this
    /// one again (the "… and next" buttons).
    then: Option<String>,
}

impl ActionForm {
    /// What the customer is told: `typed` (the reason or note box) wins over the canned
    /// text picked beside it. A `canned` that is not an id holds a canned text's English
    /// words, as forms sent it before they sent ids.
    fn customer_text<'a>(&'a self, typed: Option<&'a str>) -> review::CustomerText<'a> {
        let canned = self.canned.as_deref().map(str::trim).unwrap_or("");
        match canned.parse::<i64>() {
            Ok(id) => review::CustomerText::typed_or_canned(typed, Some(id)),
            Err(_) => match review::CustomerText::typed_or_canned(typed, None) {
                review::CustomerText::Typed("") if !canned.is_empty() => {
                    review::CustomerText::CannedWords(canned)
                }
                said => said,
            },
        }
    }

    fn then_next(&self) -> bool {
        self.then.as_deref() == Some("next")
    }
}

/// How long ago `since` was, as the queue and the ticket page show it.
fn age(since: Timestamp, now: Timestamp) -> String {
    let minutes = now.seconds_since(since).max(0) / 60;
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days", m / (24 * 60)),
    }
}
