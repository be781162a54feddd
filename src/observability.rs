//! What an operator watches: Prometheus metrics, request ids in every log line of a
//! request, and readiness. Metric names say what an operator asks:
//!
//! | metric | labels | question |
//! |---|---|---|
//! | `resetdesk_http_requests_total` | route, status | what is being asked, what failed |
//! | `resetdesk_http_request_duration_seconds` | route | how slow |
//! | `resetdesk_intake_total` | outcome | how many requests came in, why some were refused |
//! | `resetdesk_signatures_total` | key_id | what was signed, with which key |
//! | `resetdesk_mail_total` | outcome (sent, retry, dead) | is mail getting out |
//! | `resetdesk_queue_open_tickets`, `resetdesk_queue_oldest_open_seconds` | | how far behind is support |
//! | `resetdesk_outbox_pending`, `resetdesk_outbox_dead` | | is mail stuck |
//! | `resetdesk_blobs_swept_total`, `resetdesk_blobs_sweep_last_removed`, `resetdesk_blobs_sweep_last_run_timestamp_seconds` | | are orphaned uploads being removed |
//! | `resetdesk_blob_probes_total` | | how often readiness asked the object store |

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

const REQUEST_ID: &str = "x-request-id";

/// The process's metrics recorder, installed on first use. Metrics are global to the
/// process, so every desk built in it (tests build many) shares one registry.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// A request id the client sent that is safe to echo into logs and headers.
fn usable_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let sane = (8..=64).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    sane.then(|| text.to_owned())
}

/// Gives each request an id (the client's `X-Request-Id` if it is sane), runs it inside
/// a tracing span carrying that id, returns it as `X-Request-Id`, and counts and times the
/// request by its route pattern (never the raw path, which holds ticket numbers and tokens).
pub async fn request_context(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(usable_id)
        .unwrap_or_else(|| data_encoding::HEXLOWER.encode(&crate::crypto::random_bytes::<8>()));
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route);
    let started = Instant::now();
    let mut response = next.call(request).instrument(span).await?;
    let status = response.status().as_u16().to_string();
    metrics::counter!("resetdesk_http_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("resetdesk_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    Ok(response)
}

/// Counts an intake outcome.
pub fn intake(outcome: &'static str) {
    metrics::counter!("resetdesk_intake_total", "outcome" => outcome).increment(1);
}

/// Counts inbound e-mails by what the desk did with them (`mail::inbound::Taken`).
pub fn mail_intake(outcome: &'static str) {
    metrics::counter!("resetdesk_mail_intake_total", "outcome" => outcome).increment(1);
}

/// Counts signatures made with a key.
pub fn signatures(key_id: &str, count: usize) {
    metrics::counter!("resetdesk_signatures_total", "key_id" => key_id.to_owned())
        .increment(count as u64);
}

/// Counts a sign-in attempt by step (`password`, `code`) and outcome (`accepted`,
/// `wrong`, `throttled`): how often someone is guessing, and how often they are stopped.
pub fn sign_in(step: &'static str, outcome: &'static str) {
    metrics::counter!("resetdesk_sign_in_attempts_total", "step" => step, "outcome" => outcome)
        .increment(1);
}

/// Counts a mail delivery outcome.
pub fn mail(outcome: &'static str) {
    metrics::counter!("resetdesk_mail_total", "outcome" => outcome).increment(1);
}
