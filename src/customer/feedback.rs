//! "It didn't work": the customer says what the device answered when they used the
//! response; the desk explains the likely cause and what to do, and notes the answer in
//! the ticket's history for the agents. The answers are the reference device's own
//! refusals (`device::ResponseError`), in the words a customer reads on the screen.

use crate::desk::Desk;
use crate::domain::{PlainText, TicketStatus};
use crate::store::{StoreError, TicketDetail};

/// A new request from the same customer for the same device within this many days of an
/// approval gets a shortened review: the agent sees the earlier approval beside it.
pub const REPEAT_WINDOW_DAYS: i64 = 14;
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

    /// The choice as the form shows it: close to what the device's screen says.
    pub fn label(self) -> &'static str {
        match self {
            Self::Expired => "It says the request or response has expired",
            Self::WrongKey => "It says the key is wrong or not valid",
            Self::NoResetInProgress => {
                "It says no reset is in progress, or the request is no longer current (the device restarted)"
            }
            Self::TooManyAttempts => "It says there were too many attempts",
            Self::WrongDevice => "It says the response is for another device",
            Self::Other => "Something else",
        }
    }

    /// Why that happens, in plain words.
    pub fn likely_cause(self) -> &'static str {
        match self {
            Self::Expired => {
                "A response works for 48 hours after the device exported its request. That time has passed."
            }
            Self::WrongKey => {
                "Most often a character was typed wrong. Keys use letters and digits; O and 0, and I, L and 1, count as the same. The key must also be the one for this device's serial number."
            }
            Self::NoResetInProgress => {
                "The device forgets its request when it restarts (a power cut counts) or when someone exports a new request. A response only works for the request it answers."
            }
            Self::TooManyAttempts => {
                "After 5 wrong keys the device ends the request, to stop guessing. This response cannot be used any more."
            }
            Self::WrongDevice => {
                "The response is for the serial number in your request. It was used on a different device, or the request came from another one."
            }
            Self::Other => {
                "We could not tell from your answer. Our support team reads what you wrote."
            }
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
    #[error("the note is too long or contains characters we cannot keep: {0}")]
    Note(String),
    #[error("this ticket has no response yet: there is nothing that could have failed")]
    NotApproved,
    #[error("{0}")]
    TooMany(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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
        Some(
            PlainText::parse(note, MAX_NOTE_CHARS)
                .map_err(|e| FeedbackError::Note(e.to_string()))?,
        )
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
