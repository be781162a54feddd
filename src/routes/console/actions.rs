//! The decisions and other actions on a ticket's page: each runs one `review` call and
//! sends the browser back to the ticket, which says what was done.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, post, web};

use super::guard::ConsoleUser;
use super::ticket::{Outcome, error_page, not_a_ticket, parse_number, ticket_page};
use super::{ActionForm, see_other};
use crate::desk::Desk;
use crate::domain::TicketNumber;
use crate::review::{self, ReviewError};
use crate::routes::ErrorAnswer;
use crate::store::User;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(claim)
        .service(approve)
        .service(reject)
        .service(request_photo)
        .service(retry_mail)
        .service(correct_address)
        .service(assign)
        .service(add_note)
        .service(message_customer)
        .service(mark_suspicious);
}

/// One action on one ticket by the signed-in agent: what every handler here starts from.
/// The CSRF check ran before (the console guard), and the ticket number in the path is
/// parsed when the action runs, so a malformed one gets the console's "not a ticket" page.
pub(super) struct TicketAction {
    desk: web::Data<Desk>,
    console: ConsoleUser,
    raw_number: String,
}

impl FromRequest for TicketAction {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let desk = web::Data::<Desk>::extract(request).into_inner();
        let console = ConsoleUser::from_request(request, payload).into_inner();
        let raw_number = request.match_info().get("ticket").unwrap_or("").to_owned();
        std::future::ready(desk.and_then(|desk| {
            Ok(Self {
                desk,
                console: console?,
                raw_number,
            })
        }))
    }
}

impl TicketAction {
    /// Runs the action and shows the ticket again: with what was done, or with why not.
    async fn run(
        self,
        action: impl AsyncFnOnce(&Desk, &User, &TicketNumber) -> Result<Done, ReviewError>,
    ) -> HttpResponse {
        self.run_then(false, action).await
    }

    /// [`Self::run`] for a decision: with `next`, a done decision opens the next ticket
    /// of the queue, which says what was done to this one.
    async fn run_then(
        self,
        next: bool,
        action: impl AsyncFnOnce(&Desk, &User, &TicketNumber) -> Result<Done, ReviewError>,
    ) -> HttpResponse {
        let (desk, console) = (self.desk.get_ref(), &self.console);
        let Some(number) = parse_number(&self.raw_number) else {
            return not_a_ticket();
        };
        match action(desk, &console.user, &number).await {
            Ok(done) if next => see_other(&after_decision(desk, console, &number, done).await),
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
}

/// Where "… and next" leads once `number` is decided: the next open ticket this agent
/// can decide (`queue::next_open_ticket`), told what was done to `number`; or `number`
/// again, told that none is waiting.
/// The decision is made either way: a failure to find the next ticket only shows the
/// decided one again.
async fn after_decision(
    desk: &Desk,
    console: &ConsoleUser,
    number: &TicketNumber,
    done: Done,
) -> String {
    let decided = format!("/console/tickets/{number}?done={}", done.as_str());
    let next = match review::load(desk, number).await {
        Ok(ticket) => super::queue::next_open_ticket(desk, console, &ticket.summary).await,
        Err(_) => return decided,
    };
    match next {
        Ok(Some(next)) => format!(
            "/console/tickets/{next}?done={}&decided={number}",
            done.as_str()
        ),
        Ok(None) => format!("{decided}&last=yes"),
        Err(_) => decided,
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
    Assigned,
    NoteAdded,
    MarkedSuspicious,
    MessageSent,
}

impl Done {
    pub(super) const ALL: [Done; 13] = [
        Self::Claimed,
        Self::TakenOver,
        Self::Approved,
        Self::FirstApproval,
        Self::Rejected,
        Self::PhotoRequested,
        Self::MailRetried,
        Self::AddressChanged,
        Self::MailSignedAgain,
        Self::Assigned,
        Self::NoteAdded,
        Self::MarkedSuspicious,
        Self::MessageSent,
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
            Self::Assigned => "assigned",
            Self::NoteAdded => "note-added",
            Self::MarkedSuspicious => "marked-suspicious",
            Self::MessageSent => "message-sent",
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
            Self::Assigned => {
                "The ticket is given to the person named under Claimed by: the history records who gave it."
            }
            Self::NoteAdded => "Your note is added. Only agents see it; the customer never does.",
            Self::MessageSent => {
                "Your message is on its way to the customer by e-mail, in the thread of their last one; it is in the conversation below."
            }
            Self::MarkedSuspicious => {
                "The automatic decision is marked suspicious: the supervisors are told by e-mail, and for an installer's request that installer's fast track is suspended."
            }
        }
    }
}

#[post("/console/tickets/{ticket}/claim")]
async fn claim(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let take_over = form.take_over.as_deref() == Some("yes");
    action
        .run(async |desk, user, number| {
            review::claim(desk, user, number, take_over).await?;
            Ok(if take_over {
                Done::TakenOver
            } else {
                Done::Claimed
            })
        })
        .await
}

#[post("/console/tickets/{ticket}/approve")]
async fn approve(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let note = form.note.clone().unwrap_or_default();
    action
        .run_then(
            form.then_next(),
            async |desk, user, number| match review::approve(
                desk,
                user,
                number,
                &note,
                form.evidence_version,
            )
            .await?
            {
                review::Approved::Signed => Ok(Done::Approved),
                review::Approved::AwaitingSecond => Ok(Done::FirstApproval),
            },
        )
        .await
}

#[post("/console/tickets/{ticket}/reject")]
async fn reject(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let reason = form.customer_text(form.reason.as_deref());
    action
        .run_then(form.then_next(), async |desk, user, number| {
            review::reject(desk, user, number, reason, form.evidence_version).await?;
            Ok(Done::Rejected)
        })
        .await
}

#[post("/console/tickets/{ticket}/request-photo")]
async fn request_photo(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let note = form.customer_text(form.note.as_deref());
    action
        .run_then(form.then_next(), async |desk, user, number| {
            review::request_photo(desk, user, number, note, form.evidence_version).await?;
            Ok(Done::PhotoRequested)
        })
        .await
}

#[post("/console/tickets/{ticket}/mails/{mail}/retry")]
async fn retry_mail(action: TicketAction, mail: web::Path<(String, i64)>) -> HttpResponse {
    let mail_id = mail.1;
    action
        .run(async |desk, user, number| {
            match review::retry_mail(desk, user, number, mail_id).await? {
                review::Retried::Queued => Ok(Done::MailRetried),
                review::Retried::SignedAgain => Ok(Done::MailSignedAgain),
            }
        })
        .await
}

#[post("/console/tickets/{ticket}/email")]
async fn correct_address(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let email = form.email.clone().unwrap_or_default();
    action
        .run(async |desk, user, number| {
            review::correct_address(desk, user, number, &email).await?;
            Ok(Done::AddressChanged)
        })
        .await
}

#[post("/console/tickets/{ticket}/assign")]
async fn assign(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let assignee = form.assignee.clone().unwrap_or_default();
    let take_over = form.take_over.as_deref() == Some("yes");
    action
        .run(async |desk, user, number| {
            review::assign(desk, user, number, &assignee, take_over).await?;
            Ok(Done::Assigned)
        })
        .await
}

#[post("/console/tickets/{ticket}/notes")]
async fn add_note(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let note = form.note.clone().unwrap_or_default();
    action
        .run(async |desk, user, number| {
            review::add_note(desk, user, number, &note).await?;
            Ok(Done::NoteAdded)
        })
        .await
}

/// Answers the customer by e-mail in the agent's words (`message`).
#[post("/console/tickets/{ticket}/messages")]
async fn message_customer(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let message = form.message.clone().unwrap_or_default();
    action
        .run(async |desk, user, number| {
            review::message_customer(desk, user, number, &message).await?;
            Ok(Done::MessageSent)
        })
        .await
}

/// Marks the desk's automatic decision on the ticket suspicious, with why (`note`).
#[post("/console/tickets/{ticket}/suspicious")]
async fn mark_suspicious(action: TicketAction, form: web::Form<ActionForm>) -> HttpResponse {
    let note = form.note.clone().unwrap_or_default();
    action
        .run(async |desk, user, number| {
            review::automatic::mark_suspicious(desk, user, number, &note).await?;
            Ok(Done::MarkedSuspicious)
        })
        .await
}
