//! E-mail: rendering each message (text and HTML from templates) and the outbox worker
//! that delivers them. Messages are rendered when the business change happens and
//! stored with it, so what the customer gets is exactly what the transaction decided.
//! Without the `server` feature only `inbound::message` is built (the fuzz target's).

#[cfg(feature = "server")]
pub mod compose;
pub mod inbound;
#[cfg(feature = "server")]
pub mod outbox;
#[cfg(feature = "server")]
pub mod smtp;
