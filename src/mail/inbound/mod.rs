//! Requests and replies by e-mail (issue 21). A message arrives from the mailbox `serve`
//! watches (`imap`) or from an MTA's pipe (`resetdesk mail-intake`); either way
//! [`take`] reads it within limits ([`message`]), claims it once across replicas, and
//! makes a ticket of it as the form would, adds it to the ticket it answers, or answers
//! once with what to fix. Robots (auto-replies, bounces, lists, ourselves) get no answer.

#[cfg(feature = "server")]
pub mod imap;
pub mod message;
#[cfg(feature = "server")]
pub mod take;

pub use message::{InboundMail, Refused};
#[cfg(feature = "server")]
pub use take::{KEPT_FOR_SECS, TakeError, Taken, take};
