//! Reading a multipart submission with every limit enforced while streaming: a field
//! larger than its limit is refused at the chunk that crosses it, never after buffering
//! the whole upload, and a request whose declared length is already too large is
//! refused before its body is read at all.

use actix_multipart::Multipart;
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web;
use futures_util::StreamExt;

use super::ApiError;
use crate::desk::Desk;
use crate::intake::{self, FILE_FIELDS, RawSubmission, TEXT_FIELDS};

/// More parts than fields exist means something other than our form is talking.
const MAX_PARTS: usize = 16;

fn limit_of(desk: &Desk, name: &str) -> Option<u64> {
    TEXT_FIELDS
        .iter()
        .find(|(field, _)| *field == name)
        .map(|(_, limit)| *limit as u64)
        .or_else(|| {
            FILE_FIELDS
                .contains(&name)
                .then(|| intake::file_limit(desk, name))
        })
}

fn static_name(name: &str) -> &'static str {
    TEXT_FIELDS
        .iter()
        .map(|(field, _)| *field)
        .chain(FILE_FIELDS.iter().copied())
        .find(|field| *field == name)
        .unwrap_or("form")
}

fn megabytes(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MB", bytes / (1024 * 1024))
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// The per-address intake limit, checked before the body is read.
pub fn check_address_limit(desk: &Desk, request: &HttpRequest) -> Result<(), ApiError> {
    let address = super::client_address(desk, request);
    desk.intake_by_address
        .hit(
            &address,
            desk.settings.intake_per_ip_per_hour,
            3600,
            desk.clock.now(),
        )
        .map_err(ApiError::rate_limited)
}

/// The largest body a submission can legitimately have.
pub fn max_body(desk: &Desk) -> u64 {
    let text: u64 = TEXT_FIELDS.iter().map(|(_, limit)| *limit as u64).sum();
    let files: u64 = FILE_FIELDS
        .iter()
        .map(|f| intake::file_limit(desk, f))
        .sum();
    text + files + 64 * 1024
}

/// Reads a submission within `upload_timeout_secs`: a client trickling its body (a
/// slowloris) gets a 408 instead of holding a connection and a worker for ever.
pub async fn read_submission(
    desk: &Desk,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<RawSubmission, ApiError> {
    let limit = std::time::Duration::from_secs(desk.settings.upload_timeout_secs);
    tokio::time::timeout(limit, read_submission_untimed(desk, request, payload))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                actix_web::http::StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the upload did not finish within {} seconds; try again on a better connection",
                    desk.settings.upload_timeout_secs
                ),
            ))
        })
}

async fn read_submission_untimed(
    desk: &Desk,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<RawSubmission, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > max_body(desk)
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is {}, more than a request can hold ({})",
                megabytes(length),
                megabytes(max_body(desk))
            ),
        ));
    }
    let mut multipart = Multipart::new(request.headers(), payload);
    let mut raw = RawSubmission::default();
    let mut parts = 0;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the upload is not a valid multipart/form-data request: {e}"),
            )
        })?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the upload has too many parts",
            ));
        }
        let name = field
            .name()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "a part of the upload has no field name",
                )
            })?
            .to_owned();
        let limit = limit_of(desk, &name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown field {:?} in the upload", truncate(&name)),
            )
        })?;
        let field_name = static_name(&name);
        if raw.text.contains_key(&name) || raw.files.contains_key(&name) {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                field_name,
                format!("the field {name} was sent twice"),
            ));
        }
        let mut next_chunk = async || -> Result<Option<web::Bytes>, ApiError> {
            let Some(chunk) = field.next().await else {
                return Ok(None);
            };
            chunk.map(Some).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the upload was interrupted or malformed: {e}"),
                )
            })
        };
        let too_large = || {
            ApiError::field(
                StatusCode::PAYLOAD_TOO_LARGE,
                field_name,
                format!("{name} is larger than {}", megabytes(limit)),
            )
        };
        if FILE_FIELDS.contains(&field_name) {
            let mut upload = desk.spool.receive();
            let mut received = 0u64;
            while let Some(chunk) = next_chunk().await? {
                received += chunk.len() as u64;
                if received > limit {
                    return Err(too_large());
                }
                upload.push(&chunk).await.map_err(spool_error)?;
            }
            raw.files.insert(name, upload.finish());
        } else {
            let mut bytes = Vec::new();
            while let Some(chunk) = next_chunk().await? {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(bytes).map_err(|_| {
                ApiError::field(
                    StatusCode::BAD_REQUEST,
                    field_name,
                    format!("{name} is not UTF-8 text"),
                )
            })?;
            raw.text.insert(name, text);
        }
    }
    Ok(raw)
}

/// The spool is local disk: full is the same story as full blob storage.
fn spool_error(error: std::io::Error) -> ApiError {
    tracing::error!(%error, "cannot spool an upload");
    ApiError::from(match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            intake::IntakeError::StorageFull
        }
        _ => intake::IntakeError::Internal(Box::new(error)),
    })
}

fn truncate(name: &str) -> String {
    name.chars().take(40).collect()
}
