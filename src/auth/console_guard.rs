//! One gate in front of every console route. It authenticates the session cookie for
//! every request under `/console` (except the sign-in page) and, for every request that
//! can change something (any method but GET and HEAD), checks the form's CSRF token
//! before the handler runs. A route added under `/console` later is protected without
//! doing anything: there is no per-handler check to forget.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::LOCATION;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};

use super::guard::ConsoleUser;
use super::session;
use crate::desk::Desk;
use crate::routes::ApiError;
use crate::store::{SessionStage, StoreError};

/// The largest console form body read for the CSRF check.
const MAX_FORM_BYTES: usize = 64 * 1024;

fn is_public(request: &ServiceRequest) -> bool {
    request.path() == "/console/login"
}

/// Where a session at `stage` must go instead of `path`, if it may not be there.
fn stage_redirect(stage: SessionStage, path: &str) -> Option<&'static str> {
    let second_factor = path == session::SECOND_FACTOR_PATH;
    let enrolment =
        path == session::ENROL_PATH || path.starts_with(&format!("{}/", session::ENROL_PATH));
    let logout = path == "/console/logout";
    match stage {
        SessionStage::Full if second_factor || enrolment => Some("/console"),
        SessionStage::Full => None,
        SessionStage::SecondFactor if second_factor || logout => None,
        SessionStage::SecondFactor => Some(session::SECOND_FACTOR_PATH),
        SessionStage::Enrol if enrolment || logout => None,
        SessionStage::Enrol => Some(session::ENROL_PATH),
    }
}

fn to_login(request: ServiceRequest) -> ServiceResponse<BoxBody> {
    request.into_response(
        HttpResponse::SeeOther()
            .insert_header((LOCATION, "/console/login"))
            .finish(),
    )
}

fn refuse(request: ServiceRequest) -> ServiceResponse<BoxBody> {
    let page = crate::routes::message_page(
        actix_web::http::StatusCode::FORBIDDEN,
        "This form has expired",
        "The page was open too long or came from somewhere else. Go back, reload the page and try again.",
    );
    request.into_response(page)
}

/// The CSRF token in an urlencoded form body.
fn csrf_field(body: &[u8]) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    fields
        .into_iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value)
}

pub async fn console_guard(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !request.path().starts_with("/console") || is_public(&request) {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let Some(desk) = request.app_data::<web::Data<Desk>>().cloned() else {
        return Ok(to_login(request));
    };
    let Some(cookie) = request.cookie(session::COOKIE) else {
        return Ok(to_login(request));
    };
    let token_hash = session::token_hash(cookie.value());
    let (user, csrf, stage) = match desk
        .store
        .session(&token_hash, desk.clock.now(), session::IDLE_SECS)
        .await
    {
        Ok((user, _, _)) if user.disabled => return Ok(to_login(request)),
        Ok(found) => found,
        Err(StoreError::NotFound) => return Ok(to_login(request)),
        Err(other) => return Err(ApiError::internal(&other).into()),
    };
    // A password alone opens only the next step of signing in.
    if let Some(elsewhere) = stage_redirect(stage, request.path()) {
        return Ok(request.into_response(
            HttpResponse::SeeOther()
                .insert_header((LOCATION, elsewhere))
                .finish(),
        ));
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let body = request.extract::<web::Bytes>().await?;
        if body.len() > MAX_FORM_BYTES
            || !session::csrf_matches(&csrf, csrf_field(&body).as_deref())
        {
            return Ok(refuse(request));
        }
        // The handler reads the same body again.
        request.set_payload(actix_web::dev::Payload::from(body));
    }
    request.extensions_mut().insert(ConsoleUser {
        user,
        csrf,
        token_hash,
        stage,
    });
    let mut response = next.call(request).await?.map_into_boxed_body();
    // Console pages hold customers' details, CSRF tokens, new API tokens and recovery
    // codes: no cache keeps a copy.
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sessions_reach_only_their_next_step() {
        use SessionStage::*;
        assert_eq!(
            stage_redirect(SecondFactor, "/console"),
            Some("/console/login/code")
        );
        assert_eq!(
            stage_redirect(SecondFactor, "/console/tickets/RQ-0000-0000/approve"),
            Some("/console/login/code")
        );
        assert_eq!(stage_redirect(SecondFactor, "/console/login/code"), None);
        assert_eq!(stage_redirect(Enrol, "/console/enrol/qr.png"), None);
        assert_eq!(
            stage_redirect(Enrol, "/console/enrolx"),
            Some("/console/enrol")
        );
        assert_eq!(
            stage_redirect(Enrol, "/console/reasons"),
            Some("/console/enrol")
        );
        assert_eq!(stage_redirect(Full, "/console/enrol"), Some("/console"));
        assert_eq!(stage_redirect(Full, "/console/reasons"), None);
    }

    #[test]
    fn finds_the_csrf_field_in_a_form_body() {
        assert_eq!(
            csrf_field(b"reason=x&csrf=abc%2Bd"),
            Some("abc+d".to_owned())
        );
        assert_eq!(csrf_field(b"reason=x"), None);
        assert_eq!(csrf_field(b"\xff\xfe"), None);
    }
}
