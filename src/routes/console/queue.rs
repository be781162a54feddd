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
use crate::store::{LabelCheck, LabelFinding, QueueCursor, QueueFilter};

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
    label: LabelColumn,
}

/// A ticket's label check in a word or two, as the queue's column says it; the ticket
/// page says it per device, in full.
struct LabelColumn {
    /// ⚠ (or nothing), hidden from assistive technology: the words say the same.
    mark: &'static str,
    words: &'static str,
    /// The label names another device: the four-eyes risk, in bold.
    warning: bool,
}

impl LabelColumn {
    /// `None`: a ticket whose photo was checked before the evidence worker existed.
    fn of(check: Option<LabelCheck>) -> Self {
        let (mark, words) = match check {
            None => ("", "–"),
            Some(LabelCheck::Pending) => ("", "not read yet"),
            Some(LabelCheck::Failed) => ("", "not read"),
            // A code anyone could print: no tick.
            Some(LabelCheck::Read(LabelFinding::Matches)) => ("", "code reads serial"),
            Some(LabelCheck::Read(LabelFinding::OtherSerial)) => ("⚠", "other device"),
            Some(LabelCheck::Read(LabelFinding::NotOnLabel)) => ("", "serial not on it"),
            Some(LabelCheck::Read(LabelFinding::Unreadable)) => ("", "no code"),
        };
        Self {
            mark,
            words,
            warning: check == Some(LabelCheck::Read(LabelFinding::OtherSerial)),
        }
    }
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
    // One query for the page's label checks, not one per row.
    let ids: Vec<_> = tickets.iter().map(|t| t.id).collect();
    let checks = match desk.store.label_checks(&ids).await {
        Ok(checks) => checks,
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
                label: LabelColumn::of(checks.get(&t.id).copied()),
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
