//! For operators and load balancers: liveness, readiness and metrics.

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, get, web};

use crate::desk::Desk;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics_view);
}

/// 200 when the database answers, 503 when it does not.
#[get("/healthz")]
async fn healthz(desk: web::Data<Desk>) -> HttpResponse {
    match desk.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(error) => {
            tracing::warn!(%error, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "database unreachable"}))
        }
    }
}

/// 200 when this replica can take work: the database answers with every migration
/// applied, the blob store answers, and this replica's keys are the ones the database
/// records (a replica with another keys directory would refuse every genuine export). A
/// load balancer routes only to ready replicas; the body says which dependency is down.
/// Anonymous, so the blob store's answer is a read, cached for a while
/// (`BlobStore::check_ready`): a flood of checks cannot drive the object store's bill.
/// Counted in `resetdesk_http_requests_total{route="/readyz"}`.
#[get("/readyz")]
async fn readyz(desk: web::Data<Desk>) -> HttpResponse {
    let database = match desk.store.migrations_applied().await {
        Ok(true) => "ok",
        Ok(false) => "migrations pending",
        Err(_) => "unreachable",
    };
    let blobs = desk.blobs.check_ready().await.err().unwrap_or("ok");
    let keys = desk.keys_agree_with_database().await;
    let keys_ok = keys.is_ok();
    let keys = keys.err().unwrap_or_else(|| "ok".to_owned());
    let body = serde_json::json!({"database": database, "blobs": blobs, "keys": keys});
    if database == "ok" && blobs == "ok" && keys_ok {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(database, blobs, keys, "readiness check failed");
        HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::RETRY_AFTER, "30"))
            .json(body)
    }
}

/// Prometheus metrics: open to this machine, or to a scraper with the metrics token.
#[get("/metrics")]
async fn metrics_view(desk: web::Data<Desk>, request: HttpRequest) -> HttpResponse {
    // From this machine, unless through one of our own proxies, which would make every
    // outside request look local.
    let local = request.peer_addr().is_some_and(|a| {
        a.ip().is_loopback() && !desk.settings.http.trusted_proxies.contains(&a.ip())
    });
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_ok = match (&desk.settings.security.metrics_token, bearer) {
        (Some(expected), Some(given)) => {
            crate::crypto::constant_time_eq(expected.expose().as_bytes(), given.as_bytes())
        }
        _ => false,
    };
    if !local && !token_ok {
        return HttpResponse::Forbidden()
            .body("metrics are available from this machine or with the metrics token\n");
    }
    // Gauges are read at scrape time, so every replica reports the shared database's state.
    if let Ok((open, oldest)) = desk.store.queue_stats().await {
        ::metrics::gauge!("resetdesk_queue_open_tickets").set(open as f64);
        let age = oldest.map_or(0, |t| desk.clock.now().seconds_since(t).max(0));
        ::metrics::gauge!("resetdesk_queue_oldest_open_seconds").set(age as f64);
    }
    if let Ok((pending, _, dead)) = desk.store.mail_counts().await {
        ::metrics::gauge!("resetdesk_outbox_pending").set(pending as f64);
        ::metrics::gauge!("resetdesk_outbox_dead").set(dead as f64);
    }
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(desk.metrics.render())
}
