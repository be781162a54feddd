//! What a customer can do from the status page on their own, without an agent:
//! - get the response when its e-mail never arrived, after a one-time code sent to the
//!   ticket's address (`access_code`);
//! - say that the response did not work and learn the likely cause (`feedback`).

pub mod access_code;
pub mod feedback;

pub use access_code::{
    AccessError, CODE_LIFETIME_SECS, MAX_CODE_ATTEMPTS, MAX_CODES_PER_HOUR, RESPONSE_FILE_SECS,
    ShownResponse, response_file, send_access_code, show_response,
};
pub use feedback::{DeviceAnswer, FeedbackError, REPEAT_WINDOW_DAYS, report};
