//! resetdesk: the vendor's side of a camera/NVR password reset, and the reference
//! device that proves every response end to end.
//!
//! Follow the folders in the order a reset flows: `domain` (values parsed at the
//! edge), `protocol` (formats and checks), `crypto` (keys and the only use of ring),
//! `device` (the reference device), `cli` (the commands).
//!
//! Built without the default `server` feature, the library is only the device's side:
//! the parsers, the crypto, the reference device and the label-photo check, without the
//! web server, the database or the mail (the fuzz targets build it that way).

#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod blobs;
#[cfg(feature = "server")]
pub mod cli;
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
pub mod crypto;
#[cfg(feature = "server")]
pub mod customer;
#[cfg(feature = "server")]
pub mod data_dir;
#[cfg(feature = "server")]
pub mod desk;
pub mod device;
pub mod domain;
pub mod i18n;
pub mod intake;
#[cfg(feature = "server")]
pub mod key_registry;
#[cfg(feature = "server")]
pub mod mail;
#[cfg(feature = "server")]
pub mod observability;
pub mod protocol;
#[cfg(feature = "server")]
pub mod review;
#[cfg(feature = "server")]
pub mod routes;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod sweeper;
