//! The API's guard: who is calling, proven by an API token.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::desk::Desk;
use crate::routes::ErrorAnswer;
use crate::store::{StoreError, User};

/// An agent authenticated by `Authorization: Bearer <token>`.
///
/// Handlers that take it must take no other extractor that can fail (parse bodies inside
/// the handler): actix runs extractors concurrently and returns the first error, so a
/// body error could otherwise reach a caller before "not authenticated".
pub struct ApiUser {
    pub user: User,
    pub scope: crate::store::TokenScope,
}

impl ApiUser {
    /// Refuses a read-only token on a route that changes something.
    pub fn may_decide(&self) -> Result<(), ErrorAnswer> {
        match self.scope {
            crate::store::TokenScope::Decide => Ok(()),
            crate::store::TokenScope::Read => Err(ErrorAnswer::new(
                StatusCode::FORBIDDEN,
                "this API token may only read: create a token with the decide scope",
            )),
        }
    }
}

impl FromRequest for ApiUser {
    type Error = ErrorAnswer;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ErrorAnswer>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let desk = request.app_data::<web::Data<Desk>>().cloned();
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        Box::pin(async move {
            let unauthorized = |message: &str| ErrorAnswer::new(StatusCode::UNAUTHORIZED, message);
            let desk = desk.ok_or_else(|| unauthorized("the desk is not ready"))?;
            let token = token.ok_or_else(|| {
                unauthorized(
                    "this route needs an agent's API token: send Authorization: Bearer <token>",
                )
            })?;
            let hash = crate::auth::api_token_hash(&token);
            match desk.store.user_by_api_token(&hash, desk.clock.now()).await {
                Ok((user, scope)) if !user.disabled => Ok(ApiUser { user, scope }),
                Ok(_) => Err(ErrorAnswer::new(
                    StatusCode::FORBIDDEN,
                    "this account is disabled",
                )),
                Err(StoreError::NotFound) => Err(unauthorized(
                    "the API token is not valid, expired or revoked",
                )),
                Err(other) => Err(ErrorAnswer::internal(&other)),
            }
        })
    }
}
