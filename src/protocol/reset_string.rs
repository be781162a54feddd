//! The reset request as a string a person can copy, read aloud or type:
//!
//! ```text
//! RD1 <payload symbols> <2 check symbols>, grouped by five with '-'
//! ```
//!
//! `RD` marks the format; the next symbol is the protocol version; the payload is the
//! Crockford base32 encoding of `version(u8) || count(u8) || (entry body || tag(32))*`
//! in version 1 and `version(u8) || export id(16) || count(u8) || (entry body || tag(32))*`
//! in version 2, whose exporting device is the first entry's serial (entry body as in
//! the export MAC, see `canonical`). The binding is written once: an entry copied in
//! from another export was MACed over another binding and fails its check. The two
//! check symbols hold the
//! value of the version and payload symbols, read as one base-32 number, modulo the
//! prime 1021. A prime modulus above 31 means every single wrong symbol and every
//! swap of two neighbours changes the check, so a typo is reported as a typo instead
//! of reaching the MAC check as a "forged export". Dashes, spaces and case are
//! ignored and `O`, `I`, `L` are read as `0`, `1`, `1`. Every character is in QR
//! alphanumeric mode.

use crate::protocol::base32;
use crate::protocol::canonical::{ByteReader, ByteWriter};
use crate::protocol::challenge::{DeviceChallenge, ExportBinding, ExportId, ResetRequest};
use crate::protocol::{ExportError, PROTOCOL_V1, PROTOCOL_V2};

const PREFIX: &str = "RD";
const CHECK_MODULUS: u32 = 1021;
const GROUP: usize = 5;
/// A string covers at most this many devices (about 220 characters each).
pub const MAX_DEVICES_PER_STRING: usize = 16;
/// Input longer than this is refused before it is read further.
pub const MAX_RESET_STRING_CHARS: usize = 8192;

/// Why a reset string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetStringError {
    #[error("the reset string is empty")]
    Empty,
    #[error("the text is longer than {max} characters, far more than a reset string")]
    TooLong { max: usize },
    #[error("this is not a reset string: reset strings start with RD")]
    NotAResetString,
    #[error(
        "the reset string has a character that cannot appear in it: {found:?} at position {position} \
         (reset strings use digits and letters other than U)"
    )]
    BadCharacter { found: char, position: usize },
    #[error("the reset string is too short: part of it is missing")]
    TooShort,
    #[error(
        "the reset string has a typo (its check symbols do not match): compare it group by group \
         with the device's screen"
    )]
    Typo,
    #[error("the reset string has format version {0}; this desk reads versions 1 and 2")]
    UnsupportedVersion(u8),
    #[error("the reset string covers {count} devices; at most {max} fit in one string")]
    TooManyDevices { count: usize, max: usize },
    #[error("the reset string passed its check but its contents are malformed")]
    Malformed,
}

fn check_value(symbols: &[u8]) -> u32 {
    symbols
        .iter()
        .fold(0, |acc, &s| (acc * 32 + u32::from(s)) % CHECK_MODULUS)
}

/// Encodes a request as a grouped reset string.
///
/// # Panics
/// If the request covers more than [`MAX_DEVICES_PER_STRING`] devices; callers
/// export larger requests as XML.
pub fn encode(request: &ResetRequest) -> String {
    assert!(
        request.devices().len() <= MAX_DEVICES_PER_STRING,
        "a reset string covers at most {MAX_DEVICES_PER_STRING} devices"
    );
    let version = request.version();
    let mut payload = ByteWriter::default();
    payload.u8(version);
    if let Some(binding) = request.binding() {
        // The exporting device is the first entry (ResetRequest::new holds it so).
        payload.bytes(&binding.export_id.0);
    }
    payload.u8(request.devices().len() as u8);
    for device in request.devices() {
        device.write_body(&mut payload);
        payload.bytes(&device.tag.0);
    }
    let mut symbols = vec![version];
    symbols.extend(base32::encode(&payload.finish()));
    let check = check_value(&symbols);
    symbols.push((check / 32) as u8);
    symbols.push((check % 32) as u8);
    let body: String = symbols.into_iter().map(base32::symbol).collect();
    group(&format!("{PREFIX}{body}"))
}

/// The same string without group separators, as a QR code holds it.
pub fn compact(grouped: &str) -> String {
    grouped.chars().filter(|c| *c != '-').collect()
}

fn group(compact: &str) -> String {
    let chars: Vec<char> = compact.chars().collect();
    chars
        .chunks(GROUP)
        .map(|chunk| chunk.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Decodes a reset string as typed or pasted. The result is parsed, not trusted.
pub fn decode(input: &str) -> Result<ResetRequest, ExportError> {
    let (version, payload_symbols) = read_symbols(input)?;
    if version != PROTOCOL_V1 && version != PROTOCOL_V2 {
        return Err(ResetStringError::UnsupportedVersion(version).into());
    }
    let payload = base32::decode(&payload_symbols).ok_or(ResetStringError::Malformed)?;
    let mut reader = ByteReader::new(&payload);
    let malformed = |_| ResetStringError::Malformed;
    if reader.u8().map_err(malformed)? != version {
        return Err(ResetStringError::Malformed.into());
    }
    let export_id = if version == PROTOCOL_V2 {
        Some(ExportId(reader.array().map_err(malformed)?))
    } else {
        None
    };
    let count = usize::from(reader.u8().map_err(malformed)?);
    if count > MAX_DEVICES_PER_STRING {
        return Err(ResetStringError::TooManyDevices {
            count,
            max: MAX_DEVICES_PER_STRING,
        }
        .into());
    }
    let mut devices: Vec<DeviceChallenge> = Vec::with_capacity(count);
    for index in 1..=count {
        devices.push(DeviceChallenge::read_body_and_tag(index, &mut reader).map_err(malformed)??);
    }
    if !reader.is_empty() {
        return Err(ResetStringError::Malformed.into());
    }
    if let (Some(export_id), Some(first)) = (export_id, devices.first()) {
        let binding = ExportBinding {
            export_id,
            exported_by: first.identity.serial.clone(),
        };
        for device in &mut devices {
            device.binding = Some(binding.clone());
        }
    }
    Ok(ResetRequest::new(devices)?)
}

/// Strips the framing: returns the version symbol and the payload symbols once the
/// check symbols have matched.
fn read_symbols(input: &str) -> Result<(u8, Vec<u8>), ResetStringError> {
    if input.len() > MAX_RESET_STRING_CHARS {
        return Err(ResetStringError::TooLong {
            max: MAX_RESET_STRING_CHARS,
        });
    }
    let mut chars = input
        .chars()
        .enumerate()
        .filter(|(_, c)| *c != '-' && !c.is_whitespace());
    let prefix: String = chars.by_ref().take(PREFIX.len()).map(|(_, c)| c).collect();
    if prefix.is_empty() {
        return Err(ResetStringError::Empty);
    }
    if !prefix.eq_ignore_ascii_case(PREFIX) {
        return Err(ResetStringError::NotAResetString);
    }
    let mut symbols = Vec::new();
    for (index, c) in chars {
        symbols.push(base32::value(c).ok_or(ResetStringError::BadCharacter {
            found: c,
            position: index + 1,
        })?);
    }
    // Version symbol, at least one payload byte's worth, two check symbols.
    if symbols.len() < 1 + 2 + 2 {
        return Err(ResetStringError::TooShort);
    }
    let check_high = symbols[symbols.len() - 2];
    let check_low = symbols[symbols.len() - 1];
    symbols.truncate(symbols.len() - 2);
    if check_value(&symbols) != u32::from(check_high) * 32 + u32::from(check_low) {
        return Err(ResetStringError::Typo);
    }
    let version = symbols.remove(0);
    Ok((version, symbols))
}
