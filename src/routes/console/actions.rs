//! The decisions and other actions on a ticket's page: each runs one `review` call and
//! sends the browser back to the ticket, which says what was done.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};

use super::guard::ConsoleUser;
use super::ticket::{Outcome, error_page, not_a_ticket, parse_number, ticket_page};
use super::{ActionForm, see_other};
use crate::desk::Desk;
use crate::domain::TicketNumber;
use crate::review::{self, ReviewError};
use crate::routes::ErrorAnswer;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(claim)
        .service(approve)
        .service(reject)
        .service(request_photo)
        .service(retry_mail)
        .service(correct_address);
}

/// Runs one console action after the CSRF check and shows the ticket again.
async fn act<F, Fut>(desk: &Desk, console: &ConsoleUser, raw: &str, action: F) -> HttpResponse
where
    F: FnOnce(TicketNumber) -> Fut,
    Fut: std::future::Future<Output = Result<Done, ReviewError>>,
{
    let Some(number) = parse_number(raw) else {
        return not_a_ticket();
    };
    match action(number.clone()).await {
        Ok(done) => see_other(&format!("/console/tickets/{number}?done={}", done.as_str())),
        Err(ReviewError::Internal(cause)) => error_page(ReviewError::Internal(cause)),
        Err(error) => {
            // A stale page is a conflict with what the ticket holds now; 412 belongs to
            // the API's If-Match.
            let stale = matches!(error, ReviewError::Stale);
            let answer = ErrorAnswer::from(error);
            let outcome = Outcome {
                status: if stale {
                    StatusCode::CONFLICT
                } else {
                    answer.status
                },
                error: Some(answer.message.english()),
                notice: None,
            };
            ticket_page(desk, console, &number, outcome).await
        }
    }
}

/// What a console action did, carried in the redirect so the ticket page can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Done {
    Claimed,
    TakenOver,
    Approved,
    FirstApproval,
    Rejected,
    PhotoRequested,
    MailRetried,
    AddressChanged,
    MailSignedAgain,
}

impl Done {
    pub(super) const ALL: [Done; 9] = [
        Self::Claimed,
        Self::TakenOver,
        Self::Approved,
        Self::FirstApproval,
        Self::Rejected,
        Self::PhotoRequested,
        Self::MailRetried,
        Self::AddressChanged,
        Self::MailSignedAgain,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::TakenOver => "taken-over",
            Self::Approved => "approved",
            Self::FirstApproval => "first-approval",
            Self::Rejected => "rejected",
            Self::PhotoRequested => "photo-requested",
            Self::MailRetried => "mail-retried",
            Self::AddressChanged => "address-changed",
            Self::MailSignedAgain => "mail-signed-again",
        }
    }

    pub(super) fn notice(self) -> &'static str {
        match self {
            Self::Claimed => {
                "You claimed this ticket: other agents see that you are working on it and cannot claim it."
            }
            Self::TakenOver => {
                "You took the claim over: the history and the audit log record from whom."
            }
            Self::Approved => {
                "Approved: the responses are signed and the e-mail to the customer is on its way."
            }
            Self::FirstApproval => {
                "Your approval is recorded. This flagged ticket needs a second approval by another person; at least one of you must be a supervisor. Nothing was signed yet."
            }
            Self::Rejected => "Rejected: the customer is told the reason by e-mail.",
            Self::PhotoRequested => {
                "The customer is asked for a new label photo; the ticket comes back when it arrives."
            }
            Self::MailRetried => "The e-mail is queued again.",
            Self::AddressChanged => {
                "The customer's address is changed: the confirmation went to the new address and the old one was told. Earlier approvals are withdrawn; the ticket now needs two approvals from two people, at least one a supervisor."
            }
            Self::MailSignedAgain => {
                "The responses are signed again and the new e-mail is queued (recorded in the audit log)."
            }
        }
    }
}

#[post("/console/tickets/{ticket}/claim")]
async fn claim(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let take_over = form.take_over.as_deref() == Some("yes");
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::claim(d, u, &n, take_over).await.map(|()| {
            if take_over {
                Done::TakenOver
            } else {
                Done::Claimed
            }
        })
    })
    .await
}

#[post("/console/tickets/{ticket}/approve")]
async fn approve(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let (note, seen) = (form.note.clone().unwrap_or_default(), form.evidence_version);
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        match review::approve(d, u, &n, &note, seen).await? {
            review::Approved::Signed => Ok(Done::Approved),
            review::Approved::AwaitingSecond => Ok(Done::FirstApproval),
        }
    })
    .await
}

#[post("/console/tickets/{ticket}/reject")]
async fn reject(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let typed = form
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let reason = typed
        .or(form
            .canned
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty()))
        .unwrap_or("")
        .to_owned();
    let seen = form.evidence_version;
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::reject(d, u, &n, &reason, seen)
            .await
            .map(|()| Done::Rejected)
    })
    .await
}

#[post("/console/tickets/{ticket}/request-photo")]
async fn request_photo(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let (note, seen) = (form.note.clone().unwrap_or_default(), form.evidence_version);
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::request_photo(d, u, &n, &note, seen)
            .await
            .map(|()| Done::PhotoRequested)
    })
    .await
}

#[post("/console/tickets/{ticket}/mails/{mail}/retry")]
async fn retry_mail(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<(String, i64)>,
) -> HttpResponse {
    let (raw, mail_id) = path.into_inner();
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &raw, |n| async move {
        review::retry_mail(d, u, &n, mail_id)
            .await
            .map(|retried| match retried {
                review::Retried::Queued => Done::MailRetried,
                review::Retried::SignedAgain => Done::MailSignedAgain,
            })
    })
    .await
}

#[post("/console/tickets/{ticket}/email")]
async fn correct_address(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let email = form.email.clone().unwrap_or_default();
    let (d, u) = (desk.get_ref(), &console.user);
    act(d, &console, &path, |n| async move {
        review::correct_address(d, u, &n, &email)
            .await
            .map(|()| Done::AddressChanged)
    })
    .await
}
