//! "It didn't work": the customer says what the device answered when they used the
//! response; the desk explains the likely cause and what to do, and notes the answer in
//! the ticket's history for the agents. The answers are the reference device's own
//! refusals (`device::ResponseError`), in the words a customer reads on the screen.

use crate::desk::Desk;
use crate::domain::{FieldError, PlainText, TicketStatus};
use crate::i18n::Message;
use crate::store::{Conflict, StoreError, TicketDetail};

/// A new request from the same customer for the same device within this many days of an
/// approval gets a shortened review: the agent sees the earlier approval beside it.
/// Two weeks covers a response that did not work (it opens the device for 48 hours)
/// and a customer who tries again after a weekend or a technician's next visit; later,
/// the device may have changed hands, and its identity is checked again in full. Not
/// `intake::risk`'s 30-day window, which flags anyone's repeat for four eyes.
pub const SHORTENED_REVIEW_WINDOW_DAYS: i64 = 14;
/// Answers one ticket may record: enough for every honest retry, not a spam channel.
const MAX_ANSWERS_PER_TICKET: i64 = 10;
/// The longest note a customer may add.
const MAX_NOTE_CHARS: usize = 1000;

/// What the device said when the customer used the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAnswer {
    /// "expired": the 48 hours had passed.
    Expired,
    /// "wrong key": the typed key was not accepted.
    WrongKey,
    /// "no reset in progress" or "challenge no longer current": the device rebooted or
    /// exported again.
    NoResetInProgress,
    /// "too many attempts": five wrong keys ended the request.
    TooManyAttempts,
    /// "wrong device": the response is for another serial.
    WrongDevice,
    /// Anything else, in the customer's words.
    Other,
}

impl DeviceAnswer {
    pub const ALL: [Self; 6] = [
        Self::Expired,
        Self::WrongKey,
        Self::NoResetInProgress,
        Self::TooManyAttempts,
        Self::WrongDevice,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::WrongKey => "wrong_key",
            Self::NoResetInProgress => "no_reset",
            Self::TooManyAttempts => "too_many_attempts",
            Self::WrongDevice => "wrong_device",
            Self::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }

    /// The choice as the form shows it, close to what the device's screen says: a
    /// catalogue key.
    pub fn label_key(self) -> &'static str {
        match self {
            Self::Expired => "answer.expired_label",
            Self::WrongKey => "answer.wrong_key_label",
            Self::NoResetInProgress => "answer.no_reset_label",
            Self::TooManyAttempts => "answer.too_many_attempts_label",
            Self::WrongDevice => "answer.wrong_device_label",
            Self::Other => "answer.other_label",
        }
    }

    /// Why that happens, in plain words: a catalogue key.
    pub fn cause_key(self) -> &'static str {
        match self {
            Self::Expired => "answer.expired_cause",
            Self::WrongKey => "answer.wrong_key_cause",
            Self::NoResetInProgress => "answer.no_reset_cause",
            Self::TooManyAttempts => "answer.too_many_attempts_cause",
            Self::WrongDevice => "answer.wrong_device_cause",
            Self::Other => "answer.other_cause",
        }
    }

    /// Whether the customer must export a new request: this response can no longer work.
    pub fn needs_new_request(self) -> bool {
        matches!(
            self,
            Self::Expired | Self::NoResetInProgress | Self::TooManyAttempts
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("choose what the device said")]
    NoAnswer,
    #[error("the note {0}")]
    Note(FieldError),
    #[error("this ticket has no response yet: there is nothing that could have failed")]
    NotApproved,
    #[error("{0}")]
    TooMany(Conflict),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FeedbackError {
    /// What the customer reads; `None` for a failure on the desk's side.
    pub fn message(&self) -> Option<Message> {
        Some(match self {
            Self::NoAnswer => Message::new("feedback.no_answer"),
            Self::Note(problem) => crate::intake::problems::field(problem),
            Self::NotApproved => Message::new("feedback.not_approved"),
            Self::TooMany(_) => Message::new("feedback.too_many"),
            Self::Store(_) => return None,
        })
    }
}

/// Records what the device said, for the agents, and returns it to explain.
pub async fn report(
    desk: &Desk,
    ticket: &TicketDetail,
    answer: Option<&str>,
    note: &str,
) -> Result<DeviceAnswer, FeedbackError> {
    let answer = answer
        .and_then(DeviceAnswer::parse)
        .ok_or(FeedbackError::NoAnswer)?;
    let note = note.trim();
    let note = if note.is_empty() {
        None
    } else {
        Some(PlainText::parse(note, MAX_NOTE_CHARS).map_err(FeedbackError::Note)?)
    };
    if ticket.summary.status != TicketStatus::Approved {
        return Err(FeedbackError::NotApproved);
    }
    let detail = match &note {
        Some(note) => format!("{}: {}", answer.as_str(), note.as_str()),
        None => answer.as_str().to_owned(),
    };
    match desk
        .store
        .record_feedback(ticket.id, &detail, MAX_ANSWERS_PER_TICKET, desk.clock.now())
        .await
    {
        Ok(()) => {
            tracing::info!(ticket = %ticket.summary.number, answer = answer.as_str(), "customer says the response did not work");
            Ok(answer)
        }
        Err(StoreError::Conflict(why)) => Err(FeedbackError::TooMany(why)),
        Err(other) => Err(other.into()),
    }
}
