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

/// A JSON body, read once the caller is known (actix reads a body taken whole beside the
/// guard, and answers its own limit in plain text), up to `max` bytes: past it a 413 in
/// JSON saying `too_large`.
pub(super) async fn read_body(
    mut payload: web::Payload,
    max: usize,
    too_large: &str,
) -> Result<Vec<u8>, crate::routes::ErrorAnswer> {
    use actix_web::http::StatusCode;
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            crate::routes::ErrorAnswer::new(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > max {
            return Err(crate::routes::ErrorAnswer::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                too_large,
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
