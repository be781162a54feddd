//! The words for each store conflict: the one place they are written, beside the
//! conflicts themselves. The console, the API and the CLI all show a conflict through
//! this `Display`, so an agent reads the same sentence wherever a change was refused;
//! which HTTP status a conflict gets is the routes' choice.

use super::Conflict;

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedScheme { scheme } => write!(
                f,
                "unsupported database URL scheme in {scheme:?}: use sqlite://PATH or postgres://..."
            ),
            Self::SameChallenge => f.write_str("the same challenge was submitted twice at once"),
            Self::AlreadyApproved => {
                f.write_str("you already approved this ticket; a second person must approve it")
            }
            Self::AlreadyDecided { status, by } => {
                write!(f, "the ticket was already {status} by {by}")
            }
            Self::NotOpen { status } => write!(f, "the ticket is {status}, not open"),
            Self::AddressChanged => f.write_str(
                "the customer's e-mail address was changed meanwhile: reload the ticket and decide again",
            ),
            Self::ApprovalRaced => f.write_str(
                "another approval of this ticket arrived meanwhile: reload the ticket and decide again",
            ),
            Self::EmailTaken { email } => write!(f, "a user with e-mail {email} already exists"),
            Self::NotAwaitingPhoto => f.write_str("this ticket is not waiting for a new photo"),
            Self::TooManyCodes { recent } => write!(
                f,
                "{recent} codes were sent for this ticket in the last hour: use the newest, or try again later"
            ),
            Self::TooManyAnswers { earlier } => write!(
                f,
                "we already have {earlier} answers for this ticket: please send a new request, or write to support"
            ),
            Self::MailNotRetryable => f.write_str("that message is not waiting for a retry"),
            Self::ResponseMailNotRetryable => {
                f.write_str("that message is not a response e-mail waiting for a retry")
            }
            Self::NoResponseToSign { serial } => write!(
                f,
                "the ticket holds no response for device {serial} to sign again"
            ),
            Self::CannedReasonExists => {
                f.write_str("the list already has a text with these English words")
            }
            Self::FastTrackLimit { limit } => write!(
                f,
                "the fast track already answered {limit} requests for this address or installer in the last 24 hours"
            ),
            Self::InstallerExists { email } => {
                write!(f, "an installer with e-mail {email} is already registered")
            }
            Self::FastTrackStopped => f.write_str(
                "the fast track was switched off, or the installer suspended, meanwhile",
            ),
            Self::NotAutomatic => f.write_str("this ticket was not decided by the desk alone"),
            Self::AlreadyHandled => {
                f.write_str("another handler finished this e-mail first")
            }
            Self::AlreadySuspicious => {
                f.write_str("this automatic decision is already marked suspicious")
            }
            Self::NoPendingSecondFactor => {
                f.write_str("there is no second factor waiting to be confirmed")
            }
        }
    }
}
