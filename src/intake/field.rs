//! The fields of a submission, by the names the form and the API send them under. Those
//! names are a contract with every API client and with the form's markup
//! (`templates/pages/form.html`): they never change. Code names a field through
//! [`SubmissionField`], so a misspelt name is a compile error rather than a field that
//! is silently never read.

use crate::desk::Desk;
use crate::protocol::{reset_string, xml};

/// One field of a submission. Text fields are read into memory, file fields are
/// streamed to the spool; each has a size limit enforced while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubmissionField {
    Name,
    Email,
    Phone,
    Company,
    Country,
    Role,
    PurchaseChannel,
    /// The language the customer wrote the form in: the desk's e-mails use it.
    Language,
    /// The export, typed or pasted as the device's reset string.
    ResetString,
    /// The export, as the XML file the device wrote.
    ExportXml,
    /// The export, as a picture of the QR code on the device's screen.
    ExportQr,
    LabelPhoto,
    /// The pass for a label photo a refused form kept (`intake::kept`), sent instead of
    /// the photo.
    KeptLabelPhoto,
    /// The pass for an export file a refused form kept.
    KeptExport,
}

impl SubmissionField {
    pub const ALL: [Self; 14] = [
        Self::Name,
        Self::Email,
        Self::Phone,
        Self::Company,
        Self::Country,
        Self::Role,
        Self::PurchaseChannel,
        Self::Language,
        Self::ResetString,
        Self::ExportXml,
        Self::ExportQr,
        Self::LabelPhoto,
        Self::KeptLabelPhoto,
        Self::KeptExport,
    ];

    /// Where problems with the export as a whole are filed (none sent, or more than
    /// one): not a field anyone sends, but the name the form and the API's errors show
    /// them under, above the three ways to send an export.
    pub const EXPORT_GROUP: &'static str = "export";

    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Company => "company",
            Self::Country => "country",
            Self::Role => "role",
            Self::PurchaseChannel => "purchase_channel",
            Self::Language => "language",
            Self::ResetString => "reset_string",
            Self::ExportXml => "export_xml",
            Self::ExportQr => "export_qr",
            Self::LabelPhoto => "label_photo",
            Self::KeptLabelPhoto => "kept_label_photo",
            Self::KeptExport => "kept_export",
        }
    }

    /// The field a part of an upload names; `None` for anything else, which the upload
    /// reader refuses.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.as_str() == name)
    }

    /// Files are streamed to the spool; text is read into memory.
    pub const fn is_file(self) -> bool {
        matches!(self, Self::ExportXml | Self::ExportQr | Self::LabelPhoto)
    }

    /// One of the three ways to send the export.
    pub const fn is_export(self) -> bool {
        matches!(self, Self::ResetString | Self::ExportXml | Self::ExportQr)
    }

    /// The most bytes the field may carry: text fields by what they hold, files by the
    /// settings (the XML export by its format's own limit).
    pub fn limit(self, desk: &Desk) -> u64 {
        match self {
            Self::Name | Self::Company | Self::PurchaseChannel => 400,
            Self::Email => 254,
            Self::Phone => 64,
            Self::Country => 8,
            Self::Role => 32,
            Self::Language => 16,
            // A stored file's name (64 hex digits), its expiry and its tag.
            Self::KeptLabelPhoto | Self::KeptExport => 160,
            Self::ResetString => reset_string::MAX_RESET_STRING_CHARS as u64,
            Self::ExportXml => xml::MAX_XML_BYTES as u64,
            Self::ExportQr => desk.settings.intake.max_export_bytes,
            Self::LabelPhoto => desk.settings.intake.max_label_photo_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back_from_its_name() {
        for field in SubmissionField::ALL {
            assert_eq!(SubmissionField::from_name(field.as_str()), Some(field));
        }
        assert_eq!(
            SubmissionField::from_name(SubmissionField::EXPORT_GROUP),
            None
        );
        assert_eq!(SubmissionField::from_name("Email"), None);
    }
}
