//! A customer writes to support from the status page: about a rejection (the ticket goes
//! back to the agents for review), or while the ticket waits. The message joins the
//! ticket's history, where the agents read it on the ticket page.

use crate::desk::Desk;
use crate::domain::{TicketStatus, WrittenText, WrittenTextError};
use crate::i18n::Message;
use crate::store::{MessageAuthor, NewTicketMessage, ReplyOutcome, StoreError, TicketDetail};

/// The longest message, in characters.
pub const MAX_REPLY_CHARS: usize = 2000;
/// Messages one ticket may hold: enough for a conversation, not a spam channel.
const MAX_REPLIES_PER_TICKET: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the message is empty")]
    Empty,
    #[error("the message has {chars} characters; at most {MAX_REPLY_CHARS} fit")]
    TooLong { chars: usize },
    #[error("this ticket is decided: a reply cannot change it")]
    Closed,
    #[error("this ticket already holds {MAX_REPLIES_PER_TICKET} messages")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReplyError {
    /// What the customer reads; `None` for a failure on the desk's side.
    pub fn message(&self) -> Option<Message> {
        Some(match self {
            Self::Empty => Message::new("reply.empty"),
            Self::TooLong { chars } => Message::new("reply.too_long")
                .with("chars", chars)
                .with("max", MAX_REPLY_CHARS),
            Self::Closed => Message::new("reply.closed"),
            Self::TooMany => Message::new("reply.too_many"),
            Self::Store(_) => return None,
        })
    }
}

/// Whether the status page offers the reply form: while support works on the ticket, and
/// after a rejection. An approved ticket has "it did not work" instead; a superseded one
/// has its newer ticket.
pub fn accepts_replies(status: TicketStatus) -> bool {
    matches!(
        status,
        TicketStatus::Open | TicketStatus::AwaitingPhoto | TicketStatus::Rejected
    )
}

/// Adds the customer's message from the status page to the ticket; says what it did to a
/// rejected one.
pub async fn reply(
    desk: &Desk,
    ticket: &TicketDetail,
    message: &str,
) -> Result<ReplyOutcome, ReplyError> {
    reply_as(desk, ticket, message, None).await
}

/// [`reply`] for an e-mail from the ticket's customer, recorded once by its Message-ID.
pub async fn reply_by_mail(
    desk: &Desk,
    ticket: &TicketDetail,
    message: &str,
    message_id: &str,
) -> Result<ReplyOutcome, ReplyError> {
    reply_as(desk, ticket, message, Some(message_id.to_owned())).await
}

async fn reply_as(
    desk: &Desk,
    ticket: &TicketDetail,
    message: &str,
    message_id: Option<String>,
) -> Result<ReplyOutcome, ReplyError> {
    // Line breaks are kept (a message may list what the customer tried).
    let message = WrittenText::parse(message, MAX_REPLY_CHARS).map_err(|e| match e {
        WrittenTextError::Empty => ReplyError::Empty,
        WrittenTextError::TooLong { chars } => ReplyError::TooLong { chars },
    })?;
    if !accepts_replies(ticket.summary.status) {
        return Err(ReplyError::Closed);
    }
    match desk
        .store
        .record_reply(
            ticket.id,
            &NewTicketMessage {
                author: MessageAuthor::Customer,
                sender: ticket.customer.email.to_string(),
                body: message.as_str().to_owned(),
                message_id,
            },
            MAX_REPLIES_PER_TICKET,
            desk.clock.now(),
        )
        .await
    {
        Ok(outcome) => {
            tracing::info!(ticket = %ticket.summary.number, ?outcome, "the customer wrote to support");
            Ok(outcome)
        }
        Err(StoreError::Conflict(_)) => Err(ReplyError::TooMany),
        Err(other) => Err(other.into()),
    }
}
