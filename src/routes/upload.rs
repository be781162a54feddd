//! Reading a multipart submission with every limit enforced while streaming: a field
//! larger than its limit is refused at the chunk that crosses it, never after buffering
//! the whole upload, and a request whose declared length is already too large is
//! refused before its body is read at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_multipart::Multipart;
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web;
use futures_util::StreamExt;

use super::ErrorAnswer;
use crate::desk::Desk;
use crate::i18n::Message;
use crate::intake::{self, RawSubmission, SubmissionField};

/// More parts than fields exist means something other than our form is talking.
const MAX_PARTS: usize = 16;

/// A size as the customer reads it: "20 MB", "256 KB".
pub fn megabytes(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MB", bytes / (1024 * 1024))
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// The per-address intake limit, counted before the body is read.
pub async fn check_address_limit(desk: &Desk, request: &HttpRequest) -> Result<(), ErrorAnswer> {
    let client = super::client_ip(desk, request);
    match intake::limits::admit_address(desk, client, desk.clock.now()).await {
        Ok(intake::limits::Admission::Counted) => Ok(()),
        Ok(intake::limits::Admission::Refused { retry_after, .. }) => {
            Err(ErrorAnswer::rate_limited(retry_after))
        }
        Err(error) => Err(ErrorAnswer::internal(&error)),
    }
}

/// The largest body a submission can legitimately have.
pub fn max_body(desk: &Desk) -> u64 {
    let fields: u64 = SubmissionField::ALL.iter().map(|f| f.limit(desk)).sum();
    fields + 64 * 1024
}

/// Reads a submission within `upload_timeout_secs`: a client trickling its body (a
/// slowloris) gets a 408 instead of holding a connection and a worker for ever. Once
/// its body has started, it must also keep up `upload_min_bytes_per_sec` on average after
/// `upload_min_rate_grace_secs`, or get a 408 at once: otherwise a few clients each
/// sending a byte every few seconds held every turn for the whole timeout, and real
/// customers waited behind them.
pub async fn read_submission(
    desk: &Desk,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<RawSubmission, ErrorAnswer> {
    let limit = std::time::Duration::from_secs(desk.settings.uploads.timeout_secs);
    let address = super::client_address(desk, request);
    // One client trickling several bodies would otherwise hold every turn.
    let Some(_claim) = desk.spool.claim(&address) else {
        return Err(ErrorAnswer::said(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            Message::new("refusal.uploads_per_address")
                .with("uploads", desk.spool.uploads_per_address()),
        ));
    };
    // Waiting for a turn is not counted against the upload's own time, nor its rate:
    // a body waiting for its turn is not being read.
    let _turn = match tokio::time::timeout(limit, desk.spool.admit()).await {
        Ok(Ok(turn)) => turn,
        Ok(Err(error)) => return Err(spool_error(error)),
        Err(_) => return Err(ErrorAnswer::busy(Message::new("refusal.uploads_busy"))),
    };
    let received = Arc::new(AtomicU64::new(0));
    let counted = {
        let received = received.clone();
        payload.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        })
    };
    let started = tokio::time::Instant::now();
    let reading = tokio::time::timeout(limit, read_submission_untimed(desk, request, counted));
    // Whichever comes first; the one that loses is dropped, and with it the body, the
    // turn and anything spooled so far.
    tokio::select! {
        read = reading => {
            let mut raw = read.unwrap_or_else(|_| {
                Err(ErrorAnswer::said(
                    StatusCode::REQUEST_TIMEOUT,
                    Message::new("problem.upload_timeout")
                        .with("seconds", desk.settings.uploads.timeout_secs),
                ))
            })?;
            raw.client = address;
            raw.passes = super::customer::passes_of(request);
            Ok(raw)
        }
        (got, elapsed) = too_slow(desk, &received, started) => {
            tracing::info!(%address, received = got, seconds = elapsed.as_secs(), "an upload was too slow: its turn goes to another");
            Err(ErrorAnswer::said(
                StatusCode::REQUEST_TIMEOUT,
                Message::new("problem.upload_too_slow")
                    .with("received", megabytes(got))
                    .with("seconds", elapsed.as_secs())
                    .with("rate", megabytes(desk.settings.uploads.min_bytes_per_sec)),
            ))
        }
    }
}

/// Resolves once the body received since `started` averages under
/// `upload_min_bytes_per_sec`, after the grace period; never when there is no minimum.
/// It wakes only when the bytes received so far would fall under the rate, not on a
/// timer: a body that keeps up is never looked at again until it would not.
async fn too_slow(
    desk: &Desk,
    received: &AtomicU64,
    started: tokio::time::Instant,
) -> (u64, std::time::Duration) {
    let rate = desk.settings.uploads.min_bytes_per_sec;
    if rate == 0 {
        return std::future::pending().await;
    }
    let grace = std::time::Duration::from_secs(desk.settings.uploads.min_rate_grace_secs);
    loop {
        let got = received.load(Ordering::Relaxed);
        // A millisecond past the moment `got` bytes fall under the rate.
        let under = std::time::Duration::from_millis(got.saturating_mul(1000) / rate + 1);
        tokio::time::sleep_until(started + grace.max(under)).await;
        let got = received.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        if u128::from(got) * 1000 < u128::from(rate) * elapsed.as_millis() {
            return (got, elapsed);
        }
    }
}

async fn read_submission_untimed(
    desk: &Desk,
    request: &HttpRequest,
    payload: impl futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>>
    + 'static,
) -> Result<RawSubmission, ErrorAnswer> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > max_body(desk)
    {
        return Err(ErrorAnswer::said(
            StatusCode::PAYLOAD_TOO_LARGE,
            Message::new("problem.upload_whole_too_large").with("size", megabytes(max_body(desk))),
        ));
    }
    let mut multipart = Multipart::new(request.headers(), payload);
    let mut raw = RawSubmission::default();
    let mut parts = 0;
    // Bytes of file parts read, kept or not.
    let mut total = 0u64;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| {
            ErrorAnswer::said(
                StatusCode::BAD_REQUEST,
                Message::new("problem.upload_not_a_form").with("detail", e),
            )
        })?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ErrorAnswer::said(
                StatusCode::BAD_REQUEST,
                Message::new("problem.upload_too_many_parts"),
            ));
        }
        let name = field
            .name()
            .ok_or_else(|| {
                ErrorAnswer::said(
                    StatusCode::BAD_REQUEST,
                    Message::new("problem.upload_not_a_form")
                        .with("detail", "a part of the upload has no field name"),
                )
            })?
            .to_owned();
        let submitted = SubmissionField::from_name(&name).ok_or_else(|| {
            ErrorAnswer::said(
                StatusCode::BAD_REQUEST,
                Message::new("problem.upload_unknown_field")
                    .with("field", format!("{:?}", truncate(&name))),
            )
        })?;
        let limit = submitted.limit(desk);
        if raw.text.contains_key(&submitted)
            || raw.files.contains_key(&submitted)
            || raw
                .too_large
                .as_ref()
                .is_some_and(|i| i.field == submitted.as_str())
        {
            return Err(ErrorAnswer::field(
                StatusCode::BAD_REQUEST,
                submitted.as_str(),
                Message::new("problem.upload_twice").with("field", &name),
            ));
        }
        let mut next_chunk = async || -> Result<Option<web::Bytes>, ErrorAnswer> {
            let Some(chunk) = field.next().await else {
                return Ok(None);
            };
            chunk.map(Some).map_err(|e| {
                tracing::info!(error = %e, "an upload was interrupted or malformed");
                ErrorAnswer::said(
                    StatusCode::BAD_REQUEST,
                    Message::new("problem.upload_interrupted"),
                )
            })
        };
        let too_large = || {
            let key = if submitted.is_file() {
                "problem.upload_too_large"
            } else {
                "problem.upload_text_too_large"
            };
            ErrorAnswer::field(
                StatusCode::PAYLOAD_TOO_LARGE,
                submitted.as_str(),
                Message::new(key).with("size", megabytes(limit)),
            )
        };
        if submitted.is_file() {
            let mut upload = desk.spool.receive();
            let mut received = 0u64;
            let mut over = false;
            while let Some(chunk) = next_chunk().await? {
                received += chunk.len() as u64;
                // A file over its limit is read past, not kept, so the fields after it
                // are still read and the form can show them again; the whole body stays
                // within what a submission may hold.
                total += chunk.len() as u64;
                if total > max_body(desk) {
                    return Err(too_large());
                }
                if received > limit {
                    over = true;
                    continue;
                }
                upload.push(&chunk).await.map_err(spool_error)?;
            }
            if over {
                if raw.too_large.is_none() {
                    raw.too_large = Some(intake::FieldIssue {
                        field: submitted.as_str(),
                        message: Message::new("problem.upload_too_large")
                            .with("size", megabytes(limit)),
                    });
                }
                continue;
            }
            raw.files.insert(submitted, upload.finish());
        } else {
            let mut bytes = Vec::new();
            while let Some(chunk) = next_chunk().await? {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(bytes).map_err(|_| {
                ErrorAnswer::field(
                    StatusCode::BAD_REQUEST,
                    submitted.as_str(),
                    Message::new("problem.upload_not_text"),
                )
            })?;
            raw.text.insert(submitted, text);
        }
    }
    Ok(raw)
}

/// The spool is local disk: full is the same story as full blob storage.
fn spool_error(error: std::io::Error) -> ErrorAnswer {
    tracing::error!(%error, "cannot spool an upload");
    ErrorAnswer::from(match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            intake::IntakeError::StorageFull
        }
        _ => intake::IntakeError::Internal(Box::new(error)),
    })
}

fn truncate(name: &str) -> String {
    name.chars().take(40).collect()
}

/// The answer to a submission whose file was over its limit (`RawSubmission::too_large`),
/// for the API and the photo page: 413, naming the field.
pub fn too_large_answer(issue: &intake::FieldIssue) -> ErrorAnswer {
    ErrorAnswer::field(
        StatusCode::PAYLOAD_TOO_LARGE,
        issue.field,
        issue.message.clone(),
    )
}
