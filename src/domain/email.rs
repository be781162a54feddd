use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is too long (at most 254 characters)")]
    TooLong,
    #[error("needs exactly one '@' between a name and a domain, like owner@example.com")]
    Shape,
    #[error("has a character that cannot be used in an e-mail address here ({0:?})")]
    BadCharacter(char),
    #[error("has a domain that is not a valid host name (e.g. example.com)")]
    BadDomain,
}

/// Gmail's domains: one inbox for both, and dots in the local part are ignored.
const GMAIL_DOMAINS: [&str; 2] = ["gmail.com", "googlemail.com"];

/// An e-mail address in the conservative form that is safe to put in a mail header,
/// an XML export and an HTML page without escaping surprises: the local part uses
/// `A-Z a-z 0-9 . _ % + -`, the domain is a dotted host name, stored lower case.
/// Quoted local parts and internationalised addresses are refused on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(EmailError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if let Some(bad) = raw.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@'))
        }) {
            return Err(EmailError::BadCharacter(bad));
        }
        let (local, domain) = raw.split_once('@').ok_or(EmailError::Shape)?;
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(EmailError::Shape);
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError::Shape);
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(EmailError::BadDomain);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The mailbox an address delivers to, for "is this the same person" (four eyes:
    /// nobody approves their own request): local part lower-cased and any `+tag`
    /// dropped (`Ana+x@Example.com` and `ana@example.com` are one mailbox at the
    /// providers that matter); at Gmail, which ignores dots in the local part and
    /// delivers `googlemail.com` to the same inbox, the dots go and the domain is
    /// `gmail.com` (`J.O.Smith@googlemail.com` is `josmith@gmail.com`).
    pub fn mailbox(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or((&self.0, ""));
        let local = local
            .split('+')
            .next()
            .unwrap_or(local)
            .to_ascii_lowercase();
        if GMAIL_DOMAINS.contains(&domain) {
            format!("{}@gmail.com", local.replace('.', ""))
        } else {
            format!("{local}@{domain}")
        }
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// The domains an address of the same [`Self::mailbox`] may be written with, in
    /// lower case: Gmail's two, or this one.
    pub fn mailbox_domains(&self) -> Vec<String> {
        let domain = self.domain().to_ascii_lowercase();
        if GMAIL_DOMAINS.contains(&domain.as_str()) {
            GMAIL_DOMAINS.iter().map(|d| (*d).to_owned()).collect()
        } else {
            vec![domain]
        }
    }

    /// `ana.lopez@example.com` → `a•••@example.com`: enough for the owner to recognise
    /// their own address on a page or in a mail that others may see, not enough to learn
    /// it.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}•••@{domain}")
            }
            None => "•••".to_owned(),
        }
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> String {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_domain() {
        let email = EmailAddress::parse("  Jo.Owner+cam@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Jo.Owner+cam@example.com");
        assert_eq!(email.domain(), "example.com");
    }

    #[test]
    fn mailbox_ignores_case_and_plus_tags() {
        let a = EmailAddress::parse("Ana+ticket@Example.com").unwrap();
        let b = EmailAddress::parse("ana@example.COM").unwrap();
        assert_eq!(a.mailbox(), b.mailbox());
        assert_ne!(
            a.mailbox(),
            EmailAddress::parse("anna@example.com").unwrap().mailbox()
        );
    }

    #[test]
    fn mailbox_ignores_dots_only_where_gmail_does() {
        let console = EmailAddress::parse("jo.smith@gmail.com").unwrap();
        for personal in [
            "JoSmith@gmail.com",
            "j.o.s.m.i.t.h+reset@GMAIL.com",
            "Jo.Smith@googlemail.com",
        ] {
            assert_eq!(
                EmailAddress::parse(personal).unwrap().mailbox(),
                console.mailbox(),
                "{personal}"
            );
        }
        assert_eq!(console.mailbox(), "josmith@gmail.com");
        // Elsewhere a dot is part of the name: jo.smith and josmith are two people.
        assert_ne!(
            EmailAddress::parse("jo.smith@example.com")
                .unwrap()
                .mailbox(),
            EmailAddress::parse("josmith@example.com")
                .unwrap()
                .mailbox()
        );
        assert_ne!(
            EmailAddress::parse("jo.smith@gmail.com.example.net")
                .unwrap()
                .mailbox(),
            console.mailbox()
        );
    }

    #[test]
    fn masked_shows_the_first_letter_and_the_domain() {
        let email = EmailAddress::parse("ana.lopez@Example.com").unwrap();
        assert_eq!(email.masked(), "a•••@example.com");
    }

    #[test]
    fn refuses_header_injection_and_odd_shapes() {
        assert_eq!(
            EmailAddress::parse("a@b.com\r\nBcc: x@y.com"),
            Err(EmailError::BadCharacter('\r'))
        );
        assert_eq!(EmailAddress::parse("a@b@c.com"), Err(EmailError::Shape));
        assert_eq!(EmailAddress::parse("nobody"), Err(EmailError::Shape));
        assert_eq!(
            EmailAddress::parse("a@localhost"),
            Err(EmailError::BadDomain)
        );
        assert_eq!(EmailAddress::parse("a@-x.com"), Err(EmailError::BadDomain));
        assert_eq!(
            EmailAddress::parse("<a@b.com>"),
            Err(EmailError::BadCharacter('<'))
        );
        assert_eq!(EmailAddress::parse(""), Err(EmailError::Empty));
    }
}
