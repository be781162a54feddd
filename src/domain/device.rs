use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a device field was refused. Messages are written for the person who typed or
/// uploaded the value, so they name the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("is empty")]
    Empty,
    #[error("is {len} characters long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("is {len} characters long; at least {min} are required")]
    TooShort { len: usize, min: usize },
    #[error(
        "has a character that is not allowed ({found:?} at position {position}); allowed: {allowed}"
    )]
    BadCharacter {
        found: char,
        position: usize,
        allowed: &'static str,
    },
    #[error("is not a MAC address (expected six hex pairs such as A4:14:37:12:34:56)")]
    BadMacAddress,
}

/// Checks length and alphabet; `position` in errors is 1-based, as people count.
fn check_text(
    raw: &str,
    min: usize,
    max: usize,
    allowed: &'static str,
    is_allowed: impl Fn(char) -> bool,
) -> Result<(), FieldError> {
    if raw.is_empty() {
        return Err(FieldError::Empty);
    }
    if let Some((index, found)) = raw.chars().enumerate().find(|(_, c)| !is_allowed(*c)) {
        return Err(FieldError::BadCharacter {
            found,
            position: index + 1,
            allowed,
        });
    }
    // Every allowed character is ASCII, so bytes == characters from here on.
    let len = raw.len();
    if len > max {
        return Err(FieldError::TooLong { len, max });
    }
    if len < min {
        return Err(FieldError::TooShort { len, min });
    }
    Ok(())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

text_newtype!(
    /// A device serial number as printed on the label, e.g.
    /// `DS-7608NI-K2/8P0820231115CCRRJ12345678`: 6 to 64 characters of upper-case
    /// ASCII letters, digits and `- / . _`. Lower case is refused rather than folded,
    /// because the serial is covered by the export's MAC byte for byte.
    DeviceSerial
);

impl DeviceSerial {
    pub const MIN_LEN: usize = 6;
    pub const MAX_LEN: usize = 64;
    const ALLOWED: &'static str = "A-Z, 0-9, '-', '/', '.', '_'";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        check_text(raw, Self::MIN_LEN, Self::MAX_LEN, Self::ALLOWED, |c| {
            c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '-' | '/' | '.' | '_')
        })?;
        Ok(Self(raw.to_owned()))
    }
}

text_newtype!(
    /// A device model such as `DS-7608NI-K2`: 1 to 32 ASCII letters, digits and `- / . _ +`.
    DeviceModel
);

impl DeviceModel {
    pub const MAX_LEN: usize = 32;
    const ALLOWED: &'static str = "A-Z, a-z, 0-9, '-', '/', '.', '_', '+'";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        check_text(raw, 1, Self::MAX_LEN, Self::ALLOWED, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.' | '_' | '+')
        })?;
        Ok(Self(raw.to_owned()))
    }
}

text_newtype!(
    /// A firmware version string such as `V4.30.085 build 220323`: 1 to 48 ASCII
    /// letters, digits, spaces and `- . _ + ( )`.
    FirmwareVersion
);

impl FirmwareVersion {
    pub const MAX_LEN: usize = 48;
    const ALLOWED: &'static str = "A-Z, a-z, 0-9, space, '-', '.', '_', '+', '(', ')'";

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        check_text(raw, 1, Self::MAX_LEN, Self::ALLOWED, |c| {
            c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '.' | '_' | '+' | '(' | ')')
        })?;
        if raw.starts_with(' ') || raw.ends_with(' ') {
            // Leading or trailing spaces would survive into the MAC but not into a form field.
            return Err(FieldError::BadCharacter {
                found: ' ',
                position: if raw.starts_with(' ') { 1 } else { raw.len() },
                allowed: "spaces only between other characters",
            });
        }
        Ok(Self(raw.to_owned()))
    }
}

/// A 48-bit Ethernet MAC address, written `A4:14:37:12:34:56` (`-` separators and lower
/// case are accepted on input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    pub fn from_bytes(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let parts: Vec<&str> = raw.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(FieldError::BadMacAddress);
        }
        let mut octets = [0u8; 6];
        for (octet, part) in octets.iter_mut().zip(parts) {
            if part.len() != 2 || !part.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(FieldError::BadMacAddress);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| FieldError::BadMacAddress)?;
        }
        Ok(Self(octets))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

impl TryFrom<String> for MacAddress {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<MacAddress> for String {
    fn from(value: MacAddress) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_accepts_label_format() {
        let serial = DeviceSerial::parse("DS-7608NI-K2/8P0820231115CCRRJ12345678").unwrap();
        assert_eq!(serial.as_str(), "DS-7608NI-K2/8P0820231115CCRRJ12345678");
    }

    #[test]
    fn serial_refuses_control_characters_and_lower_case() {
        assert_eq!(
            DeviceSerial::parse("ABC\u{0}DEF"),
            Err(FieldError::BadCharacter {
                found: '\0',
                position: 4,
                allowed: DeviceSerial::ALLOWED
            })
        );
        assert!(matches!(
            DeviceSerial::parse("abcdef12"),
            Err(FieldError::BadCharacter { position: 1, .. })
        ));
        assert_eq!(DeviceSerial::parse(""), Err(FieldError::Empty));
        assert_eq!(
            DeviceSerial::parse("ABC"),
            Err(FieldError::TooShort { len: 3, min: 6 })
        );
        assert_eq!(
            DeviceSerial::parse(&"A".repeat(65)),
            Err(FieldError::TooLong { len: 65, max: 64 })
        );
    }

    #[test]
    fn firmware_refuses_edge_spaces() {
        assert!(FirmwareVersion::parse("V4.30.085 build 220323").is_ok());
        assert!(FirmwareVersion::parse(" V4").is_err());
        assert!(FirmwareVersion::parse("V4 ").is_err());
    }

    #[test]
    fn mac_address_round_trips_and_normalises() {
        let mac = MacAddress::parse("a4-14-37-12-34-5f").unwrap();
        assert_eq!(mac.to_string(), "A4:14:37:12:34:5F");
        assert_eq!(MacAddress::parse(&mac.to_string()).unwrap(), mac);
        assert_eq!(
            MacAddress::parse("A4:14:37:12:34"),
            Err(FieldError::BadMacAddress)
        );
        assert_eq!(
            MacAddress::parse("A4:14:37:12:34:GG"),
            Err(FieldError::BadMacAddress)
        );
        assert_eq!(
            MacAddress::parse("+4:14:37:12:34:56"),
            Err(FieldError::BadMacAddress)
        );
    }
}
