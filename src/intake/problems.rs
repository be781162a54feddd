//! What a customer reads when a submission is refused: each refusal of the domain and
//! protocol parsers, as a message from the catalogue (`i18n`). The parsers' own
//! `Display` texts stay technical, for logs and the command line; where nothing plainer
//! can be said (an XML export that was edited by hand), that text is passed along as a
//! detail for the support team.

use crate::domain::{EmailError, FieldError};
use crate::i18n::Message;
use crate::intake::picture_work::PictureWorkError;
use crate::protocol::{
    ChallengeError, ExportError, QrError, RequestShapeError, ResetStringError, XmlError,
};

/// A text field's value broke a rule (the form shows it next to that field).
pub fn field(error: &FieldError) -> Message {
    match error {
        FieldError::Empty => Message::new("problem.text_empty"),
        FieldError::TooLong { len, max } => Message::new("problem.text_too_long")
            .with("length", len)
            .with("max", max),
        FieldError::TooShort { len, min } => Message::new("problem.text_too_short")
            .with("length", len)
            .with("min", min),
        FieldError::BadCharacter {
            found, position, ..
        } => Message::new("problem.text_bad_character")
            .with("character", format!("{found:?}"))
            .with("position", position),
        FieldError::BadMacAddress => Message::new("problem.text_not_a_mac"),
    }
}

/// A phone number: its one rule people break is the characters it may have.
pub fn phone(error: &FieldError) -> Message {
    match error {
        FieldError::BadCharacter {
            found, position, ..
        } => Message::new("problem.phone_bad_character")
            .with("character", format!("{found:?}"))
            .with("position", position),
        other => field(other),
    }
}

pub fn email(error: &EmailError) -> Message {
    match error {
        EmailError::Empty => Message::new("problem.email_missing"),
        EmailError::TooLong => Message::new("problem.email_too_long"),
        EmailError::Shape => Message::new("problem.email_no_at"),
        EmailError::BadCharacter(c) => {
            Message::new("problem.email_bad_character").with("character", format!("{c:?}"))
        }
        EmailError::BadDomain => Message::new("problem.email_bad_domain"),
    }
}

pub fn export(error: &ExportError) -> Message {
    match error {
        ExportError::Xml(e) => xml(e),
        ExportError::ResetString(e) => reset_string(e),
        ExportError::Qr(e) => qr(e),
        ExportError::Field(problem) => Message::new("problem.export_bad_field")
            .with("device", problem.device)
            .with("detail", format!("{} {}", problem.field, problem.problem)),
        ExportError::Shape(e) => shape(e),
        ExportError::Unrecognised => Message::new("problem.export_unrecognised"),
    }
}

fn xml(error: &XmlError) -> Message {
    match error {
        XmlError::TooLarge { max } => Message::new("problem.xml_too_large").with("max", max),
        XmlError::NotUtf8 | XmlError::WrongEncoding(_) => Message::new("problem.xml_not_text"),
        XmlError::Empty => Message::new("problem.xml_empty"),
        XmlError::Doctype
        | XmlError::EntityReference
        | XmlError::Cdata
        | XmlError::ProcessingInstruction => {
            Message::new("problem.xml_forbidden").with("detail", error)
        }
        XmlError::UnsupportedVersion { found, .. } => {
            Message::new("problem.xml_wrong_version").with("found", found)
        }
        XmlError::NoRecords => Message::new("problem.export_no_devices"),
        XmlError::TooManyRecords { max } => {
            Message::new("problem.export_more_devices").with("max", max)
        }
        XmlError::WrongRoot { .. }
        | XmlError::MissingVersion { .. }
        | XmlError::WrongNamespace { .. }
        | XmlError::UnexpectedAttribute { .. }
        | XmlError::UnexpectedElement { .. }
        | XmlError::UnexpectedText { .. }
        | XmlError::DuplicateField { .. }
        | XmlError::MissingField { .. }
        | XmlError::Truncated
        | XmlError::TrailingContent
        | XmlError::Syntax(_) => Message::new("problem.xml_not_an_export").with("detail", error),
    }
}

fn reset_string(error: &ResetStringError) -> Message {
    match error {
        ResetStringError::Empty => Message::new("problem.reset_string_empty"),
        ResetStringError::TooLong { max } => {
            Message::new("problem.reset_string_too_long").with("max", max)
        }
        ResetStringError::NotAResetString => Message::new("problem.reset_string_not_one"),
        ResetStringError::BadCharacter { found, position } => {
            Message::new("problem.reset_string_bad_character")
                .with("character", format!("{found:?}"))
                .with("position", position)
        }
        ResetStringError::TooShort => Message::new("problem.reset_string_too_short"),
        ResetStringError::Typo => Message::new("problem.reset_string_typo"),
        ResetStringError::UnsupportedVersion(version) => {
            Message::new("problem.reset_string_version").with("version", version)
        }
        ResetStringError::TooManyDevices { count, max } => {
            Message::new("problem.reset_string_too_many")
                .with("count", count)
                .with("max", max)
        }
        ResetStringError::Malformed => Message::new("problem.reset_string_malformed"),
    }
}

pub fn qr(error: &QrError) -> Message {
    match error {
        QrError::NotAnImage => Message::new("problem.qr_not_a_picture"),
        QrError::TooLarge {
            width,
            height,
            max_side,
            max_pixels,
        } => Message::new("problem.qr_too_large")
            .with("width", width)
            .with("height", height)
            .with("max_side", max_side)
            .with("max_pixels", max_pixels),
        QrError::Damaged(_) => Message::new("problem.qr_damaged"),
        QrError::NoCode => Message::new("problem.qr_no_code"),
        QrError::SeveralCodes(count) => {
            Message::new("problem.qr_several_codes").with("count", count)
        }
        QrError::Unreadable => Message::new("problem.qr_unreadable"),
        QrError::NotAResetCode(what) => {
            Message::new("problem.qr_not_a_reset_code").with("what", what)
        }
        // Only the reference device makes QR codes; a reset string too long for one is
        // not something a customer sent.
        QrError::Capacity => Message::new("problem.reset_string_too_long")
            .with("max", crate::protocol::reset_string::MAX_RESET_STRING_CHARS),
    }
}

fn shape(error: &RequestShapeError) -> Message {
    match error {
        RequestShapeError::NoDevices => Message::new("problem.export_no_devices"),
        RequestShapeError::TooManyDevices { count, max } => {
            Message::new("problem.export_too_many_devices")
                .with("count", count)
                .with("max", max)
        }
        RequestShapeError::DuplicateDevice(serial) => {
            Message::new("problem.export_duplicate_device").with("serial", serial)
        }
        RequestShapeError::Stitched => Message::new("problem.export_stitched"),
        RequestShapeError::MixedVersions => Message::new("problem.export_mixed_versions"),
    }
}

/// The export parsed but the desk will not answer it.
pub fn challenge(error: &ChallengeError) -> Message {
    match error {
        ChallengeError::BadMac { serial } => {
            Message::new("problem.export_altered").with("serial", serial)
        }
        ChallengeError::Expired { serial, expired_at } => Message::new("problem.export_expired")
            .with("serial", serial)
            .with("time", expired_at.shown_utc()),
        ChallengeError::IssuedInFuture { serial, issued_at } => {
            Message::new("problem.export_in_future")
                .with("serial", serial)
                .with("time", issued_at.shown_utc())
        }
    }
}

/// A picture that could not be read, in the customer's words.
pub fn picture(error: PictureWorkError) -> Message {
    match error {
        PictureWorkError::Failed => Message::new("problem.picture_failed"),
        PictureWorkError::TooSlow => Message::new("problem.picture_too_slow"),
        PictureWorkError::Busy => Message::new("refusal.busy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    #[test]
    fn every_refusal_reads_in_every_language_with_its_values() {
        let samples = [
            field(&FieldError::TooLong { len: 250, max: 200 }),
            email(&EmailError::BadCharacter('<')),
            export(&ExportError::Qr(QrError::SeveralCodes(2))),
            export(&ExportError::ResetString(ResetStringError::BadCharacter {
                found: 'U',
                position: 17,
            })),
            export(&ExportError::Xml(XmlError::Doctype)),
        ];
        for message in &samples {
            for lang in Lang::ALL {
                let text = lang.message(message);
                assert!(!text.contains('{'), "{lang}: {text}");
            }
        }
        assert!(samples[0].english().contains("250") && samples[0].english().contains("200"));
        assert!(Lang::Es.message(&samples[3]).contains("17"));
        assert!(samples[4].english().contains("DOCTYPE"));
    }
}
