//! resetdesk: the vendor's side of a camera/NVR password reset, and the reference
//! device that proves every response end to end. docs/ARCHITECTURE.md is the page to
//! read first; this is the module map, in the order a reset flows.
//!
//! The core, which imports nothing of the server (built without the default `server`
//! feature, the library is only this: the device's side, which the fuzz targets drive):
//! - `domain`: values parsed at the edge (serials, e-mail addresses, ticket numbers,
//!   timestamps), valid by construction;
//! - `protocol`: the export and response formats and the exact bytes authenticated
//!   (docs/PROTOCOL.md);
//! - `crypto`: the only use of ring: device keys, signing keys, the desk secret, seal
//!   keys, key files;
//! - `device`: the reference device, simulator and verifier;
//! - `i18n`: the catalogues every customer-facing word comes from, and language choice;
//! - `clock`: time as the code sees it, injected in tests;
//! - `intake::photo`: the label photo's check of untrusted bytes.
//!
//! The desk, from a customer's upload to the e-mail:
//! - `intake`: from a body read within limits (`spool`, `picture_work`) to a ticket, or
//!   a refusal in the customer's words; its risk rules flag tickets for four eyes;
//! - `evidence`: what the machine reads off a label photo: its codes, the serials in
//!   them, and a finding per device of the export;
//! - `review`: agents' decisions (claim, approve and sign, reject, ask for a photo) and
//!   their rules, and the desk's own under the fast tracks (`review/automatic.rs`);
//! - `installers`: the vendor's registered partners, their tokens and devices;
//! - `mail`: composing text and HTML mail, and the outbox worker that sends it;
//! - `customer`: what a customer does afterwards: the response by one-time code, "it
//!   did not work", the address correction;
//! - `auth`: console users' passwords, second factor, sessions, API tokens, throttling;
//! - `routes/`: HTTP, by audience: handlers, extractors, pages, and where errors become
//!   answers;
//! - `store/`: the `Store` interface, its SQL for SQLite and PostgreSQL, and the
//!   conformance suite both pass;
//! - `audit`: the audit log's hash chain and its check;
//! - `blobs`: uploaded files, on local disk or in an S3-compatible store;
//! - `sweeper`: removes blobs no ticket names;
//! - `key_registry`: holds every replica to the same keys;
//! - `signer`: the master secret and signing keys as the desk may use them (check an
//!   export, answer it, recover an answer), in this process or a separate one;
//! - `desk`: the services handlers and workers share, built once at start;
//! - `config`: settings from defaults, a file and `RESETDESK_*` variables;
//! - `data_dir`: the data directory's files, owner-only;
//! - `observability`: metrics, request ids, readiness;
//! - `startup`: builds the running desk and its workers from settings;
//! - `cli`: the commands; `cli/server.rs` starts the desk.

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
#[cfg(feature = "server")]
pub mod evidence;
pub mod i18n;
#[cfg(feature = "server")]
pub mod installers;
pub mod intake;
#[cfg(feature = "server")]
pub mod key_registry;
#[cfg(feature = "mail-parsing")]
pub mod mail;
#[cfg(feature = "server")]
pub mod observability;
pub mod protocol;
#[cfg(feature = "server")]
pub mod retention;
#[cfg(feature = "server")]
pub mod review;
#[cfg(feature = "server")]
pub mod routes;
#[cfg(feature = "server")]
pub mod signer;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod sweeper;
