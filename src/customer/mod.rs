//! What a customer can do on their own, without an agent:
//! - get the response when its e-mail never arrived, after a one-time code sent to the
//!   ticket's address (`access_code`);
//! - say that the response did not work and learn the likely cause (`feedback`);
//! - correct a mistyped e-mail address from the browser that sent the request
//!   (`address`);
//! - write to support about a rejection or a ticket that waits (`reply`);
//! - know how long answering takes, as measured (`answer_time`).

pub mod access_code;
pub mod address;
pub mod answer_time;
pub mod feedback;
pub mod reply;

pub use access_code::{
    AccessError, CODE_LIFETIME_SECS, MAX_CODE_ATTEMPTS, MAX_CODES_PER_HOUR, RESPONSE_FILE_SECS,
    ShownResponse, response_file, send_access_code, show_response,
};
pub use address::{CORRECTION_WINDOW_SECS, CorrectionError, CorrectionPass, MAX_CORRECTIONS};
pub use feedback::{DeviceAnswer, FeedbackError, SHORTENED_REVIEW_WINDOW_DAYS, report};
