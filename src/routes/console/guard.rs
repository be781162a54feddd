//! One gate in front of every console route. It authenticates the session cookie for
//! every request under `/console` (except the sign-in page) and, for every request that
//! can change something (any method but GET and HEAD), checks the form's CSRF token
//! before the handler runs: the session's, or on the sign-in page, which has no session
//! yet, the signed token of its cookie. A route added under `/console` later is protected
//! without doing anything: there is no per-handler check to forget.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::Payload;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::LOCATION;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};

use crate::auth::session;
use crate::desk::Desk;
use crate::routes::ErrorAnswer;
use crate::store::{SessionStage, StoreError, User};

/// A console user with a live session, put in the request by [`console_guard`], which
/// has also checked the CSRF token of any request that changes something.
#[derive(Clone)]
pub struct ConsoleUser {
    pub user: User,
    pub csrf: String,
    pub token_hash: String,
}

impl FromRequest for ConsoleUser {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Absent only if a console handler were mounted outside /console: fail closed.
        let user = request
            .extensions()
            .get::<ConsoleUser>()
            .cloned()
            .ok_or_else(|| {
                actix_web::error::InternalError::from_response(
                    "sign-in required",
                    actix_web::HttpResponse::SeeOther()
                        .insert_header((actix_web::http::header::LOCATION, "/console/login"))
                        .finish(),
                )
                .into()
            });
        std::future::ready(user)
    }
}

/// The largest console form body read for the CSRF check.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The one console page open without a session.
fn is_sign_in_form(request: &ServiceRequest) -> bool {
    request.path() == session::SIGN_IN_PATH
}

fn changes_something(request: &ServiceRequest) -> bool {
    !matches!(*request.method(), Method::GET | Method::HEAD)
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

/// The form body of a request that changes something, read for its CSRF token and put
/// back for the handler; none when it is too large to be a console form.
async fn form_body(request: &mut ServiceRequest) -> Result<Option<web::Bytes>, actix_web::Error> {
    let body = request.extract::<web::Bytes>().await?;
    if body.len() > MAX_FORM_BYTES {
        return Ok(None);
    }
    // The handler reads the same body again.
    request.set_payload(Payload::from(body.clone()));
    Ok(Some(body))
}

/// Console pages hold customers' details, CSRF tokens, new API tokens and recovery codes:
/// no cache keeps a copy.
fn no_store(mut response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    response
}

pub async fn console_guard(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !request.path().starts_with("/console") {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let Some(desk) = request.app_data::<web::Data<Desk>>().cloned() else {
        return Ok(to_login(request));
    };
    if is_sign_in_form(&request) {
        // Without it a page elsewhere could sign a browser in to the page's own account
        // (login CSRF), or spend an agent's sign-in attempts from the agent's browser.
        if changes_something(&request) {
            let cookie = request
                .cookie(session::SIGN_IN_FORM_COOKIE)
                .map(|c| c.value().to_owned());
            let body = form_body(&mut request).await?;
            let submitted = body.as_deref().and_then(csrf_field);
            if !session::sign_in_form_matches(&desk, cookie.as_deref(), submitted.as_deref()) {
                return Ok(refuse(request));
            }
        }
        let response = next.call(request).await?.map_into_boxed_body();
        return Ok(no_store(response));
    }
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
        Err(other) => return Err(ErrorAnswer::internal(&other).into()),
    };
    // A password alone opens only the next step of signing in.
    if let Some(elsewhere) = stage_redirect(stage, request.path()) {
        return Ok(request.into_response(
            HttpResponse::SeeOther()
                .insert_header((LOCATION, elsewhere))
                .finish(),
        ));
    }
    if changes_something(&request) {
        let body = form_body(&mut request).await?;
        if !session::csrf_matches(&csrf, body.as_deref().and_then(csrf_field).as_deref()) {
            return Ok(refuse(request));
        }
    }
    request.extensions_mut().insert(ConsoleUser {
        user,
        csrf,
        token_hash,
    });
    let response = next.call(request).await?.map_into_boxed_body();
    Ok(no_store(response))
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
