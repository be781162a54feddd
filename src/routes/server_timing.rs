//! `Server-Timing: app;dur=<ms>` on every response: the time from the request reaching
//! the app to its response head being ready. A browser's developer tools and the
//! benchmark (benches/desk/queue_at_scale.rs) read it, so the desk's own share of a
//! page's latency can be told apart from the network's and the client's.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

/// The standard header (W3C Server Timing); one metric, `app`, in milliseconds.
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

pub async fn server_timing(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let mut response = next.call(request).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={ms:.3}")) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    Ok(response)
}
