use actix_web::{HttpResponse, get, web};

use crate::desk::Desk;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz);
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
