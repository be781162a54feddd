//! How a setting's text becomes its value: the refusal a section gives, and the parsers
//! the sections share, so each setting's line in config.rs says only its name, its field
//! and its rule.

use std::str::FromStr;

use super::Secret;

/// One section's part in loading: takes the settings it names, from text.
pub(super) trait Section {
    fn set(&mut self, name: &str, value: &str) -> Result<(), Refusal>;
}

/// Why a section did not take a value.
pub(super) enum Refusal {
    /// The name is another section's, or no setting's.
    NotMine,
    /// The value is wrong for the reason given.
    Invalid(&'static str),
    /// A secret's value is wrong: the reason may be told, the value never.
    InvalidSecret(&'static str),
}

/// A number, `_` allowed between digits, that `ok` accepts.
pub(super) fn number<T: FromStr>(
    value: &str,
    ok: impl Fn(&T) -> bool,
    reason: &'static str,
) -> Result<T, Refusal> {
    value
        .trim()
        .replace('_', "")
        .parse()
        .ok()
        .filter(ok)
        .ok_or(Refusal::Invalid(reason))
}

pub(super) fn parsed<T: FromStr>(value: &str, reason: &'static str) -> Result<T, Refusal> {
    value.parse().map_err(|_| Refusal::Invalid(reason))
}

pub(super) fn yes_no(value: &str) -> Result<bool, Refusal> {
    match value.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Refusal::Invalid("expected true or false")),
    }
}

/// An http:// or https:// URL, without a trailing slash.
pub(super) fn http_url(value: &str) -> Result<String, Refusal> {
    let url = value.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Refusal::Invalid("expected an http:// or https:// URL"));
    }
    Ok(url.to_owned())
}

/// A credential that `ok` accepts; refused, it is not repeated in the error.
pub(super) fn secret(
    value: &str,
    ok: impl Fn(&str) -> bool,
    reason: &'static str,
) -> Result<Secret, Refusal> {
    if !ok(value) {
        return Err(Refusal::InvalidSecret(reason));
    }
    Ok(Secret::new(value))
}

/// Items separated by commas or spaces.
pub(super) fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split([',', ' ']).filter(|item| !item.is_empty())
}

/// Domains separated by commas or spaces (a leading `@` allowed), lower-cased.
pub(super) fn domains(value: &str) -> Result<Vec<String>, Refusal> {
    let domains: Vec<String> = list(value)
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    if domains.iter().any(|d| !d.contains('.') || d.contains('@')) {
        return Err(Refusal::Invalid(
            "expected domains separated by commas, such as example.com, mail.example.net",
        ));
    }
    Ok(domains)
}
