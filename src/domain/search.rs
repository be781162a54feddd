//! Searching tickets: what an agent typed, and what of a ticket it is matched against.
//!
//! A search is a case-insensitive substring of a ticket's number, its customer's name or
//! e-mail, or any of its serials, so "Ana", "RQ-8K8F" and the last eight characters of a
//! serial all find their tickets. Both backends serve it from a trigram index over one
//! stored text per ticket ([`TicketSearchText`]), which is why a search needs
//! [`SearchText::MIN_CHARS`] characters: a shorter one would have no trigram to look up.

use std::fmt;

use super::TicketNumber;

/// A search as typed, parsed: control characters dropped, trimmed, lowercase, at least
/// [`Self::MIN_CHARS`] and at most [`Self::MAX_CHARS`] characters. A whole ticket
/// number, however it was typed ("rq7k3mq9td", "RQ-7K3M-Q9TO"), becomes its written form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchError {
    /// Nothing to search for once spaces and control characters are gone.
    Empty,
    TooShort {
        chars: usize,
    },
    TooLong {
        chars: usize,
    },
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "type something to search for"),
            Self::TooShort { chars } => write!(
                f,
                "type at least {} characters to search ({chars} typed): part of a ticket number, a serial, a name or an e-mail",
                SearchText::MIN_CHARS
            ),
            Self::TooLong { chars } => write!(
                f,
                "a search is at most {} characters ({chars} typed)",
                SearchText::MAX_CHARS
            ),
        }
    }
}

impl std::error::Error for SearchError {}

impl SearchText {
    /// Three characters make the one trigram an index can look up.
    pub const MIN_CHARS: usize = 3;
    /// Longer than any number, serial, name or address a ticket holds.
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, SearchError> {
        let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
        let trimmed = cleaned.trim();
        if trimmed.is_empty() {
            return Err(SearchError::Empty);
        }
        let chars = trimmed.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(SearchError::TooShort { chars });
        }
        if chars > Self::MAX_CHARS {
            return Err(SearchError::TooLong { chars });
        }
        let text = match TicketNumber::parse(trimmed) {
            Ok(number) => number.as_str().to_lowercase(),
            Err(_) => trimmed.to_lowercase(),
        };
        Ok(Self(text))
    }

    /// `None` for a missing or blank search; an error for one that cannot be searched.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, SearchError> {
        match raw {
            None => Ok(None),
            Some(raw) => match Self::parse(raw) {
                Ok(search) => Ok(Some(search)),
                Err(SearchError::Empty) => Ok(None),
                Err(other) => Err(other),
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What of a ticket a search is matched against, stored with it (`tickets.search_text`)
/// under a trigram index: its number (as written and without hyphens), the customer's name
/// and e-mail and every serial, lowercase, one per line. A line break never occurs in a
/// [`SearchText`], so a search cannot match across two fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSearchText(String);

impl TicketSearchText {
    pub fn of<'a>(
        number: &TicketNumber,
        customer_name: &str,
        customer_email: &str,
        serials: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut lines = vec![
            number.as_str().to_owned(),
            number.as_str().replace('-', ""),
            customer_name.to_owned(),
            customer_email.to_owned(),
        ];
        lines.extend(serials.into_iter().map(str::to_owned));
        let text = lines
            .iter()
            .map(|line| line.replace(['\n', '\r'], " ").to_lowercase())
            .collect::<Vec<_>>()
            .join("\n");
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number() -> TicketNumber {
        TicketNumber::parse("RQ-7K3M-Q9TD").unwrap()
    }

    #[test]
    fn a_search_is_trimmed_lowercase_and_long_enough_for_a_trigram() {
        assert_eq!(SearchText::parse("  Ana\t").unwrap().as_str(), "ana");
        assert_eq!(SearchText::parse("An\u{0}a").unwrap().as_str(), "ana");
        assert_eq!(
            SearchText::parse("an"),
            Err(SearchError::TooShort { chars: 2 })
        );
        assert_eq!(SearchText::parse(" \u{7} "), Err(SearchError::Empty));
        assert_eq!(
            SearchText::parse(&"x".repeat(101)),
            Err(SearchError::TooLong { chars: 101 })
        );
        assert_eq!(SearchText::parse("ñoñ").unwrap().as_str(), "ñoñ");
        assert_eq!(SearchText::parse_optional(Some("  ")), Ok(None));
        assert_eq!(SearchText::parse_optional(None), Ok(None));
        assert!(
            SearchError::TooShort { chars: 2 }
                .to_string()
                .contains("at least 3 characters")
        );
    }

    #[test]
    fn a_whole_ticket_number_is_searched_as_written() {
        for typed in ["rq7k3mq9td", "RQ-7K3M-Q9TD", "rq 7k3m q9td"] {
            assert_eq!(SearchText::parse(typed).unwrap().as_str(), "rq-7k3m-q9td");
        }
    }

    #[test]
    fn the_stored_text_holds_every_field_on_its_own_line() {
        let text = TicketSearchText::of(
            &number(),
            "Ana\nSilva",
            "Ana@Example.com",
            ["DS-2CD2143G2-I/BA1234567", "DS-7608NI-K2/8P08"],
        );
        assert_eq!(
            text.as_str(),
            "rq-7k3m-q9td\nrq7k3mq9td\nana silva\nana@example.com\nds-2cd2143g2-i/ba1234567\nds-7608ni-k2/8p08"
        );
    }
}
