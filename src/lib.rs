//! resetdesk: the vendor's side of a camera/NVR password reset, and the reference
//! device that proves every response end to end.
//!
//! Follow the folders in the order a reset flows: `domain` (values parsed at the
//! edge), `protocol` (formats and checks), `crypto` (keys and the only use of ring),
//! `device` (the reference device), `cli` (the commands).

pub mod audit;
pub mod auth;
pub mod blobs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod customer;
pub mod desk;
pub mod device;
pub mod domain;
pub mod i18n;
pub mod intake;
pub mod mail;
pub mod observability;
pub mod picture_work;
pub mod protocol;
pub mod review;
pub mod routes;
pub mod spool;
pub mod startup;
pub mod store;
