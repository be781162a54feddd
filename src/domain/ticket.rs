use std::fmt;

use serde::{Deserialize, Serialize};

use super::FieldError;

/// A ticket's public number, e.g. `RQ-7K3M-Q9TD`: `RQ` and 8 Crockford base32 symbols
/// (40 random bits), so numbers neither reveal volume nor can be walked. Parsing forgives
/// case, dashes, spaces and the look-alikes O/I/L, as people read numbers out on the phone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketNumber(String);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn crockford_fold(c: char) -> Option<char> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    CROCKFORD.contains(&(c as u8)).then_some(c)
}

impl TicketNumber {
    /// A new random number.
    pub fn generate() -> Self {
        let bytes: [u8; 5] = crate::crypto::random_bytes();
        let bits = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let symbols: String = (0..8)
            .rev()
            .map(|i| CROCKFORD[((bits >> (i * 5)) & 31) as usize] as char)
            .collect();
        Self(format!("RQ-{}-{}", &symbols[..4], &symbols[4..]))
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let compact: String = raw
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .collect();
        let upper = compact.to_ascii_uppercase();
        let body = upper.strip_prefix("RQ").ok_or(FieldError::BadCharacter {
            found: compact.chars().next().unwrap_or(' '),
            position: 1,
            allowed: "a ticket number such as RQ-7K3M-Q9TD",
        })?;
        let mut symbols = String::with_capacity(8);
        for (i, c) in body.chars().enumerate() {
            symbols.push(crockford_fold(c).ok_or(FieldError::BadCharacter {
                found: c,
                position: i + 3,
                allowed: "digits and letters other than U",
            })?);
        }
        match symbols.len() {
            8 => Ok(Self(format!("RQ-{}-{}", &symbols[..4], &symbols[4..]))),
            len if len > 8 => Err(FieldError::TooLong { len, max: 8 }),
            len => Err(FieldError::TooShort { len, min: 8 }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TicketNumber {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TicketNumber> for String {
    fn from(value: TicketNumber) -> String {
        value.0
    }
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for an agent's decision.
    Open,
    /// The customer was asked for a better label photo.
    AwaitingPhoto,
    /// Responses were signed and mailed.
    Approved,
    Rejected,
    /// A newer export from the same device replaced this one.
    Superseded,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 5] = [
        Self::Open,
        Self::AwaitingPhoto,
        Self::Approved,
        Self::Rejected,
        Self::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::AwaitingPhoto => "awaiting_photo",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Superseded => "superseded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Still waiting for someone to act.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Open | Self::AwaitingPhoto)
    }

    /// The status in two or three words, for lists.
    pub fn describe_short(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::AwaitingPhoto => "Waiting for photo",
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::Superseded => "Superseded",
        }
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the customer is in the sales chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerRole {
    EndUser,
    Installer,
    Reseller,
    Distributor,
}

impl CustomerRole {
    pub const ALL: [CustomerRole; 4] = [
        Self::EndUser,
        Self::Installer,
        Self::Reseller,
        Self::Distributor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndUser => "end_user",
            Self::Installer => "installer",
            Self::Reseller => "reseller",
            Self::Distributor => "distributor",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::EndUser => "End user",
            Self::Installer => "Installer",
            Self::Reseller => "Reseller",
            Self::Distributor => "Distributor",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw.trim())
            .ok_or(FieldError::BadCharacter {
                found: raw.chars().next().unwrap_or(' '),
                position: 1,
                allowed: "one of end_user, installer, reseller, distributor",
            })
    }
}

/// A short free-text field typed by a customer (name, company, where bought): 1 to
/// `max` characters of printable text, trimmed. Control characters (including CR and
/// LF, which could inject mail headers) are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainText(String);

impl PlainText {
    pub fn parse(raw: &str, max: usize) -> Result<Self, FieldError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(FieldError::Empty);
        }
        if let Some((index, found)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() || is_layout_control(*c))
        {
            return Err(FieldError::BadCharacter {
                found,
                position: index + 1,
                allowed: "printable text",
            });
        }
        let len = text.chars().count();
        if len > max {
            return Err(FieldError::TooLong { len, max });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text a person writes in a box of several lines (an agent's note, a customer's message):
/// line breaks kept (the Unicode line and paragraph separators become them), tabs made
/// spaces, other control characters and direction overrides dropped (they could make the text display as
/// something else in the console), trimmed, not empty, at most a given number of
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenText(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrittenTextError {
    Empty,
    TooLong { chars: usize },
}

impl WrittenText {
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, WrittenTextError> {
        let cleaned: String = raw
            .chars()
            .map(|c| match c {
                '\u{2028}' | '\u{2029}' => '\n',
                '\t' => ' ',
                other => other,
            })
            .filter(|c| *c == '\n' || !(c.is_control() || is_layout_control(*c)))
            .collect();
        let text = cleaned.trim();
        if text.is_empty() {
            return Err(WrittenTextError::Empty);
        }
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(WrittenTextError::TooLong { chars });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Direction overrides can make a name display as something else in the console; the
/// Unicode line and paragraph separators break lines as CR and LF do.
fn is_layout_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
    )
}

impl fmt::Display for PlainText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number as typed: digits, spaces and `+ - ( ) .`, 5 to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(FieldError::Empty);
        }
        if let Some((index, found)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.')))
        {
            return Err(FieldError::BadCharacter {
                found,
                position: index + 1,
                allowed: "digits, spaces and + - ( ) .",
            });
        }
        let digits = text.chars().filter(char::is_ascii_digit).count();
        if digits < 5 {
            return Err(FieldError::TooShort {
                len: digits,
                min: 5,
            });
        }
        if text.len() > 32 {
            return Err(FieldError::TooLong {
                len: text.len(),
                max: 32,
            });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 3166-1 alpha-2 country code such as `ES`, stored upper case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() != 2 || !code.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(FieldError::BadCharacter {
                found: raw
                    .chars()
                    .find(|c| !c.is_ascii_alphabetic())
                    .unwrap_or(' '),
                position: 1,
                allowed: "a two-letter country code such as ES or US",
            });
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_text_keeps_its_lines_and_drops_other_controls() {
        assert_eq!(
            WrittenText::parse("  one\ntwo\u{7}  ", 10)
                .unwrap()
                .as_str(),
            "one\ntwo"
        );
        assert_eq!(
            WrittenText::parse(" \n\t ", 10),
            Err(WrittenTextError::Empty)
        );
        assert_eq!(
            WrittenText::parse("elevenchars", 10),
            Err(WrittenTextError::TooLong { chars: 11 })
        );
        // A direction override (which shows "abc" reversed), a Unicode line separator
        // (a line break, as CR or LF make) and a tab (a space).
        assert_eq!(
            WrittenText::parse("\u{202E}cba\u{202C} ok\u{2028}next\tline", 30)
                .unwrap()
                .as_str(),
            "cba ok\nnext line"
        );
    }

    #[test]
    fn ticket_numbers_round_trip_and_forgive_typing() {
        let number = TicketNumber::generate();
        assert_eq!(TicketNumber::parse(number.as_str()).unwrap(), number);
        let sloppy = number.as_str().to_lowercase().replace('-', " ");
        assert_eq!(TicketNumber::parse(&sloppy).unwrap(), number);
        assert_eq!(
            TicketNumber::parse("rq-oooo-iiii").unwrap().as_str(),
            "RQ-0000-1111"
        );
        assert!(TicketNumber::parse("RQ-0000-111").is_err());
        assert!(TicketNumber::parse("XX-0000-1111").is_err());
        assert!(TicketNumber::parse("RQ-0000-111U").is_err());
    }

    #[test]
    fn plain_text_refuses_header_injection_and_bidi() {
        assert_eq!(
            PlainText::parse("  Ana López ", 100).unwrap().as_str(),
            "Ana López"
        );
        assert!(PlainText::parse("Ana\r\nBcc: x@y.com", 100).is_err());
        assert!(PlainText::parse("abc\u{202E}gpj.exe", 100).is_err());
        assert!(PlainText::parse(&"x".repeat(101), 100).is_err());
        assert_eq!(PlainText::parse("   ", 100), Err(FieldError::Empty));
    }

    #[test]
    fn phone_country_and_role_parse() {
        assert!(PhoneNumber::parse("+34 (91) 123-45-67").is_ok());
        assert!(PhoneNumber::parse("call me").is_err());
        assert_eq!(CountryCode::parse("es").unwrap().as_str(), "ES");
        assert!(CountryCode::parse("Spain").is_err());
        assert_eq!(
            CustomerRole::parse("installer").unwrap(),
            CustomerRole::Installer
        );
        assert!(CustomerRole::parse("hacker").is_err());
    }
}
