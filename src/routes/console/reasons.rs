//! The canned rejection reasons agents pick from: supervisors keep the list.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;

use super::guard::ConsoleUser;
use super::{ActionForm, see_other};
use crate::desk::Desk;
use crate::review;
use crate::routes::{html, message_page};
use crate::store::StoreError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(reasons_view)
        .service(add_reason)
        .service(remove_reason);
}

/// Canned reasons are the supervisors' to keep.
fn supervisors_only(console: &ConsoleUser) -> Option<HttpResponse> {
    (!console.user.roles.contains(crate::domain::Role::Supervisor)).then(|| {
        message_page(
            StatusCode::FORBIDDEN,
            "Supervisors only",
            "Editing the rejection reasons needs the supervisor role.",
        )
    })
}

#[derive(Template)]
#[template(path = "console/reasons.html")]
struct ReasonsPage {
    nav: super::Nav,
    csrf: String,
    reasons: Vec<(i64, String)>,
    error: Option<String>,
}

async fn reasons_page(
    desk: &Desk,
    console: &ConsoleUser,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    match desk.store.canned_reasons().await {
        Ok(reasons) => html(
            status,
            &ReasonsPage {
                nav: super::Nav::of(console),
                csrf: console.csrf.clone(),
                reasons,
                error,
            },
        ),
        Err(e) => crate::routes::failure_page("The list is unavailable", &e),
    }
}

#[get("/console/reasons")]
async fn reasons_view(desk: web::Data<Desk>, console: ConsoleUser) -> HttpResponse {
    reasons_page(&desk, &console, StatusCode::OK, None).await
}

#[post("/console/reasons")]
async fn add_reason(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    if let Some(refusal) = supervisors_only(&console) {
        return refusal;
    }
    let text = match crate::domain::PlainText::parse(
        form.reason.as_deref().unwrap_or(""),
        review::MAX_REASON_CHARS,
    ) {
        Ok(text) => text,
        Err(e) => {
            return reasons_page(
                &desk,
                &console,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!("The reason {e}.")),
            )
            .await;
        }
    };
    match desk
        .store
        .add_canned_reason(text.as_str(), console.user.id, desk.clock.now())
        .await
    {
        Ok(()) => see_other("/console/reasons"),
        Err(StoreError::Conflict(message)) => {
            reasons_page(
                &desk,
                &console,
                StatusCode::CONFLICT,
                Some(message.to_string()),
            )
            .await
        }
        Err(e) => crate::routes::failure_page("The reason was not saved", &e),
    }
}

#[post("/console/reasons/{id}/delete")]
async fn remove_reason(
    desk: web::Data<Desk>,
    console: ConsoleUser,
    path: web::Path<i64>,
) -> HttpResponse {
    if let Some(refusal) = supervisors_only(&console) {
        return refusal;
    }
    match desk
        .store
        .remove_canned_reason(path.into_inner(), console.user.id, desk.clock.now())
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => see_other("/console/reasons"),
        Err(e) => crate::routes::failure_page("The reason was not removed", &e),
    }
}
