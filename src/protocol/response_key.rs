//! The 8-character response key a person types into the device: `XXXX-XXXX`.
//!
//! `key = first 5 bytes of HMAC-SHA256(device key, "resetdesk.response-key.v1" 0x00 ||
//! 0x01 || str8(serial) || nonce(16))`, written as 8 Crockford base32 symbols. A version 2
//! challenge's key is the same over `"resetdesk.response-key.v2" 0x00 || 0x02 ||
//! export id(16) || str8(serial) || nonce(16)`.
//! 40 bits against at most 5 guesses per challenge leaves a guesser one chance in
//! 2^37. The key has no check symbol (every symbol carries key bits): a typo is a
//! wrong key, which the device counts as a failed attempt.

use std::fmt;

use crate::crypto::{DeviceKey, constant_time_eq};
use crate::domain::DeviceSerial;
use crate::protocol::base32;
use crate::protocol::canonical::{ByteWriter, RESPONSE_KEY};
use crate::protocol::challenge::{ExportId, Nonce};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseKeyError {
    #[error("a response key has 8 characters (like 7K3M-Q9TD); this has {0}")]
    WrongLength(usize),
    #[error(
        "{found:?} at position {position} cannot appear in a response key (it uses digits and letters other than U)"
    )]
    BadCharacter { found: char, position: usize },
}

/// A 40-bit response key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ResponseKey([u8; 5]);

impl ResponseKey {
    /// Computes the key for one device and challenge; `export_id` is the export a
    /// version 2 challenge belongs to (`None` for version 1).
    pub fn derive(
        device_key: &DeviceKey,
        serial: &DeviceSerial,
        nonce: &Nonce,
        export_id: Option<&ExportId>,
    ) -> Self {
        let tag = device_key.mac(&Self::message(serial, nonce, export_id));
        let mut key = [0u8; 5];
        key.copy_from_slice(&tag.0[..5]);
        Self(key)
    }

    /// The bytes the key's HMAC covers (see the module documentation).
    pub fn message(serial: &DeviceSerial, nonce: &Nonce, export_id: Option<&ExportId>) -> Vec<u8> {
        let mut writer = ByteWriter::versioned(&RESPONSE_KEY, export_id.map(|id| &id.0));
        writer.str8(serial.as_str()).bytes(&nonce.0).finish()
    }

    /// Reads a key as typed: case, dashes, spaces and the look-alikes O/I/L are forgiven.
    pub fn parse(input: &str) -> Result<Self, ResponseKeyError> {
        let mut values = Vec::with_capacity(8);
        for (index, c) in input.chars().enumerate() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let value = base32::value(c).ok_or(ResponseKeyError::BadCharacter {
                found: c,
                position: index + 1,
            })?;
            values.push(value);
            if values.len() > 8 {
                break;
            }
        }
        if values.len() != 8 {
            let count = input
                .chars()
                .filter(|c| *c != '-' && !c.is_whitespace())
                .count();
            return Err(ResponseKeyError::WrongLength(count));
        }
        let bytes = base32::decode(&values).ok_or(ResponseKeyError::WrongLength(8))?;
        let mut key = [0u8; 5];
        key.copy_from_slice(&bytes);
        Ok(Self(key))
    }

    /// Compares in constant time.
    pub fn matches(&self, other: &ResponseKey) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl fmt::Display for ResponseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: String = base32::encode(&self.0)
            .into_iter()
            .map(base32::symbol)
            .collect();
        write!(f, "{}-{}", &text[..4], &text[4..])
    }
}

impl fmt::Debug for ResponseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> ResponseKey {
        let serial = DeviceSerial::parse("DS-TEST-0001").unwrap();
        ResponseKey::derive(
            &DeviceKey::from_bytes([3; 32]),
            &serial,
            &Nonce([4; 16]),
            None,
        )
    }

    #[test]
    fn formats_as_two_groups_of_four() {
        let text = sample().to_string();
        assert_eq!(text.len(), 9);
        assert_eq!(&text[4..5], "-");
        assert_eq!(ResponseKey::parse(&text).unwrap(), sample());
    }

    #[test]
    fn forgives_case_spaces_and_look_alikes() {
        let key = ResponseKey::parse("0011-ABCD").unwrap();
        assert_eq!(ResponseKey::parse(" ooil abcd ").unwrap(), key);
        assert_eq!(ResponseKey::parse("OOLI-abcd").unwrap(), key);
    }

    #[test]
    fn names_bad_input() {
        assert_eq!(
            ResponseKey::parse("ABC-DEF"),
            Err(ResponseKeyError::WrongLength(6))
        );
        assert_eq!(
            ResponseKey::parse("ABCD-EFGU"),
            Err(ResponseKeyError::BadCharacter {
                found: 'U',
                position: 9
            })
        );
        assert_eq!(
            ResponseKey::parse("ABCD-EFGH-J"),
            Err(ResponseKeyError::WrongLength(9))
        );
    }

    const ALL_CHARS: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*#$";

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 5]>()) {
            let key = ResponseKey(bytes);
            prop_assert_eq!(ResponseKey::parse(&key.to_string()).unwrap(), key);
        }

        /// Any single-character substitution is either forgiven (a look-alike or a case
        /// change of the same symbol) or rejected: it never yields a key that a device
        /// would accept in place of the real one.
        #[test]
        fn single_typo_is_never_accepted_as_another_key(
            bytes in any::<[u8; 5]>(),
            position in 0usize..9,
            replacement in proptest::sample::select(ALL_CHARS.chars().collect::<Vec<_>>()),
        ) {
            let key = ResponseKey(bytes);
            let mut typed: Vec<char> = key.to_string().chars().collect();
            typed[position] = replacement;
            let typed: String = typed.into_iter().collect();
            if let Ok(parsed) = ResponseKey::parse(&typed) {
                let same_symbol = position != 4
                    && base32::value(replacement) == base32::value(key.to_string().chars().nth(position).unwrap());
                prop_assert_eq!(parsed.matches(&key), same_symbol);
            }
        }
    }
}
