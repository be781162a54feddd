use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Serialize;

use crate::desk::Desk;
use crate::intake;
use crate::routes::{ApiError, ErrorAnswer, upload};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(submit);
}

/// A request as `multipart/form-data`: the customer's details, the export in one of its
/// three forms (exactly one), and the label photo. The names are the form's.
#[allow(dead_code)] // A schema only: the body is read part by part (`routes::upload`).
#[derive(utoipa::ToSchema)]
pub(super) struct RequestForm {
    /// Required, unless an installer's token sends the request (their company).
    name: Option<String>,
    /// Required, unless an installer's token sends the request (their address).
    email: Option<String>,
    phone: Option<String>,
    company: Option<String>,
    /// ISO 3166-1 alpha-2, such as ES.
    country: String,
    /// `end_user`, `installer`, `reseller` or `distributor`.
    role: Option<String>,
    purchase_channel: Option<String>,
    /// `en` or `es`: the e-mails' language.
    language: Option<String>,
    /// The export file the device wrote (XML).
    #[schema(format = Binary, value_type = Option<String>)]
    export_xml: Option<Vec<u8>>,
    /// The reset string the device shows.
    reset_string: Option<String>,
    /// A picture of the QR code the device shows.
    #[schema(format = Binary, value_type = Option<String>)]
    export_qr: Option<Vec<u8>>,
    /// A photo of the device's rating label (JPEG, PNG or WebP).
    #[schema(format = Binary, value_type = String)]
    label_photo: Vec<u8>,
}

/// What intake answers.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Created {
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
#[utoipa::path(post, path = "/api/v1/requests", tag = "requests",
    request_body(content = RequestForm, content_type = "multipart/form-data"),
    security((), ("installer_token" = [])),
    responses(
        (status = 201, description = "a new ticket", body = Created),
        (status = 200, description = "the same export again: the earlier ticket", body = Created),
        (status = 400, description = "a body that is not multipart/form-data", body = ApiError),
        (status = 401, description = "a bearer token that is no live installer token", body = ApiError),
        (status = 408, description = "the body came too slowly", body = ApiError),
        (status = 409, description = "the export conflicts with a newer one", body = ApiError),
        (status = 413, description = "a file over its limit", body = ApiError),
        (status = 422, description = "what is wrong, every field at once", body = ApiError),
        (status = 429, description = "too many requests from this address or for this device", body = ApiError,
            headers(("Retry-After" = i64, description = "seconds"))),
        (status = 503, description = "busy or the database unreachable: try again", body = ApiError,
            headers(("Retry-After" = i64, description = "seconds"))),
        (status = 507, description = "the desk's storage is full", body = ApiError),
    ))]
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
