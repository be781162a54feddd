//! Intake: a customer's submission becomes a ticket, or a clear refusal. Every check
//! runs before anything is stored; a failure after the blobs are written removes them,
//! so a refused submission leaves nothing behind but the files the form keeps for its
//! retry (`kept.rs`), which the blob sweeper removes unless a ticket comes to name them.
//!
//! `photo` is the one part the device's side builds too (without the `server` feature):
//! it is a pure check of untrusted bytes, and the fuzz targets drive it.

#[cfg(feature = "server")]
mod field;
#[cfg(feature = "server")]
pub mod kept;
#[cfg(feature = "server")]
pub mod limits;
pub mod photo;
#[cfg(feature = "server")]
pub mod picture_work;
#[cfg(feature = "server")]
pub mod problems;
#[cfg(feature = "server")]
pub mod risk;
#[cfg(feature = "server")]
pub mod spool;
#[cfg(feature = "server")]
mod submission;

#[cfg(feature = "server")]
pub use field::SubmissionField;
#[cfg(feature = "server")]
pub use submission::*;
