//! What programs call: the intake API (devices' exports sent by a script or an app) and
//! the agent API (`Authorization: Bearer <token>`). JSON in, JSON out, errors in English.

mod agent;
mod guard;
mod intake;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    intake::configure(cfg);
    agent::configure(cfg);
}
