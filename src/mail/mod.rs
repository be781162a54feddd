//! E-mail: rendering each message (text and HTML from templates) and the outbox worker
//! that delivers them. Messages are rendered when the business change happens and
//! stored with it, so what the customer gets is exactly what the transaction decided.

pub mod compose;
pub mod inbound;
pub mod outbox;
pub mod smtp;
