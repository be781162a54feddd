use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Serialize;

use crate::desk::Desk;
use crate::intake;
use crate::routes::{ErrorAnswer, upload};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(submit);
}

#[derive(Serialize)]
struct Created {
    ticket: String,
    /// Left out when the same export came again from another address: the link went to
    /// the ticket's own address (`message` says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_url: Option<String>,
    /// True when this export had been submitted before: the ticket is the earlier one.
    existing: bool,
    /// For a resubmission: what happened, in English like the API's errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    superseded: Vec<String>,
}

/// `POST /api/v1/requests`: the intake as multipart/form-data, the same fields as the form.
/// The e-mails to the customer are in the `language` field's language (`en`, `es`), or
/// else in the one the request's Accept-Language prefers; errors are in English. With
/// `Authorization: Bearer` an installer's token, the request is that installer's, and
/// the installer track may answer it (`review::automatic`); any other token is refused.
#[post("/api/v1/requests")]
async fn submit(
    desk: web::Data<Desk>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ErrorAnswer> {
    // Before the body is read: a wrong token costs the caller nothing of ours.
    let installer = match super::installer::bearer(&request) {
        Some(token) => Some(super::installer::installer_of(&desk, &token).await?),
        None => None,
    };
    upload::check_address_limit(&desk, &request).await?;
    let mut raw = upload::read_submission(&desk, &request, payload).await?;
    if let Some(issue) = &raw.too_large {
        return Err(upload::too_large_answer(issue));
    }
    raw.text
        .entry(intake::SubmissionField::Language)
        .or_insert_with(|| crate::routes::language_of(&request).code().to_owned());
    let submitted = intake::submit_as(&desk, raw, installer.as_ref()).await?;
    let body = Created {
        ticket: submitted.number.to_string(),
        message: submitted.message().map(|m| m.english()),
        status_url: submitted.status_url,
        existing: submitted.existing,
        superseded: submitted
            .superseded
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    Ok(if submitted.existing {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Created().json(body)
    })
}
