//! The queue: tickets by status, oldest first, with a search and a page at a time.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

use super::age;
use super::guard::ConsoleUser;
use crate::desk::Desk;
use crate::domain::{TicketNumber, TicketStatus};
use crate::routes::html;
use crate::store::{QueueCursor, QueueFilter};

/// Tickets on one queue page.
const QUEUE_PAGE: i64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(queue);
}

struct QueueRowView {
    number: TicketNumber,
    flags: Vec<String>,
    age: String,
    model: String,
    serial: String,
    devices: i64,
    status: &'static str,
    claimed_by: String,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    next: Option<String>,
    user: String,
    csrf: String,
    status: String,
    q: String,
    statuses: Vec<(&'static str, &'static str)>,
    tickets: Vec<QueueRowView>,
}

#[derive(Deserialize)]
struct QueueQuery {
    status: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

#[get("/console")]
async fn queue(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    query: web::Query<QueueQuery>,
) -> HttpResponse {
    let status = query.status.clone().unwrap_or_else(|| "open".to_owned());
    let filter = QueueFilter {
        status: TicketStatus::parse(&status),
        search: query.q.clone(),
        after: query.after.as_deref().and_then(QueueCursor::parse),
        limit: QUEUE_PAGE,
    };
    let tickets = match desk.store.tickets(&filter).await {
        Ok(tickets) => tickets,
        Err(error) => {
            return crate::routes::failure_page("The queue is unavailable", &error);
        }
    };
    let now = desk.clock.now();
    let mut statuses = vec![("all", "All")];
    statuses.extend(
        TicketStatus::ALL
            .iter()
            .map(|s| (s.as_str(), s.describe_short())),
    );
    let next = (tickets.len() as i64 == QUEUE_PAGE)
        .then(|| tickets.last().map(QueueCursor::after))
        .flatten()
        .and_then(|cursor| {
            let params = [
                ("status", status.as_str()),
                ("q", query.q.as_deref().unwrap_or("")),
                ("after", &cursor.to_param()),
            ];
            serde_urlencoded::to_string(params).ok()
        })
        .map(|params| format!("/console?{params}"));
    let page = QueuePage {
        next,
        user: console.user.email.to_string(),
        csrf: console.csrf,
        status,
        q: query.q.clone().unwrap_or_default(),
        statuses,
        tickets: tickets
            .into_iter()
            .map(|t| QueueRowView {
                age: age(t.created_at, now),
                flags: t.flags,
                number: t.number,
                model: t.first_model,
                serial: t.first_serial,
                devices: t.device_count,
                status: t.status.describe_short(),
                claimed_by: t.claimed_by.unwrap_or_default(),
            })
            .collect(),
    };
    html(StatusCode::OK, &page)
}
