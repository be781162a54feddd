//! What reading a label photo says about a device of the export (issue 18): computed
//! by `evidence`, stored by `store`, shown by the console and the API.

/// The finding for one device of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelFinding {
    /// The label names this serial.
    Matches,
    /// The label names a serial that is not in the export: another device's label, a
    /// risk for four eyes.
    OtherSerial,
    /// Codes were read, and this serial is not among them (nor any other serial).
    NotOnLabel,
    /// No code was found on the label.
    Unreadable,
}

impl LabelFinding {
    /// The name used in `evidence_findings.finding`, the API, the audit log and the
    /// metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Matches => "matches",
            Self::OtherSerial => "other_serial",
            Self::NotOnLabel => "not_on_label",
            Self::Unreadable => "unreadable",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Matches,
            Self::OtherSerial,
            Self::NotOnLabel,
            Self::Unreadable,
        ]
        .into_iter()
        .find(|f| f.as_str() == raw)
    }
}
