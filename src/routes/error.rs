use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::i18n::Message;
use crate::intake::{FieldIssue, IntakeError};
use crate::review::ReviewError;

/// An API error: a status and a message a person understands, optionally naming the
/// field at fault. Causes go to the log, never into the response. The API answers in
/// English; a customer's page shows the same message in the customer's language.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub issues: Vec<FieldIssue>,
    pub message: Message,
    /// Seconds for a `Retry-After` header, on 429 answers.
    pub retry_after: Option<i64>,
}

/// What a 503 asks clients to wait before trying again.
const UNAVAILABLE_RETRY_SECS: i64 = 30;
/// A full disk needs an operator: ask clients to come back in a while.
const STORAGE_FULL_RETRY_SECS: i64 = 600;
/// A queue of pictures clears within a minute or two.
const BUSY_RETRY_SECS: i64 = 60;

#[derive(Serialize)]
struct Body<'a> {
    error: Item<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Item<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    message: String,
}

impl ApiError {
    /// An error only agents and API clients read, in English.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::said(status, Message::untranslated(message))
    }

    /// An error a customer may read, from the message catalogue.
    pub fn said(status: StatusCode, message: Message) -> Self {
        Self {
            status,
            issues: Vec::new(),
            message,
            retry_after: None,
        }
    }

    pub fn field(status: StatusCode, field: &'static str, message: Message) -> Self {
        Self {
            status,
            issues: vec![FieldIssue {
                field,
                message: message.clone(),
            }],
            message,
            retry_after: None,
        }
    }

    /// A failure on our side: 503 with Retry-After when the database is unreachable
    /// (it comes back on its own), 500 otherwise. The cause goes to the log only.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        if crate::store::StoreError::is_unavailable(error) {
            tracing::error!(error = %chain, "request failed: database unreachable");
            return Self {
                retry_after: Some(UNAVAILABLE_RETRY_SECS),
                ..Self::said(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Message::new("refusal.database_down"),
                )
            };
        }
        tracing::error!(error = %chain, "request failed");
        Self::said(
            StatusCode::INTERNAL_SERVER_ERROR,
            Message::new("refusal.internal"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message.english())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let first = self.issues.first();
        let body = Body {
            error: Item {
                field: first.map(|i| i.field),
                message: first.map_or(&self.message, |i| &i.message).english(),
            },
            errors: if self.issues.len() > 1 {
                self.issues
                    .iter()
                    .map(|i| Item {
                        field: Some(i.field),
                        message: i.message.english(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        };
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(body)
    }
}

impl ApiError {
    /// A 503 for a desk busy with other uploads or pictures: the request was fine.
    pub fn busy(message: Message) -> Self {
        Self {
            retry_after: Some(BUSY_RETRY_SECS),
            ..Self::said(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// A 429 with `Retry-After`.
    pub fn rate_limited(retry_after: i64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            issues: Vec::new(),
            message: Message::new("refusal.rate_limited").with("seconds", retry_after),
            retry_after: Some(retry_after),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(error: IntakeError) -> Self {
        match error {
            IntakeError::Invalid(issues) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: issues
                    .first()
                    .map(|i| i.message.clone())
                    .unwrap_or_else(|| Message::untranslated("the request is not valid")),
                issues,
                retry_after: None,
            },
            IntakeError::Conflict(field, message) => {
                Self::field(StatusCode::CONFLICT, field, message)
            }
            IntakeError::RateLimited {
                serial,
                retry_after,
            } => Self {
                message: Message::new("refusal.device_rate_limited")
                    .with("serial", serial)
                    .with("seconds", retry_after),
                ..Self::rate_limited(retry_after)
            },
            IntakeError::StorageFull => Self {
                retry_after: Some(STORAGE_FULL_RETRY_SECS),
                ..Self::said(
                    StatusCode::INSUFFICIENT_STORAGE,
                    Message::new("refusal.storage_full"),
                )
            },
            IntakeError::Busy => Self::busy(Message::new("refusal.busy")),
            IntakeError::BlobsUnavailable => Self {
                retry_after: Some(UNAVAILABLE_RETRY_SECS),
                ..Self::said(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Message::new("refusal.blobs_down"),
                )
            },
            IntakeError::Unconfirmed(cause) => {
                tracing::error!(error = %cause, "request not confirmed: database unreachable");
                Self {
                    retry_after: Some(UNAVAILABLE_RETRY_SECS),
                    ..Self::said(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Message::new("refusal.unconfirmed"),
                    )
                }
            }
            IntakeError::Internal(cause) => Self::internal(cause.as_ref()),
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(error: ReviewError) -> Self {
        let status = match &error {
            ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::Forbidden(_) => StatusCode::FORBIDDEN,
            ReviewError::Conflict(_) => StatusCode::CONFLICT,
            ReviewError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::Stale => StatusCode::PRECONDITION_FAILED,
            ReviewError::Internal(cause) => return Self::internal(cause.as_ref()),
        };
        Self::new(status, error.to_string())
    }
}
