//! The queue: tickets by status (pending ones in the order their exports die, the others
//! oldest first), with a search and a page at a time, each row with what an agent sorts
//! by (customer, the export's deadline, state, risk, label); and "next ticket".

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

use super::age;
use super::guard::ConsoleUser;
use crate::desk::Desk;
use crate::domain::{EmailAddress, Role, SearchText, TicketNumber, TicketStatus, Timestamp};
use crate::review::{self, AWAITING_SECOND_APPROVAL};
use crate::routes::html;
use crate::store::{LabelCheck, LabelFinding, QueueCursor, QueueFilter, QueueOrder, TicketSummary};

/// Tickets on one queue page.
const QUEUE_PAGE: i64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(queue).service(next_ticket);
}

/// "Next ticket" (and `j`) on a ticket page: the next open ticket this agent may work on
/// after that one (see [`next_open_ticket`]), found when asked rather than on every
/// view of a ticket; the queue when none waits.
#[get("/console/tickets/{ticket}/next")]
async fn next_ticket(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
) -> HttpResponse {
    let current = match super::ticket::ticket_at(&desk, &path).await {
        Ok(ticket) => ticket.summary,
        Err(refusal) => return refusal,
    };
    match next_open_ticket(&desk, &console, &current).await {
        Ok(Some(next)) => super::see_other(&format!("/console/tickets/{next}")),
        Ok(None) => super::see_other("/console?done=none-left"),
        Err(error) => {
            tracing::warn!(error = %error, "no next ticket could be found");
            super::see_other(&format!("/console/tickets/{}", current.number))
        }
    }
}

struct QueueRowView {
    number: TicketNumber,
    /// Whether the ticket needs four eyes.
    flagged: bool,
    /// The flags, one line per kind.
    flags: Vec<String>,
    age: String,
    customer_name: String,
    customer_email: String,
    model: String,
    serial: String,
    /// Devices in the export besides the exporting one.
    more_devices: i64,
    deadline: Deadline,
    status: &'static str,
    /// "1 of 2 approvals", "customer says it failed", "customer replied": what the status
    /// alone hides.
    badges: Vec<&'static str>,
    claimed_by: String,
    label: LabelColumn,
}

/// How long the export of a pending ticket lives on: its challenges die
/// `CHALLENGE_LIFETIME_SECS` after the device made them, and the customer must export
/// again after that.
struct Deadline {
    words: String,
    /// Under [`DEADLINE_WARNING_SECS`] left, or gone: shown in bold.
    soon: bool,
}

/// Under this much time left, the queue marks a ticket's deadline.
const DEADLINE_WARNING_SECS: i64 = 6 * 3600;

impl Deadline {
    fn of(ticket: &TicketSummary, now: Timestamp) -> Self {
        if !ticket.status.is_pending() {
            return Self {
                words: "–".to_owned(),
                soon: false,
            };
        }
        let left = ticket.export_expires_at.seconds_since(now);
        // Close to the end every minute counts; further off, the nearest hour says it.
        let words = match left / 60 {
            _ if left <= 0 => "expired".to_owned(),
            0 => "in under a minute".to_owned(),
            m if m < 60 => format!("in {m} min"),
            m if m * 60 < DEADLINE_WARNING_SECS => format!("in {} h {} min", m / 60, m % 60),
            m => format!("in {} h", (m + 30) / 60),
        };
        Self {
            words,
            soon: left < DEADLINE_WARNING_SECS,
        }
    }
}

/// A ticket's flags as the queue lists them: one line per kind of flag, not one per
/// device. Flags of one kind differ only in the serials they name, so a flag is keyed by
/// its words with every serial-like word (letters and digits, six or more characters)
/// left out; the first of each kind stands for the rest.
fn flags_by_kind(flags: &[String]) -> Vec<String> {
    let kind = |flag: &str| -> String {
        flag.split_whitespace()
            .map(|word| {
                // An address (a console user's, a watched domain) is what the flag is about.
                let serial_like = word.len() >= 6
                    && !word.contains('@')
                    && word.chars().any(|c| c.is_ascii_digit())
                    && word.chars().any(|c| c.is_ascii_alphabetic());
                if serial_like { "#" } else { word }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut kinds: Vec<(String, &str, usize)> = Vec::new();
    for flag in flags {
        let key = kind(flag);
        match kinds.iter_mut().find(|(k, ..)| *k == key) {
            Some((_, _, count)) => *count += 1,
            None => kinds.push((key, flag, 1)),
        }
    }
    kinds
        .into_iter()
        .map(|(_, first, count)| match count {
            1 => first.to_owned(),
            n => format!("{first} (and {} more like it)", n - 1),
        })
        .collect()
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

/// The ticket an agent works on after `current`: the next open ticket in the queue's
/// order (the export that dies first) that nobody else has claimed and that this agent
/// can decide, starting again from the top when `current` was the last; `None` when no
/// other such ticket waits. Passed over: tickets the agent approved already, a flagged
/// ticket's second approval when neither the first approver nor the agent is a
/// supervisor, and a request from the agent's own address.
pub(super) async fn next_open_ticket(
    desk: &Desk,
    viewer: &ConsoleUser,
    current: &TicketSummary,
) -> Result<Option<TicketNumber>, NextError> {
    let order = QueueOrder::Deadline;
    for after in [Some(QueueCursor::after(current, order)), None] {
        let filter = QueueFilter {
            status: Some(TicketStatus::Open),
            search: None,
            after,
            limit: NEXT_LOOKAHEAD,
            order,
            awaiting_second_approval: false,
        };
        let page = desk.store.tickets(&filter).await?;
        let ids: Vec<_> = page.iter().map(|t| t.id).collect();
        let marks = desk.store.queue_marks(&ids).await?;
        for candidate in page {
            let approvals = marks.get(&candidate.id).map_or(0, |m| m.approvals);
            if candidate.number != current.number
                && may_work_on(desk, viewer, &candidate, approvals).await?
            {
                return Ok(Some(candidate.number));
            }
        }
    }
    Ok(None)
}

/// Whether "next" may lead `viewer` to `ticket` (see [`next_open_ticket`]). The review
/// rules still decide at the decision; this only keeps "next" from leading to a refusal.
async fn may_work_on(
    desk: &Desk,
    viewer: &ConsoleUser,
    ticket: &TicketSummary,
    approvals: i64,
) -> Result<bool, NextError> {
    let me = &viewer.user.email;
    if ticket
        .claimed_by
        .as_deref()
        .is_some_and(|holder| holder != me.as_str())
    {
        return Ok(false);
    }
    if EmailAddress::parse(&ticket.customer_email).is_ok_and(|c| c.mailbox() == me.mailbox()) {
        return Ok(false);
    }
    if approvals == 0 {
        return Ok(true);
    }
    let detail = review::load(desk, &ticket.number).await?;
    let supervisor = |role: Role| role == Role::Supervisor;
    let mine = detail.approvals.iter().any(|a| a.by == viewer.user.id);
    let a_supervisor_among = viewer.user.roles.contains(Role::Supervisor)
        || detail.approvals.iter().any(|a| supervisor(a.as_role));
    Ok(!mine && a_supervisor_among)
}

/// Why no next ticket was found: the store or the review rules failed. Callers show the
/// ticket at hand instead; the decision, if any, is made either way.
pub(super) type NextError = Box<dyn std::error::Error + Send + Sync>;

/// How many open tickets "next" looks through for one this agent may work on, after the
/// current one and then from the top: a queue claimed further than this says "no other
/// ticket" rather than walking it all.
const NEXT_LOOKAHEAD: i64 = 20;

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    next: Option<String>,
    nav: super::Nav,
    csrf: String,
    status: String,
    q: String,
    statuses: Vec<StatusChoice>,
    /// How long ago the counts were counted, in words; empty without counts.
    counted: String,
    /// How often the page refreshes its list and counts (`queue_refresh_secs`).
    refresh_secs: u64,
    tickets: Vec<QueueRowView>,
    /// What "Next ticket" found: nothing this agent may work on.
    notice: Option<&'static str>,
    /// Why the search typed finds nothing (too short, too long).
    search_error: Option<String>,
}

/// A status to show, with how many tickets hold it (when counted).
struct StatusChoice {
    value: &'static str,
    name: &'static str,
    count: Option<i64>,
}

impl StatusChoice {
    /// The link that shows this status.
    fn href(&self) -> String {
        format!("/console?status={}", self.value)
    }
}

#[derive(Deserialize)]
struct QueueQuery {
    status: Option<String>,
    q: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

#[get("/console")]
async fn queue(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    query: web::Query<QueueQuery>,
) -> HttpResponse {
    let status = query.status.clone().unwrap_or_else(|| "open".to_owned());
    // A search too short for the index finds nothing, and the page says why.
    let (search, search_error) = match SearchText::parse_optional(query.q.as_deref()) {
        Ok(search) => (search, None),
        Err(error) => (None, Some(error)),
    };
    let filter = QueueFilter {
        status: TicketStatus::parse(&status),
        search,
        after: query.after.as_deref().and_then(QueueCursor::parse),
        limit: QUEUE_PAGE,
        // Pending tickets in the order their exports die; decided ones oldest first.
        order: if TicketStatus::parse(&status).is_some_and(TicketStatus::is_pending) {
            QueueOrder::Deadline
        } else {
            QueueOrder::Age
        },
        awaiting_second_approval: status == AWAITING_SECOND_APPROVAL,
    };
    let found = match search_error {
        Some(_) => Ok(Vec::new()),
        None => desk.store.tickets(&filter).await,
    };
    let tickets = match found {
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
    let marks = match desk.store.queue_marks(&ids).await {
        Ok(marks) => marks,
        Err(error) => {
            return crate::routes::failure_page("The queue is unavailable", &error);
        }
    };
    let now = desk.clock.now();
    // A little stale (see review::queue_counts); the page is shown without them when
    // they cannot be counted.
    let counts = desk.queue_counts.get(&desk.store).await;
    let count_of = |status: Option<TicketStatus>| {
        counts.as_ref().map(|c| match status {
            Some(status) => c.of(status),
            None => c.total(),
        })
    };
    let mut statuses = vec![StatusChoice {
        value: "all",
        name: "All",
        count: count_of(None),
    }];
    statuses.extend(TicketStatus::ALL.iter().map(|s| StatusChoice {
        value: s.as_str(),
        name: s.describe_short(),
        count: count_of(Some(*s)),
    }));
    // The supervisors' own queue, after the open one it is part of.
    if console.user.roles.contains(Role::Supervisor) {
        statuses.insert(
            2,
            StatusChoice {
                value: AWAITING_SECOND_APPROVAL,
                name: "Waiting for a 2nd approval",
                count: counts.as_ref().map(|c| c.awaiting_second_approval),
            },
        );
    }
    let next = (tickets.len() as i64 == QUEUE_PAGE)
        .then(|| {
            tickets
                .last()
                .map(|t| QueueCursor::after(t, filter.order_applied()))
        })
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
        nav: super::Nav::of(&console),
        csrf: console.csrf,
        status,
        q: query.q.clone().unwrap_or_default(),
        statuses,
        refresh_secs: desk.settings.console.queue_refresh_secs,
        counted: counts
            .as_ref()
            .map_or_else(String::new, |c| match c.age_secs {
                0 => "counted just now".to_owned(),
                1 => "counted a second ago".to_owned(),
                secs => format!("counted {secs} seconds ago"),
            }),
        notice: (query.done.as_deref() == Some("none-left"))
            .then_some("No other open ticket that you can decide is waiting."),
        search_error: search_error.map(|e| {
            let mut message = e.to_string();
            if let Some(first) = message.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{message}.")
        }),
        tickets: tickets
            .into_iter()
            .map(|t| {
                let mark = marks.get(&t.id).copied().unwrap_or_default();
                let mut badges = Vec::new();
                if t.status.is_pending() && !t.flags.is_empty() && mark.approvals == 1 {
                    badges.push("1 of 2 approvals");
                }
                if mark.customer_reported_failure {
                    badges.push("customer says it failed");
                }
                if mark.customer_wrote {
                    badges.push("customer replied");
                }
                QueueRowView {
                    label: LabelColumn::of(checks.get(&t.id).copied()),
                    age: age(t.created_at, now),
                    deadline: Deadline::of(&t, now),
                    flagged: !t.flags.is_empty(),
                    flags: flags_by_kind(&t.flags),
                    badges,
                    number: t.number,
                    customer_name: t.customer_name,
                    customer_email: t.customer_email,
                    model: t.first_model,
                    serial: t.first_serial,
                    more_devices: t.device_count - 1,
                    status: t.status.describe_short(),
                    claimed_by: t.claimed_by.unwrap_or_default(),
                }
            })
            .collect(),
    };
    let status = if page.search_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(status, &page)
}

#[cfg(test)]
mod tests {
    use super::flags_by_kind;

    #[test]
    fn flags_of_one_kind_make_one_line() {
        let flags: Vec<String> = [
            "another request for DS-7608NI-K2/8P0820231115CCRRJ11110001 in the last 30 days",
            "another request for DS-2CD2143G2-I/BA1234567 in the last 30 days",
            "the export of DS-2CD2143G2-I/BA1234567 was made 30 hours before it was submitted (more than 24)",
            "another request for DS-2CD2143G2-I/BA7654321 in the last 30 days",
            "6 devices in one export (more than 4)",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(
            flags_by_kind(&flags),
            [
                "another request for DS-7608NI-K2/8P0820231115CCRRJ11110001 in the last 30 days (and 2 more like it)",
                "the export of DS-2CD2143G2-I/BA1234567 was made 30 hours before it was submitted (more than 24)",
                "6 devices in one export (more than 4)",
            ]
        );
        assert!(flags_by_kind(&[]).is_empty());
    }
}
