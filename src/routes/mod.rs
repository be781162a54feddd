//! HTTP routes, one module per audience. Handlers stay thin: they extract, call one
//! intake, review or store function, and map the outcome to a response.

mod agent_api;
mod error;
mod health;
mod intake_api;
mod upload;

use actix_web::web;

pub use error::ApiError;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    intake_api::configure(cfg);
    agent_api::configure(cfg);
}
