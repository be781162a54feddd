//! The response by one-time code: when the response e-mail bounced or sits in a spam
//! folder, the customer asks for a code, which goes to the ticket's address; typing it
//! on the status page shows the keys and offers the response file. The status link alone
//! never shows a key: links get forwarded, pasted into chats and kept in browser history,
//! while the code proves control of the address the response was meant for, again.

use crate::crypto;
use crate::desk::Desk;
use crate::domain::{TicketStatus, Timestamp};
use crate::i18n::Message;
use crate::mail::compose;
use crate::protocol::{DeviceResponse, response};
use crate::store::{CodeCheck, Conflict, NewAccessCode, StoreError, TicketDetail};

/// How long a one-time code works.
pub const CODE_LIFETIME_SECS: i64 = 15 * 60;
/// Codes a ticket may be sent in an hour: enough for a slow inbox, too few to flood one.
pub const MAX_CODES_PER_HOUR: i64 = 3;
/// Tries at typing one code before it stops working.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// How long the page that shows the response may hand out its file.
pub const RESPONSE_FILE_SECS: i64 = 15 * 60;
/// Digits in a code: with 5 tries and 3 codes an hour, a guesser's odds are 1 in
/// 6.6 million an hour.
const CODE_DIGITS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("this ticket has no response to show: {0}")]
    NoResponse(NoResponse),
    #[error("{0}")]
    TooManyCodes(Conflict),
    #[error("the code is not right: {attempts_left} tries left with this code")]
    WrongCode { attempts_left: i64 },
    #[error(
        "no code is in force for this ticket: it expired, was used, or took too many tries. Ask for a new one"
    )]
    NoLiveCode,
    #[error("a code has 8 digits, as in the e-mail")]
    Malformed,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] compose::RenderError),
    /// A stored signature does not open: the keys directory lacks the seal key it was
    /// sealed with, or the row was altered.
    #[error("a stored response does not open: {0}")]
    Sealed(crate::crypto::SealError),
    /// The signer could not recover the typed keys.
    #[error("the response cannot be shown now: {0}")]
    Signer(#[from] crate::signer::SignerError),
}

/// Why a ticket has no response to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoResponse {
    #[error("it is not approved")]
    NotApproved,
    #[error("the response has expired; export a new request on the device")]
    Expired,
}

impl AccessError {
    /// What the customer reads; `None` for a failure on the desk's side.
    pub fn message(&self) -> Option<Message> {
        Some(match self {
            Self::NoResponse(NoResponse::NotApproved) => Message::new("code.not_approved"),
            Self::NoResponse(NoResponse::Expired) => Message::new("code.expired"),
            Self::TooManyCodes(_) => Message::new("code.too_many_codes"),
            Self::WrongCode { attempts_left: 1 } => Message::new("code.wrong_last"),
            Self::WrongCode { attempts_left } => {
                Message::new("code.wrong").with("tries", attempts_left)
            }
            Self::NoLiveCode => Message::new("code.no_live_code"),
            Self::Malformed => Message::new("code.malformed"),
            Self::Store(_) | Self::Render(_) | Self::Sealed(_) | Self::Signer(_) => return None,
        })
    }
}

/// Why a ticket's response cannot be shown, or `None` when it can.
fn why_no_response(ticket: &TicketDetail, now: Timestamp) -> Option<NoResponse> {
    if ticket.summary.status != TicketStatus::Approved || ticket.responses.is_empty() {
        return Some(NoResponse::NotApproved);
    }
    if ticket.responses.iter().all(|r| r.expires_at <= now) {
        return Some(NoResponse::Expired);
    }
    None
}

/// Sends a one-time code to the ticket's address.
pub async fn send_access_code(desk: &Desk, ticket: &TicketDetail) -> Result<(), AccessError> {
    let now = desk.clock.now();
    if let Some(why) = why_no_response(ticket, now) {
        return Err(AccessError::NoResponse(why));
    }
    let number = &ticket.summary.number;
    let code = crypto::random_digits::<CODE_DIGITS>();
    // The code opens the response: it goes where the response went.
    let to = crate::review::automatic::response_recipient(desk, ticket).await?;
    let mail = compose::access_code(&desk.mail, number, &desk.status_url(number), &to, &code)?;
    let issued = desk
        .store
        .issue_access_code(
            &NewAccessCode {
                ticket_id: ticket.id,
                code_hash: desk
                    .keys
                    .desk_secret
                    .access_code_hash(number.as_str(), &code),
                expires_at: now.plus_seconds(CODE_LIFETIME_SECS),
                mail,
                now,
            },
            MAX_CODES_PER_HOUR,
        )
        .await;
    match issued {
        Ok(()) => {
            desk.mail_queued.notify_one();
            tracing::info!(ticket = %number, "one-time code sent for the status page");
            Ok(())
        }
        Err(StoreError::Conflict(why)) => Err(AccessError::TooManyCodes(why)),
        Err(other) => Err(other.into()),
    }
}

/// The response, shown after its code was accepted.
pub struct ShownResponse {
    pub devices: Vec<DeviceResponse>,
    /// Lets the page offer the response file for a while (`RESPONSE_FILE_SECS`).
    pub file_token: String,
}

/// Checks a typed code; when it is right, recovers the response to show.
pub async fn show_response(
    desk: &Desk,
    ticket: &TicketDetail,
    typed: &str,
) -> Result<ShownResponse, AccessError> {
    let now = desk.clock.now();
    if let Some(why) = why_no_response(ticket, now) {
        return Err(AccessError::NoResponse(why));
    }
    // People copy codes with spaces or a dash in the middle.
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if code.len() != CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AccessError::Malformed);
    }
    let number = ticket.summary.number.as_str();
    let hash = desk.keys.desk_secret.access_code_hash(number, &code);
    match desk
        .store
        .redeem_access_code(ticket.id, &hash, now, MAX_CODE_ATTEMPTS)
        .await?
    {
        CodeCheck::Accepted => {
            tracing::info!(ticket = %number, "response shown on the status page");
            let devices = desk
                .signer
                .recover(&ticket.devices, &opened_responses(desk, ticket)?)
                .await
                .map_err(AccessError::Signer)?;
            Ok(ShownResponse {
                devices,
                file_token: desk.keys.desk_secret.response_access_token(
                    number,
                    now.plus_seconds(RESPONSE_FILE_SECS).unix_seconds(),
                ),
            })
        }
        CodeCheck::Wrong { attempts_left } if attempts_left > 0 => {
            Err(AccessError::WrongCode { attempts_left })
        }
        CodeCheck::Wrong { .. } | CodeCheck::NoLiveCode => Err(AccessError::NoLiveCode),
    }
}

/// The signed response file, for a holder of a live file token: `(file name, XML)`.
pub fn response_file(
    desk: &Desk,
    ticket: &TicketDetail,
    file_token: &str,
) -> Result<(String, String), AccessError> {
    let now = desk.clock.now();
    let number = ticket.summary.number.as_str();
    if !desk
        .keys
        .desk_secret
        .response_access_is_valid(number, file_token, now.unix_seconds())
    {
        return Err(AccessError::NoLiveCode);
    }
    if let Some(why) = why_no_response(ticket, now) {
        return Err(AccessError::NoResponse(why));
    }
    Ok((
        format!("reset-response-{number}.xml"),
        response::to_xml(&opened_responses(desk, ticket)?),
    ))
}

/// The ticket's signed responses, their signatures unsealed (the database keeps them
/// sealed, so a copy of it rebuilds no file a device accepts).
fn opened_responses(
    desk: &Desk,
    ticket: &TicketDetail,
) -> Result<Vec<crate::protocol::SignedResponse>, AccessError> {
    let seal = desk.keys.seal_keys();
    ticket
        .responses
        .iter()
        .map(|stored| stored.open(&seal))
        .collect::<Result<_, _>>()
        .map_err(AccessError::Sealed)
}
