//! "Wrong address? Correct it": the customer who mistyped their e-mail address finds out
//! when the acknowledgment never comes, or when they send the same export again with the
//! right address and hear that the desk already has it (its status link went to the
//! address given first, never to whoever sends the export again). The browser that sent
//! the request can correct the address for a while: the success page sets a cookie for
//! it, signed with the desk secret and bound to the ticket, and shows a small form.
//!
//! The cookie is the proof, not the address: somebody who holds the export and knows
//! the ticket number still cannot move the ticket to their own address. Once anyone has
//! approved the ticket the customer can no longer change it; an agent can (the console,
//! `review::correct_address`), which withdraws approvals and takes four eyes.

use crate::desk::Desk;
use crate::domain::{EmailAddress, TicketNumber};
use crate::i18n::Message;
use crate::intake::problems;
use crate::mail::compose::{self, Again};
use crate::store::{AddressChange, AddressChangeOutcome, AddressChanger, StoreError};

/// How long after sending a request its browser may correct the address.
pub const CORRECTION_WINDOW_SECS: i64 = 30 * 60;
/// Corrections a customer may make to one ticket: a typo, and a typo in the correction.
/// Each sends an acknowledgment, so this also bounds the mail one cookie can cause.
pub const MAX_CORRECTIONS: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CorrectionError {
    /// No live cookie for this ticket (another browser, or the 30 minutes are over), or
    /// the form's hidden field does not go with it.
    #[error("only the browser that sent the request can correct its address, within 30 minutes")]
    NotThisBrowser,
    #[error("{0}")]
    Invalid(Message),
    #[error("that is the address the request already has")]
    Same,
    #[error("somebody at support has approved the request: its address can no longer change here")]
    Approved,
    #[error("the request is decided or replaced: its address can no longer change")]
    NotPending,
    #[error("the request's address changed meanwhile")]
    ChangedMeanwhile,
    #[error("the address of this request was corrected {MAX_CORRECTIONS} times already")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] compose::RenderError),
}

impl CorrectionError {
    /// What the customer reads; `None` for a failure on the desk's side.
    pub fn message(&self) -> Option<Message> {
        Some(match self {
            Self::NotThisBrowser => Message::new("address.not_this_browser"),
            Self::Invalid(message) => message.clone(),
            Self::Same => Message::new("address.same"),
            Self::Approved => Message::new("address.approved"),
            Self::NotPending => Message::new("address.not_pending"),
            Self::ChangedMeanwhile => Message::new("address.changed_meanwhile"),
            Self::TooMany => Message::new("address.too_many"),
            Self::Store(_) | Self::Render(_) => return None,
        })
    }
}

/// What the success page hands the browser that sent a new request: the cookie's value
/// and the form's hidden field that goes with it.
#[derive(Debug, Clone)]
pub struct CorrectionPass {
    pub cookie: String,
    pub form_token: String,
}

/// A pass for a ticket just created, live for [`CORRECTION_WINDOW_SECS`].
pub fn new_pass(desk: &Desk, number: &TicketNumber) -> CorrectionPass {
    let secret = &desk.keys.desk_secret;
    let expires_at = desk
        .clock
        .now()
        .plus_seconds(CORRECTION_WINDOW_SECS)
        .unix_seconds();
    let cookie = secret.address_fix_token(number.as_str(), expires_at);
    CorrectionPass {
        form_token: secret.address_fix_form_token(number.as_str(), &cookie),
        cookie,
    }
}

/// The pass a browser's cookie still holds for this ticket, if it is live.
pub fn live_pass(
    desk: &Desk,
    number: &TicketNumber,
    cookie: Option<&str>,
) -> Option<CorrectionPass> {
    let cookie = cookie?;
    let secret = &desk.keys.desk_secret;
    secret
        .address_fix_is_valid(number.as_str(), cookie, desk.clock.now().unix_seconds())
        .then(|| CorrectionPass {
            form_token: secret.address_fix_form_token(number.as_str(), cookie),
            cookie: cookie.to_owned(),
        })
}

/// Corrects the ticket's address for the browser holding a live pass: the new address
/// gets the acknowledgment with the status link; the history and the audit log keep the
/// old and the new address. The old address is not written to: within half an hour of
/// the request, from the browser that typed it, it is a typo nobody reads, or a
/// stranger's mailbox that has no business hearing of the ticket.
#[tracing::instrument(skip_all, fields(ticket = %number), err(level = "info"))]
pub async fn correct(
    desk: &Desk,
    number: &TicketNumber,
    cookie: Option<&str>,
    form_token: &str,
    typed: &str,
) -> Result<EmailAddress, CorrectionError> {
    let pass = live_pass(desk, number, cookie).ok_or(CorrectionError::NotThisBrowser)?;
    if !desk
        .keys
        .desk_secret
        .address_fix_form_is_valid(number.as_str(), &pass.cookie, form_token)
    {
        return Err(CorrectionError::NotThisBrowser);
    }
    let new =
        EmailAddress::parse(typed).map_err(|e| CorrectionError::Invalid(problems::email(&e)))?;
    let ticket = match desk.store.ticket(number).await {
        Ok(ticket) => ticket,
        // A pass is only made for a ticket that exists.
        Err(StoreError::NotFound) => return Err(CorrectionError::NotThisBrowser),
        Err(other) => return Err(other.into()),
    };
    let old = ticket.customer.email.clone();
    if new.mailbox() == old.mailbox() {
        return Err(CorrectionError::Same);
    }
    let at_new_address = crate::store::Customer {
        email: new.clone(),
        ..ticket.customer.clone()
    };
    let acknowledgment = compose::acknowledgment_again(
        &desk.mail,
        number,
        &desk.status_url(number),
        &at_new_address,
        &ticket.devices,
        Again::CorrectedByCustomer,
        desk.answer_secs().await,
    )?;
    let outcome = desk
        .store
        .change_customer_email(&AddressChange {
            ticket_id: ticket.id,
            by: AddressChanger::Customer {
                max_changes: MAX_CORRECTIONS,
                flags: crate::intake::risk::address_flags(desk, &new).await?,
            },
            from: old,
            to: new.clone(),
            acknowledgment,
            at: desk.clock.now(),
        })
        .await?;
    match outcome {
        AddressChangeOutcome::Changed { .. } => {
            desk.mail_queued.notify_one();
            tracing::info!("the customer corrected the ticket's address");
            Ok(new)
        }
        AddressChangeOutcome::Approved => Err(CorrectionError::Approved),
        AddressChangeOutcome::NotPending => Err(CorrectionError::NotPending),
        AddressChangeOutcome::ChangedMeanwhile => Err(CorrectionError::ChangedMeanwhile),
        AddressChangeOutcome::TooMany => Err(CorrectionError::TooMany),
    }
}
