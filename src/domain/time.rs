use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("is not an RFC 3339 time such as 2026-11-24T22:48:25Z")]
    Format,
    #[error("is outside the supported range of years 1970 to 9999")]
    Range,
}

/// A point in time with whole-second precision, in UTC. The protocol signs and MACs
/// times as signed 64-bit Unix seconds, so this type holds exactly that and nothing
/// finer: what is shown is what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(i64);

impl Timestamp {
    /// 9999-12-31T23:59:59Z: keeps every value printable as a four-digit-year RFC 3339 time.
    const MAX_SECONDS: i64 = 253_402_300_799;

    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimestampError> {
        if (0..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(TimestampError::Range)
        }
    }

    pub fn unix_seconds(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc().unix_timestamp())
    }

    /// Parses RFC 3339 with any offset; fractions of a second are refused rather than
    /// silently dropped, because the signed value must equal the written one.
    pub fn parse_rfc3339(raw: &str) -> Result<Self, TimestampError> {
        let parsed = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| TimestampError::Format)?;
        if parsed.nanosecond() != 0 {
            return Err(TimestampError::Format);
        }
        Self::from_unix_seconds(parsed.unix_timestamp())
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds).clamp(0, Self::MAX_SECONDS))
    }

    /// Seconds from `earlier` to `self` (negative when `self` is before `earlier`).
    pub fn seconds_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }

    /// As pages and mails show it to people, followed by "UTC": `2026-11-30 14:05:00`.
    pub fn shown_utc(self) -> String {
        self.to_string().replace('T', " ").replace('Z', "")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = OffsetDateTime::from_unix_timestamp(self.0).map_err(|_| fmt::Error)?;
        let text = when.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl TryFrom<String> for Timestamp {
    type Error = TimestampError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse_rfc3339(&raw)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-11-24T22:48:25Z").unwrap();
        assert_eq!(t.unix_seconds(), 1_795_560_505);
        assert_eq!(t.to_string(), "2026-11-24T22:48:25Z");
        let offset = Timestamp::parse_rfc3339("2026-11-24T23:48:25+01:00").unwrap();
        assert_eq!(offset, t);
    }

    #[test]
    fn refuses_fractions_and_garbage() {
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-24T22:48:25.5Z"),
            Err(TimestampError::Format)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("yesterday"),
            Err(TimestampError::Format)
        );
        assert_eq!(Timestamp::from_unix_seconds(-1), Err(TimestampError::Range));
    }
}
