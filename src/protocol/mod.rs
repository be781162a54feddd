//! The reset protocol: what a device exports, what the desk answers, and the exact
//! bytes that are authenticated. docs/PROTOCOL.md is the specification; this module is
//! its reference implementation and docs/test-vectors/ is generated from it.

mod base32;
mod canonical;
pub mod challenge;
pub mod export_xml;
pub mod qr;
pub mod reset_string;
pub mod respond;
pub mod response;
pub mod response_key;
pub mod vectors;
pub mod xml;

pub use challenge::{
    ChallengeError, DeviceChallenge, DeviceIdentity, ExportBinding, ExportId, FieldProblem, Nonce,
    RequestShapeError, ResetRequest, VerifiedResetRequest,
};
pub use qr::QrError;
pub use reset_string::ResetStringError;
pub use respond::{DeviceResponse, recover_responses, respond, respond_with};
pub use response::{ResponseFileError, SignatureError, SignedResponse};
pub use response_key::{ResponseKey, ResponseKeyError};
pub use xml::XmlError;

/// Protocol version 1: entries are not bound to their export (docs/PROTOCOL.md).
pub const PROTOCOL_V1: u8 = 1;
/// Protocol version 2: every entry is bound to one export and its exporting device.
pub const PROTOCOL_V2: u8 = 2;
/// The version devices make today; the desk reads both and answers in the version asked.
pub const PROTOCOL_VERSION: u8 = PROTOCOL_V2;
/// How long a challenge, and so every response to it, lives: 48 hours.
pub const CHALLENGE_LIFETIME_SECS: i64 = 48 * 3600;
/// How far ahead of the desk's clock a device's clock may run before an export is
/// refused as coming from the future.
pub const DEFAULT_MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;

/// Why an export (in any of its three forms) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("{0}")]
    ResetString(#[from] ResetStringError),
    #[error("{0}")]
    Qr(#[from] QrError),
    #[error("{0}")]
    Field(#[from] FieldProblem),
    #[error("{0}")]
    Shape(#[from] RequestShapeError),
    #[error("the file is neither an export XML file, a reset string nor a picture of a QR code")]
    Unrecognised,
}

/// An export as it arrives, before it is decoded.
#[derive(Debug, Clone, Copy)]
pub enum ExportInput<'a> {
    Xml(&'a [u8]),
    ResetString(&'a str),
    QrImage(&'a [u8]),
}

impl<'a> ExportInput<'a> {
    /// Tells the three forms apart by content, not by file name: PNG or JPEG magic
    /// bytes mean a QR picture, a leading `<` means XML, other text a reset string.
    pub fn sniff(bytes: &'a [u8]) -> Result<Self, ExportError> {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        const JPEG: &[u8] = b"\xff\xd8\xff";
        if bytes.starts_with(PNG) || bytes.starts_with(JPEG) {
            return Ok(Self::QrImage(bytes));
        }
        let text_start = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        if text_start.trim_ascii_start().starts_with(b"<") {
            return Ok(Self::Xml(bytes));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) if !text.trim().is_empty() => Ok(Self::ResetString(text)),
            _ => Err(ExportError::Unrecognised),
        }
    }

    /// Decodes the export. The result is parsed, not trusted: `verify` it next.
    pub fn decode(self) -> Result<ResetRequest, ExportError> {
        match self {
            Self::Xml(bytes) => export_xml::from_xml(bytes),
            Self::ResetString(text) => reset_string::decode(text),
            Self::QrImage(bytes) => reset_string::decode(&qr::read_image(bytes)?),
        }
    }
}

#[cfg(test)]
mod binding_tests;
#[cfg(test)]
mod tests;
