//! What programs call: the intake API (devices' exports sent by a script or an app),
//! the agent API (`Authorization: Bearer <token>`) and the installers' API (their own
//! tokens). JSON in, JSON out, errors in English.

mod agent;
mod guard;
mod installer;
mod intake;
pub mod openapi;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    intake::configure(cfg);
    agent::configure(cfg);
    installer::configure(cfg);
    openapi::configure(cfg);
}
