//! The one place errors become answers. Each module's error gets its status here (the
//! `From` impls below) and its words from its own `message()`; the API renders an
//! [`ErrorAnswer`] as JSON ([`ResponseError`] below), the pages as HTML
//! (`super::render`), and both write a failure on our side to the log as they render it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::customer::reply::ReplyError;
use crate::customer::{AccessError, CorrectionError, FeedbackError};
use crate::i18n::Message;
use crate::intake::{FieldIssue, IntakeError};
use crate::review::ReviewError;

/// What the desk answers when a request did not go through: a status and a message a
/// person understands, optionally naming the fields at fault. Causes go to the log,
/// never into the answer. The API answers in English; a customer's page shows the same
/// message in the customer's language; the console in English.
#[derive(Debug)]
pub struct ErrorAnswer {
    pub status: StatusCode,
    pub issues: Vec<FieldIssue>,
    pub message: Message,
    /// Seconds for a `Retry-After` header, on 429 and 503 answers.
    pub retry_after: Option<i64>,
    /// A failure on our side, for the log when the answer is rendered (boxed: errors
    /// travel in `Result`s, best kept small).
    failure: Option<Box<Failure>>,
}

/// What failed on our side, and its whole cause chain.
#[derive(Debug)]
struct Failure {
    what: &'static str,
    chain: String,
}

/// What a 503 asks clients to wait before trying again.
const UNAVAILABLE_RETRY_SECS: i64 = 30;
/// A full disk needs an operator: ask clients to come back in a while.
const STORAGE_FULL_RETRY_SECS: i64 = 600;
/// A queue of pictures clears within a minute or two.
const BUSY_RETRY_SECS: i64 = 60;

/// Every JSON error: the first problem, and when there are several, all of them (the
/// API's schema names it `ApiError`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiError {
    error: ApiErrorItem,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ApiErrorItem>,
}

/// One problem, in English words a person understands; `field` names the form field
/// or request part it is about.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiErrorItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    message: String,
}

impl ErrorAnswer {
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
            failure: None,
        }
    }

    /// The same answer under another status.
    pub fn with_status(self, status: StatusCode) -> Self {
        Self { status, ..self }
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
            failure: None,
        }
    }

    /// A failure on our side: 503 with Retry-After when the database is unreachable
    /// (it comes back on its own), 500 otherwise. The cause goes to the log only, when
    /// the answer is rendered.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        if crate::store::StoreError::is_unavailable(error) {
            return Self::unavailable(
                Message::new("refusal.database_down"),
                Failure {
                    what: "request failed: database unreachable",
                    chain,
                },
            );
        }
        Self {
            failure: Some(Box::new(Failure {
                what: "request failed",
                chain,
            })),
            ..Self::said(
                StatusCode::INTERNAL_SERVER_ERROR,
                Message::new("refusal.internal"),
            )
        }
    }

    /// A 503 for a part of the desk that comes back on its own.
    fn unavailable(message: Message, failure: Failure) -> Self {
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_SECS),
            failure: Some(Box::new(failure)),
            ..Self::said(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// A refusal in the words of the module that refused. `message` is `None` only for
    /// a failure on our side, which each `From` below answers with [`Self::internal`]
    /// before it gets here.
    fn in_words(status: StatusCode, message: Option<Message>) -> Self {
        Self::said(
            status,
            message.unwrap_or_else(|| Message::new("refusal.internal")),
        )
    }

    /// Writes a failure on our side to the log; called by the renderers, once per answer.
    pub(super) fn log_failure(&self) {
        if let Some(failure) = &self.failure {
            let Failure { what, chain } = failure.as_ref();
            tracing::error!(error = %chain, "{what}");
        }
    }
}

impl std::fmt::Display for ErrorAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message.english())
    }
}

impl ResponseError for ErrorAnswer {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.log_failure();
        let first = self.issues.first();
        let body = ApiError {
            error: ApiErrorItem {
                field: first.map(|i| i.field),
                message: first.map_or(&self.message, |i| &i.message).english(),
            },
            errors: if self.issues.len() > 1 {
                self.issues
                    .iter()
                    .map(|i| ApiErrorItem {
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

impl ErrorAnswer {
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
            failure: None,
        }
    }
}

impl From<IntakeError> for ErrorAnswer {
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
                failure: None,
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
            IntakeError::Unconfirmed(cause) => Self::unavailable(
                Message::new("refusal.unconfirmed"),
                Failure {
                    what: "request not confirmed: database unreachable",
                    chain: cause.to_string(),
                },
            ),
            IntakeError::Internal(cause) => Self::internal(cause.as_ref()),
        }
    }
}

impl From<ReviewError> for ErrorAnswer {
    fn from(error: ReviewError) -> Self {
        let status = match &error {
            ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::Forbidden(_) => StatusCode::FORBIDDEN,
            ReviewError::Conflict(_) => StatusCode::CONFLICT,
            ReviewError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::Stale => StatusCode::PRECONDITION_FAILED,
            ReviewError::Gone(_) => StatusCode::GONE,
            ReviewError::Internal(cause) => return Self::internal(cause.as_ref()),
        };
        Self::in_words(status, error.message())
    }
}

impl From<FeedbackError> for ErrorAnswer {
    fn from(error: FeedbackError) -> Self {
        let status = match &error {
            FeedbackError::NoAnswer | FeedbackError::Note(_) => StatusCode::UNPROCESSABLE_ENTITY,
            FeedbackError::NotApproved => StatusCode::CONFLICT,
            FeedbackError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            FeedbackError::Store(cause) => return Self::internal(cause),
        };
        Self::in_words(status, error.message())
    }
}

impl From<ReplyError> for ErrorAnswer {
    fn from(error: ReplyError) -> Self {
        let status = match &error {
            ReplyError::Empty | ReplyError::TooLong { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ReplyError::Closed => StatusCode::CONFLICT,
            ReplyError::TooMany => StatusCode::TOO_MANY_REQUESTS,
            ReplyError::Store(cause) => return Self::internal(cause),
        };
        Self::in_words(status, error.message())
    }
}

impl From<CorrectionError> for ErrorAnswer {
    fn from(error: CorrectionError) -> Self {
        let status = match &error {
            CorrectionError::NotThisBrowser => StatusCode::FORBIDDEN,
            CorrectionError::Invalid(_) | CorrectionError::Same => StatusCode::UNPROCESSABLE_ENTITY,
            CorrectionError::Approved
            | CorrectionError::NotPending
            | CorrectionError::ChangedMeanwhile => StatusCode::CONFLICT,
            CorrectionError::TooMany => StatusCode::TOO_MANY_REQUESTS,
            CorrectionError::Store(cause) => return Self::internal(cause),
            CorrectionError::Render(cause) => return Self::internal(cause),
        };
        Self::in_words(status, error.message())
    }
}

impl From<AccessError> for ErrorAnswer {
    fn from(error: AccessError) -> Self {
        let status = match &error {
            AccessError::WrongCode { .. } | AccessError::Malformed | AccessError::NoLiveCode => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AccessError::TooManyCodes(_) => StatusCode::TOO_MANY_REQUESTS,
            AccessError::NoResponse(_) => StatusCode::CONFLICT,
            AccessError::Store(cause) => return Self::internal(cause),
            AccessError::Render(cause) => return Self::internal(cause),
            AccessError::Sealed(cause) => return Self::internal(cause),
            AccessError::Signer(cause) => return Self::internal(cause),
        };
        Self::in_words(status, error.message())
    }
}
