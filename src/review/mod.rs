//! Agents' decisions: claim, approve (sign and mail), reject. Signing happens here,
//! through `protocol::respond`, and the result is stored together with the approval
//! mail and audit entries in one transaction; the store's "only if still open" update
//! makes a second approval, by anyone, a conflict that signs nothing.

pub mod automatic;
pub mod cooldown;
pub mod digest;

/// The queue of open tickets waiting for a second approval, as the console's status
/// menu and the API's `status` name it.
pub const AWAITING_SECOND_APPROVAL: &str = "second_approval";
pub mod queue_counts;
pub mod recounted;

use crate::desk::Desk;
use crate::domain::{
    EmailAddress, Role, TicketNumber, TicketStatus, Timestamp, WrittenText, WrittenTextError,
};
use crate::mail::compose;
use crate::protocol::challenge::{ChallengeError, VerifiedResetRequest};
use crate::protocol::{ResetRequest, response};
use crate::signer::SignerError;
use crate::store::{
    AddressChange, AddressChangeOutcome, AddressChanger, Approval, Conflict, FirstApproval,
    LabelEvidence, MailKind, MailedDecision, MessageAuthor, NewMail, NewTicketMessage,
    ResentApproval, StoreError, StoredExport, StoredResponse, TicketDetail, TicketEventKind, User,
};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("there is no ticket {0}")]
    NotFound(TicketNumber),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The decision was made on evidence (label photo, export) that has changed since:
    /// the API answers 412 Precondition Failed.
    #[error(
        "the ticket changed since you opened it: the customer sent a new label photo. Look at the ticket again before you decide"
    )]
    Stale,
    /// Evidence data retention deleted (issue 23): the API answers 410 Gone.
    #[error("{0}")]
    Gone(String),
    #[error("the desk could not complete the action")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ReviewError {
    /// What the agent reads, in English like the rest of the console and the API; `None`
    /// for a failure on the desk's side.
    pub fn message(&self) -> Option<crate::i18n::Message> {
        match self {
            Self::Internal(_) => None,
            refusal => Some(crate::i18n::Message::untranslated(refusal.to_string())),
        }
    }

    fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    fn from_store(error: StoreError, number: &TicketNumber) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound(number.clone()),
            StoreError::Conflict(conflict) => Self::Conflict(conflict.to_string()),
            StoreError::EvidenceChanged => Self::Stale,
            StoreError::ClaimedBy(holder) => Self::Conflict(format!(
                "the ticket is already claimed by {holder}: they are working on it. Ask them, or a supervisor can take the claim over"
            )),
            other => Self::internal(other),
        }
    }
}

/// A retired key with no successor in this replica's keys directory is the operator's to
/// fix, and the agent is told so; nothing was stored.
fn signer_error(error: SignerError) -> ReviewError {
    match error {
        SignerError::Retired(_) => ReviewError::Conflict(error.to_string()),
        SignerError::Refused(refused) => ReviewError::Invalid(refused.to_string()),
        SignerError::Policy(_) => ReviewError::Conflict(error.to_string()),
        SignerError::Store(_) | SignerError::Unavailable(_) | SignerError::Keys(_) => {
            ReviewError::internal(error)
        }
    }
}

fn may_review(user: &User) -> Result<(), ReviewError> {
    if user.disabled {
        return Err(ReviewError::Forbidden(
            "this account is disabled".to_owned(),
        ));
    }
    if !user.roles.reviews_tickets() {
        return Err(ReviewError::Forbidden(format!(
            "{} ({}) cannot decide tickets: that needs the agent or supervisor role",
            user.email, user.roles
        )));
    }
    Ok(())
}

pub async fn load(desk: &Desk, number: &TicketNumber) -> Result<TicketDetail, ReviewError> {
    desk.store
        .ticket(number)
        .await
        .map_err(|e| ReviewError::from_store(e, number))
}

/// The export as the customer sent it (the XML file, the reset string, or the picture
/// of the QR code), for agents to see beside what the desk made of it.
pub async fn export_as_sent(desk: &Desk, number: &TicketNumber) -> Result<Vec<u8>, ReviewError> {
    match desk.store.ticket_export(number).await {
        Ok(StoredExport::InRow(bytes)) => Ok(bytes),
        Ok(StoredExport::Blob(name)) => desk.blobs.get(&name).await.map_err(ReviewError::internal),
        Ok(StoredExport::Removed(at)) => Err(ReviewError::Gone(format!(
            "the export was deleted at {at}, as data retention keeps a decided ticket's evidence only for a while"
        ))),
        Err(error) => Err(ReviewError::from_store(error, number)),
    }
}

/// What the machine read on the ticket's label photo (`None` before it read any).
pub async fn label_evidence(
    desk: &Desk,
    ticket: &TicketDetail,
) -> Result<Option<LabelEvidence>, ReviewError> {
    desk.store
        .label_evidence(ticket.id)
        .await
        .map_err(|e| ReviewError::from_store(e, &ticket.summary.number))
}

/// The ticket once its label photo is read: an approval is never decided without what
/// the label check finds (another device's label needs four eyes), so a check still
/// pending is run now, or waited for while another worker runs it
/// (`evidence::worker::read_before_deciding`), and the ticket loaded again. The finding
/// may have flagged the ticket and changed its evidence version, which makes a decision
/// made on the page seen before it stale.
async fn with_label_read(desk: &Desk, ticket: TicketDetail) -> Result<TicketDetail, ReviewError> {
    use crate::evidence::worker::{LabelCheckWait, read_before_deciding};
    if ticket.summary.status != TicketStatus::Open {
        // Not approvable whatever the label says: the status check says why.
        return Ok(ticket);
    }
    match read_before_deciding(desk, ticket.id).await {
        Ok(LabelCheckWait::NothingPending) => Ok(ticket),
        Ok(LabelCheckWait::Ended) => load(desk, &ticket.summary.number).await,
        Ok(LabelCheckWait::StillPending) => Err(ReviewError::Conflict(
            "the desk is still reading this ticket's label photo, and what it finds can need a second approver: try again in a minute".to_owned(),
        )),
        Err(error) => Err(ReviewError::internal(error)),
    }
}

/// Refuses a decision made on a version of the evidence other than the ticket's now;
/// `seen` is `None` when the caller named no version (an API call without `If-Match`).
/// The store's update checks the version loaded here again, so nothing can slip in
/// between this check and the write.
fn same_evidence(ticket: &TicketDetail, seen: Option<i64>) -> Result<i64, ReviewError> {
    match seen {
        Some(seen) if seen != ticket.evidence_version => Err(ReviewError::Stale),
        _ => Ok(ticket.evidence_version),
    }
}

/// Claims a pending ticket: a lock that tells the others this agent is working on it.
/// A claim held by someone else is refused; a supervisor may take it over explicitly
/// (`take_over`), which the history and the audit log record with whom it was taken from.
pub async fn claim(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    take_over: bool,
) -> Result<(), ReviewError> {
    may_review(user)?;
    if take_over && !user.roles.contains(Role::Supervisor) {
        return Err(ReviewError::Forbidden(
            "only a supervisor can take over another agent's claim".to_owned(),
        ));
    }
    let ticket = load(desk, number).await?;
    desk.store
        .claim(ticket.id, user.id, take_over, desk.clock.now())
        .await
        .map_err(|e| ReviewError::from_store(e, number))
}

/// Gives the ticket's claim to `assignee`, who must be able to decide tickets. Taking it
/// from a third person who holds it is a supervisor's take-over, as with a claim.
pub async fn assign(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    assignee: &str,
    take_over: bool,
) -> Result<(), ReviewError> {
    may_review(user)?;
    if take_over && !user.roles.contains(Role::Supervisor) {
        return Err(ReviewError::Forbidden(
            "only a supervisor can take over another agent's claim".to_owned(),
        ));
    }
    let email = EmailAddress::parse(assignee.trim()).map_err(|e| {
        ReviewError::Invalid(format!(
            "choose whom to give the ticket to: {:?} is not a console user's address ({e})",
            assignee.trim()
        ))
    })?;
    let to = match desk.store.user_by_email(&email).await {
        Ok(found) => found,
        Err(StoreError::NotFound) => {
            return Err(ReviewError::Invalid(format!(
                "{email} is not a console user: choose someone from the list"
            )));
        }
        Err(other) => return Err(ReviewError::internal(other)),
    };
    may_review(&to).map_err(|_| {
        ReviewError::Invalid(format!(
            "{email} cannot work on tickets (disabled, or without the agent or supervisor role): choose someone else"
        ))
    })?;
    let ticket = load(desk, number).await?;
    desk.store
        .assign(ticket.id, to.id, user.id, take_over, desk.clock.now())
        .await
        .map_err(|e| ReviewError::from_store(e, number))
}

/// The longest internal note, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// Adds an internal note to the ticket: for agents only, in any status, never mailed
/// nor shown to the customer.
pub async fn add_note(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    note: &str,
) -> Result<(), ReviewError> {
    may_review(user)?;
    // Line breaks are kept (a note may list steps).
    let note = written(note, MAX_NOTE_CHARS, "note")?;
    let ticket = load(desk, number).await?;
    desk.store
        .add_note(ticket.id, user.id, note.as_str(), desk.clock.now())
        .await
        .map_err(|e| ReviewError::from_store(e, number))
}

/// An agent's own text (a `what`: note, message), line breaks kept, required and at
/// most `max` characters.
fn written(text: &str, max: usize, what: &str) -> Result<WrittenText, ReviewError> {
    WrittenText::parse(text, max).map_err(|e| match e {
        WrittenTextError::Empty => {
            ReviewError::Invalid(format!("write the {what} first: it is empty"))
        }
        WrittenTextError::TooLong { chars } => ReviewError::Invalid(format!(
            "a {what} is at most {max} characters; this one has {chars}"
        )),
    })
}

/// The longest answer an agent writes to a customer, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// An agent's own words to the customer, in any status: e-mailed through the outbox in
/// the thread of the customer's latest e-mail, and kept in the ticket's conversation
/// (with a history line) in the same transaction as the mail, so neither goes alone.
/// Returns the words as kept (trimmed, control characters left out).
pub async fn message_customer(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    text: &str,
) -> Result<String, ReviewError> {
    may_review(user)?;
    // Line breaks are kept: an answer may list steps.
    let text = written(text, MAX_MESSAGE_CHARS, "message")?;
    let ticket = load(desk, number).await?;
    let mail = compose::agent_message(
        &desk.mail,
        number,
        &desk.status_url(number),
        &ticket.customer,
        text.as_str(),
    )
    .map_err(ReviewError::internal)?;
    let message = NewTicketMessage {
        author: MessageAuthor::Agent,
        sender: user.email.to_string(),
        body: text.as_str().to_owned(),
        message_id: Some(mail.message_id.clone()),
    };
    desk.store
        .record_agent_message(ticket.id, user.id, &message, &mail, desk.clock.now())
        .await
        .map_err(|e| ReviewError::from_store(e, number))?;
    desk.mail_queued.notify_one();
    Ok(message.body)
}

/// What an approval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approved {
    /// The responses were signed and the mail queued.
    Signed,
    /// The first of the two approvals a flagged ticket needs: nothing was signed.
    AwaitingSecond,
}

/// The role a user approves in: supervisor when they hold it.
fn approving_role(user: &User) -> Role {
    if user.roles.contains(Role::Supervisor) {
        Role::Supervisor
    } else {
        Role::Agent
    }
}

/// Approves a ticket. An ordinary ticket is signed at once; a flagged ticket (a risk
/// rule fired at intake, or the customer's address is found at approval to be staff's,
/// `risk::insider`) needs two approvals from two independent people (`cooldown`), at
/// least one a supervisor, and is signed only by the second. Nobody approves a ticket
/// twice, and nobody approves a ticket whose customer e-mail is their own mailbox.
#[tracing::instrument(skip_all, fields(ticket = %number, agent = %user.email), err(level = "info"))]
pub async fn approve(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    note: &str,
    seen: Option<i64>,
) -> Result<Approved, ReviewError> {
    may_review(user)?;
    let note = plain_note(note)?;
    let ticket = with_label_read(desk, load(desk, number).await?).await?;
    let evidence_version = same_evidence(&ticket, seen)?;
    if ticket.summary.status != TicketStatus::Open {
        let by = ticket
            .decided_by
            .as_deref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        return Err(ReviewError::Conflict(format!(
            "the ticket is {}{by}, not open",
            ticket.summary.status.describe_short().to_lowercase()
        )));
    }
    if ticket.customer.email.mailbox() == user.email.mailbox() {
        let reason = format!(
            "you cannot approve a ticket whose customer e-mail is your own: {} is the mailbox of your console address {}; two other people must approve it",
            ticket.customer.email, user.email
        );
        return Err(refuse(desk, &ticket, user, reason, desk.clock.now()).await);
    }
    if ticket
        .events
        .iter()
        .any(|e| e.kind == TicketEventKind::AddressCorrected && e.actor == user.email.as_str())
    {
        // Whoever pointed the response somewhere else is the last person to approve
        // sending it there.
        let reason = format!(
            "you changed this ticket's customer address, so you cannot approve sending its response to it ({}); two other people must approve it",
            ticket.customer.email
        );
        return Err(refuse(desk, &ticket, user, reason, desk.clock.now()).await);
    }
    if ticket.approvals.iter().any(|a| a.by == user.id) {
        return Err(ReviewError::Conflict(Conflict::AlreadyApproved.to_string()));
    }
    let as_role = approving_role(user);
    let now = desk.clock.now();
    // Asked again now: an address can have become a console user's since intake.
    let insider = crate::intake::risk::insider(desk, &ticket.customer.email)
        .await
        .map_err(ReviewError::internal)?;
    let flagged = !ticket.summary.flags.is_empty() || !insider.is_empty();
    if flagged && ticket.approvals.is_empty() {
        desk.store
            .add_first_approval(&FirstApproval {
                ticket_id: ticket.id,
                by: user.id,
                as_role,
                note,
                at: now,
                evidence_version,
            })
            .await
            .map_err(|e| ReviewError::from_store(e, number))?;
        tracing::info!("first of two approvals recorded");
        return Ok(Approved::AwaitingSecond);
    }
    if flagged
        && as_role != Role::Supervisor
        && ticket
            .approvals
            .iter()
            .all(|a| a.as_role != Role::Supervisor)
    {
        return Err(ReviewError::Forbidden(
            "this flagged ticket needs a supervisor's approval: the first approval was an agent's, so a supervisor must give the second".to_owned(),
        ));
    }
    // Read before the approval's transaction, and sound all the same: a grant that can
    // make the two approvers one person (an account, roles or a password the other gave)
    // was made before the approval that used it, so it is already here to be seen.
    if flagged {
        let grants = desk
            .store
            .grants_since(cooldown::window_start(now))
            .await
            .map_err(ReviewError::internal)?;
        for first in &ticket.approvals {
            if let Err(link) = cooldown::check(first.by, user.id, &grants) {
                let reason = link.explain(&first.email);
                return Err(refuse(desk, &ticket, user, reason, now).await);
            }
        }
    }
    // Re-checked at approval: the export may have expired while it waited in the queue.
    let verified = verified_challenges(desk, &ticket, now, |e| {
        ReviewError::Invalid(format!(
            "{e}; reject the ticket or ask the customer for a new export"
        ))
    })
    .await?;
    let (signed, mail, key_id) = sign_and_write(desk, &ticket, &ticket.customer, &verified).await?;
    let devices = signed.len();
    desk.store
        .approve(&Approval {
            ticket_id: ticket.id,
            by: user.id,
            as_role,
            note,
            at: now,
            prior_approvals: ticket.approvals.len(),
            evidence_version,
            responses: signed,
            mail,
        })
        .await
        .map_err(|e| ReviewError::from_store(e, number))?;
    desk.mail_queued.notify_one();
    tracing::info!(devices, %key_id, "ticket approved and signed");
    crate::observability::signatures(key_id.as_str(), devices);
    Ok(Approved::Signed)
}

/// Refuses an approval for a reason the ticket's history and the audit log keep: who
/// tried, and why they may not.
async fn refuse(
    desk: &Desk,
    ticket: &TicketDetail,
    user: &User,
    reason: String,
    now: crate::domain::Timestamp,
) -> ReviewError {
    match desk
        .store
        .record_refused_approval(ticket.id, user.id, &reason, now)
        .await
    {
        Ok(()) => {
            tracing::info!(%reason, "approval refused");
            ReviewError::Forbidden(reason)
        }
        Err(e) => ReviewError::internal(e),
    }
}

/// The ticket's challenges, checked again by the signer at `now`; `refused` words a
/// challenge the desk no longer answers.
async fn verified_challenges(
    desk: &Desk,
    ticket: &TicketDetail,
    now: Timestamp,
    refused: impl FnOnce(ChallengeError) -> ReviewError,
) -> Result<VerifiedResetRequest, ReviewError> {
    let request = ResetRequest::new(ticket.devices.clone()).map_err(ReviewError::internal)?;
    match desk
        .signer
        .check_export(request, now, desk.settings.intake.max_clock_skew_secs)
        .await
    {
        Ok(verified) => Ok(verified),
        Err(SignerError::Refused(e)) => Err(refused(e)),
        Err(other) => Err(signer_error(other)),
    }
}

/// Has the signer answer every device with the current key and writes the response mail
/// to `to` (the ticket's customer, or the device's reserved address on that fast track):
/// the typed keys and the signed file exist only in the mail, never elsewhere in the
/// database; the signatures are stored sealed (`StoredResponse`). Returns the key that
/// signed too.
async fn sign_and_write(
    desk: &Desk,
    ticket: &TicketDetail,
    to: &crate::store::Customer,
    verified: &VerifiedResetRequest,
) -> Result<(Vec<StoredResponse>, NewMail, crate::crypto::KeyId), ReviewError> {
    let number = &ticket.summary.number;
    let answer = desk
        .signer
        .answer(number, verified)
        .await
        .map_err(signer_error)?;
    let (stored, mail) = write_response_mail(desk, ticket, to, &answer.responses)?;
    Ok((stored, mail, answer.key_id))
}

/// The response mail to `to` for `responses`, and the signatures sealed for the
/// database.
fn write_response_mail(
    desk: &Desk,
    ticket: &TicketDetail,
    to: &crate::store::Customer,
    responses: &[crate::protocol::DeviceResponse],
) -> Result<(Vec<StoredResponse>, NewMail), ReviewError> {
    let number = &ticket.summary.number;
    let signed: Vec<_> = responses.iter().map(|r| r.signed.clone()).collect();
    let mail = compose::approved(
        &desk.mail,
        number,
        &desk.status_url(number),
        to,
        responses,
        response::to_xml(&signed),
    )
    .map_err(ReviewError::internal)?;
    let seal = desk.keys.seal_keys();
    let stored = signed
        .iter()
        .map(|response| StoredResponse::sealed(response, &seal))
        .collect();
    Ok((stored, mail))
}

/// An approver's note: plain text, possibly empty.
fn plain_note(note: &str) -> Result<String, ReviewError> {
    let note = note.trim();
    if note.is_empty() {
        return Ok(String::new());
    }
    crate::domain::PlainText::parse(note, MAX_REASON_CHARS)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| ReviewError::Invalid(format!("the note {e}")))
}

/// The longest rejection reason accepted.
pub const MAX_REASON_CHARS: usize = 1000;

/// What an agent tells the customer with a decision: their own words, or a canned text
/// from the list (by id), which the customer reads in their own language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerText<'a> {
    Typed(&'a str),
    Canned(i64),
    /// A canned text named by its English words, as console forms sent it before they
    /// sent ids: read as that text where the list has it, else as typed.
    CannedWords(&'a str),
}

impl<'a> CustomerText<'a> {
    /// From a form or request body: what was typed wins over a canned text picked beside
    /// it; nothing at all is typed text that is empty.
    pub fn typed_or_canned(typed: Option<&'a str>, canned: Option<i64>) -> Self {
        match (typed.map(str::trim).filter(|t| !t.is_empty()), canned) {
            (Some(text), _) => Self::Typed(text),
            (None, Some(id)) => Self::Canned(id),
            (None, None) => Self::Typed(""),
        }
    }
}

/// The words the customer reads: as typed, or the canned text of `kind` in the
/// customer's language.
async fn in_customers_words(
    desk: &Desk,
    ticket: &TicketDetail,
    said: CustomerText<'_>,
    kind: crate::domain::CannedKind,
) -> Result<String, ReviewError> {
    let list = match kind {
        crate::domain::CannedKind::Reject => "rejection reasons",
        crate::domain::CannedKind::Photo => "photo requests",
    };
    let language = ticket.customer.language;
    match said {
        CustomerText::Typed(text) => Ok(text.to_owned()),
        CustomerText::CannedWords(words) => {
            let canned = desk
                .store
                .canned_reasons()
                .await
                .map_err(ReviewError::internal)?;
            Ok(canned
                .iter()
                .find(|text| text.kind == kind && text.text == words.trim())
                .map_or(words, |text| text.in_language(language))
                .to_owned())
        }
        CustomerText::Canned(id) => match desk.store.canned_reason(id).await {
            Ok(text) if text.kind == kind => Ok(text.in_language(language).to_owned()),
            Ok(_) => Err(ReviewError::Invalid(format!(
                "canned text {id} is not one of the {list}: choose one from that list, or type your own"
            ))),
            Err(StoreError::NotFound) => Err(ReviewError::Invalid(format!(
                "canned text {id} is no longer in the list of {list} (someone removed it): choose another, or type your own"
            ))),
            Err(e) => Err(ReviewError::internal(e)),
        },
    }
}

pub async fn reject(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    reason: CustomerText<'_>,
    seen: Option<i64>,
) -> Result<(), ReviewError> {
    may_review(user)?;
    let ticket = load(desk, number).await?;
    let reason =
        in_customers_words(desk, &ticket, reason, crate::domain::CannedKind::Reject).await?;
    let reason = crate::domain::PlainText::parse(&reason, MAX_REASON_CHARS)
        .map_err(|e| ReviewError::Invalid(format!("the reason {e}")))?;
    let evidence_version = same_evidence(&ticket, seen)?;
    let status_url = desk.status_url(number);
    let mail = compose::rejected(
        &desk.mail,
        number,
        &status_url,
        &ticket.customer,
        reason.as_str(),
    )
    .map_err(ReviewError::internal)?;
    desk.store
        .reject(&MailedDecision {
            ticket_id: ticket.id,
            by: user.id,
            text: reason.as_str(),
            mail: &mail,
            evidence_version,
            at: desk.clock.now(),
        })
        .await
        .map_err(|e| ReviewError::from_store(e, number))?;
    desk.mail_queued.notify_one();
    Ok(())
}

/// Sends the ticket back to the customer for a better label photo.
pub async fn request_photo(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    note: CustomerText<'_>,
    seen: Option<i64>,
) -> Result<(), ReviewError> {
    may_review(user)?;
    let ticket = load(desk, number).await?;
    let note = in_customers_words(desk, &ticket, note, crate::domain::CannedKind::Photo).await?;
    // Optional: without one, the customer reads that the label could not be read.
    let note = match crate::domain::WrittenText::parse(&note, MAX_REASON_CHARS) {
        Ok(text) => text.as_str().to_owned(),
        Err(crate::domain::WrittenTextError::Empty) => String::new(),
        Err(crate::domain::WrittenTextError::TooLong { chars }) => {
            return Err(ReviewError::Invalid(format!(
                "the note is {chars} characters long: at most {MAX_REASON_CHARS} fit"
            )));
        }
    };
    let note = note.as_str();
    let evidence_version = same_evidence(&ticket, seen)?;
    let mail = compose::photo_requested(
        &desk.mail,
        number,
        &desk.status_url(number),
        &desk.photo_url(number),
        &ticket.customer,
        note,
    )
    .map_err(ReviewError::internal)?;
    desk.store
        .request_photo(&MailedDecision {
            ticket_id: ticket.id,
            by: user.id,
            text: note,
            mail: &mail,
            evidence_version,
            at: desk.clock.now(),
        })
        .await
        .map_err(|e| ReviewError::from_store(e, number))?;
    desk.mail_queued.notify_one();
    Ok(())
}

/// What a retry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// The mail is queued again as it was.
    Queued,
    /// A response mail: signed again and queued.
    SignedAgain,
}

/// Puts a dead e-mail of the ticket back in the outbox. A dead response mail no longer
/// holds its keys and file (they are emptied when a mail dies), so it is signed again:
/// the same challenges, only while they live, with the current signing key, audited as
/// a signature. A one-time code mail is not sent twice: the customer asks for a new one.
pub async fn retry_mail(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    mail_id: i64,
) -> Result<Retried, ReviewError> {
    may_review(user)?;
    let ticket = load(desk, number).await?;
    let kind = ticket
        .mails
        .iter()
        .find(|m| m.id == mail_id)
        .map(|m| m.kind);
    let retried = match kind {
        Some(MailKind::Approval) => {
            sign_again(desk, user, &ticket, mail_id).await?;
            Retried::SignedAgain
        }
        Some(MailKind::AccessCode) => {
            return Err(ReviewError::Invalid(
                "a one-time code e-mail is not sent twice: its code was removed when the e-mail died. \
                 The customer asks for a new code on the status page."
                    .to_owned(),
            ));
        }
        _ => {
            desk.store
                .retry_mail(ticket.id, mail_id, user.id, desk.clock.now())
                .await
                .map_err(|e| ReviewError::from_store(e, number))?;
            Retried::Queued
        }
    };
    desk.mail_queued.notify_one();
    Ok(retried)
}

/// Signs a ticket's responses again for a dead response mail and queues the new mail.
#[tracing::instrument(skip_all, fields(ticket = %ticket.summary.number, agent = %user.email), err(level = "info"))]
async fn sign_again(
    desk: &Desk,
    user: &User,
    ticket: &TicketDetail,
    mail_id: i64,
) -> Result<(), ReviewError> {
    let number = &ticket.summary.number;
    if ticket.summary.status != TicketStatus::Approved {
        return Err(ReviewError::Conflict(format!(
            "the ticket is {}, not approved: there is no response to send",
            ticket.summary.status.describe_short().to_lowercase()
        )));
    }
    let now = desk.clock.now();
    let verified = verified_challenges(desk, ticket, now, |e| match e {
        ChallengeError::Expired { serial, expired_at } => ReviewError::Invalid(format!(
            "the response cannot be sent again: the challenge of device {serial} expired at \
             {expired_at}, and a device accepts no response to an expired challenge. The customer \
             makes a new export on the device and sends a new request."
        )),
        other => ReviewError::Invalid(format!("the response cannot be signed again: {other}")),
    })
    .await?;
    let to = automatic::response_recipient(desk, ticket)
        .await
        .map_err(ReviewError::internal)?;
    let (signed, mail, key_id) = if desk.signer.answers_each_challenge_once() {
        // A separate signer answers a challenge once; what it answered is recovered
        // from the signatures the database keeps sealed (the same file, the same keys).
        let opened: Vec<_> = ticket
            .responses
            .iter()
            .map(|stored| stored.open(&desk.keys.seal_keys()))
            .collect::<Result<_, _>>()
            .map_err(ReviewError::internal)?;
        let responses = desk
            .signer
            .recover(verified.devices(), &opened)
            .await
            .map_err(signer_error)?;
        let key_id = responses
            .first()
            .map(|r| r.signed.key_id.clone())
            .ok_or_else(|| {
                ReviewError::Conflict("the ticket holds no response to send".to_owned())
            })?;
        let (stored, mail) = write_response_mail(desk, ticket, &to, &responses)?;
        (stored, mail, key_id)
    } else {
        sign_and_write(desk, ticket, &to, &verified).await?
    };
    let devices = signed.len();
    desk.store
        .resend_approval(&ResentApproval {
            ticket_id: ticket.id,
            mail_id,
            by: user.id,
            at: now,
            responses: signed,
            mail,
        })
        .await
        .map_err(|e| ReviewError::from_store(e, number))?;
    tracing::info!(devices, %key_id, "dead response mail signed again and queued");
    crate::observability::signatures(key_id.as_str(), devices);
    Ok(())
}

/// An agent corrects the customer's address (the customer asked support, by phone or
/// from another address). It redirects the response, so it is treated as a risk: earlier
/// approvals are withdrawn and the ticket is flagged, so it is signed only after two
/// approvals from two people, at least one a supervisor. The new address gets the
/// acknowledgment with the status link; the old one is told, so an owner whose ticket
/// someone talked support into redirecting hears of it before anything is signed. The
/// history and the audit log keep both addresses.
#[tracing::instrument(skip_all, fields(ticket = %number, agent = %user.email), err(level = "info"))]
pub async fn correct_address(
    desk: &Desk,
    user: &User,
    number: &TicketNumber,
    typed: &str,
) -> Result<(), ReviewError> {
    may_review(user)?;
    let new = EmailAddress::parse(typed)
        .map_err(|e| ReviewError::Invalid(format!("the new e-mail address {e}")))?;
    let ticket = load(desk, number).await?;
    if !ticket.summary.status.is_pending() {
        return Err(ReviewError::Conflict(format!(
            "the ticket is {}: its address can no longer change",
            ticket.summary.status.describe_short().to_lowercase()
        )));
    }
    let old = ticket.customer.email.clone();
    if new.mailbox() == old.mailbox() {
        return Err(ReviewError::Invalid(format!(
            "{new} is the address the ticket already has"
        )));
    }
    if new.mailbox() == user.email.mailbox() {
        return Err(ReviewError::Forbidden(
            "you cannot send a ticket's response to your own address".to_owned(),
        ));
    }
    let status_url = desk.status_url(number);
    let notice = compose::address_changed(
        &desk.mail,
        number,
        &status_url,
        &ticket.customer,
        &new.masked(),
    )
    .map_err(ReviewError::internal)?;
    let at_new_address = crate::store::Customer {
        email: new.clone(),
        ..ticket.customer.clone()
    };
    let acknowledgment = compose::acknowledgment_again(
        &desk.mail,
        number,
        &status_url,
        &at_new_address,
        &ticket.devices,
        compose::Again::ChangedBySupport,
        desk.answer_secs().await,
    )
    .map_err(ReviewError::internal)?;
    let flag = format!(
        "{} changed the customer's e-mail address from {old} to {new}: the response goes to the new address",
        user.email
    );
    let outcome = desk
        .store
        .change_customer_email(&AddressChange {
            ticket_id: ticket.id,
            by: AddressChanger::Agent {
                by: user.id,
                flag,
                notice: Box::new(notice),
            },
            from: old,
            to: new,
            acknowledgment,
            at: desk.clock.now(),
        })
        .await
        .map_err(|e| ReviewError::from_store(e, number))?;
    match outcome {
        AddressChangeOutcome::Changed {
            approvals_withdrawn,
        } => {
            desk.mail_queued.notify_one();
            tracing::info!(
                approvals_withdrawn,
                "the customer's address was changed by an agent"
            );
            Ok(())
        }
        AddressChangeOutcome::NotPending => Err(ReviewError::Conflict(
            "the ticket was decided meanwhile: its address can no longer change".to_owned(),
        )),
        // Refusals of a customer's correction; an agent's meets them only as a change
        // that crossed another one.
        AddressChangeOutcome::ChangedMeanwhile
        | AddressChangeOutcome::Approved
        | AddressChangeOutcome::TooMany => Err(ReviewError::Conflict(
            "the customer's address changed meanwhile: reload the ticket and try again".to_owned(),
        )),
    }
}
