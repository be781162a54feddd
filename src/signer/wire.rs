//! What desk and signer say to each other over the signer's socket: one JSON object per
//! line each way. Exports travel as the export XML and responses as the response XML,
//! read on each side by the same strict readers as any upload; nothing else is trusted
//! from the other side.

use serde::{Deserialize, Serialize};

use crate::domain::{DeviceSerial, Timestamp};
use crate::protocol::ChallengeError;

/// The longest line either side reads: an export is at most 256 KiB of XML, its
/// response file less; the rest is small.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Who the signer is: its keys' ids.
    Hello,
    /// Check an export's entries (`export`: the export XML).
    CheckExport { export: String },
    /// Answer an export for a ticket.
    Answer { ticket: String, export: String },
    /// The typed keys of responses the signer gave before (`responses`: response XML).
    Recover { export: String, responses: String },
}

/// One device's typed key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypedKey {
    pub serial: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Hello {
        master_key_id: String,
        signing_key_id: String,
    },
    Checked,
    Answered {
        key_id: String,
        /// The signed response file, one entry per device.
        responses: String,
        keys: Vec<TypedKey>,
    },
    Recovered {
        keys: Vec<TypedKey>,
    },
    /// The export's entries are not genuine or not alive.
    NotGenuine {
        problem: ExportProblem,
    },
    /// The signer's own rules say no (answered before, over a cap, not version 2, …).
    Refused {
        why: String,
    },
    /// A request the signer could not read, or a failure on its side.
    Failed {
        error: String,
    },
}

/// A [`ChallengeError`], as it crosses the socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportProblem {
    BadMac { serial: String },
    Expired { serial: String, at: i64 },
    IssuedInFuture { serial: String, at: i64 },
}

impl From<&ChallengeError> for ExportProblem {
    fn from(error: &ChallengeError) -> Self {
        match error {
            ChallengeError::BadMac { serial } => Self::BadMac {
                serial: serial.to_string(),
            },
            ChallengeError::Expired { serial, expired_at } => Self::Expired {
                serial: serial.to_string(),
                at: expired_at.unix_seconds(),
            },
            ChallengeError::IssuedInFuture { serial, issued_at } => Self::IssuedInFuture {
                serial: serial.to_string(),
                at: issued_at.unix_seconds(),
            },
        }
    }
}

impl ExportProblem {
    /// Back into the desk's own error; `None` when the signer sent a serial or time no
    /// device could have.
    pub fn into_error(self) -> Option<ChallengeError> {
        let serial = |raw: &str| DeviceSerial::parse(raw).ok();
        let at = |seconds: i64| Timestamp::from_unix_seconds(seconds).ok();
        Some(match self {
            Self::BadMac { serial: s } => ChallengeError::BadMac {
                serial: serial(&s)?,
            },
            Self::Expired { serial: s, at: t } => ChallengeError::Expired {
                serial: serial(&s)?,
                expired_at: at(t)?,
            },
            Self::IssuedInFuture { serial: s, at: t } => ChallengeError::IssuedInFuture {
                serial: serial(&s)?,
                issued_at: at(t)?,
            },
        })
    }
}
