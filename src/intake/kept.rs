//! Files a refused form keeps for its retry. A customer who typed an address wrong should
//! not have to find and choose the label photo and the export again: each file that
//! passed its checks is stored, and the form answers with a pass for it (a hidden field,
//! `kept_label_photo` or `kept_export`) in place of the file. The retry sends the pass;
//! the file is read back and checked again as if it had been sent, so a pass changes no
//! check. A pass is bound by the desk's secret to its field and file and lasts
//! [`KEPT_SECS`]; a file no ticket ever names is removed by the blob sweeper
//! (`blob_sweep_grace_secs`, an hour by default) like any other upload.

use std::collections::BTreeMap;

use super::{FieldIssue, RawSubmission, SubmissionField, spool::Upload};
use crate::desk::Desk;

/// How long a refused form's files are kept for its retry.
pub const KEPT_SECS: i64 = 30 * 60;

/// A file kept for the retry: the field it was sent in and the pass that brings it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    /// The file's field (`label_photo`, `export_xml`, `export_qr`).
    pub field: SubmissionField,
    /// The value of the pass's hidden field: `<stored name>.<token>`.
    pub pass: String,
}

impl KeptFile {
    /// The hidden field the pass travels in.
    pub fn pass_field(&self) -> SubmissionField {
        pass_field_of(self.field)
    }
}

fn pass_field_of(file: SubmissionField) -> SubmissionField {
    if file == SubmissionField::LabelPhoto {
        SubmissionField::KeptLabelPhoto
    } else {
        SubmissionField::KeptExport
    }
}

/// Stores each file of a refused submission that passed its own checks (no issue names
/// it, nor, for an export, the export as a whole) and returns its pass. A file that came
/// back from a pass is not stored again: its stored copy gets a new pass, so sending
/// one pass over and over stores nothing more. A file that cannot be stored is simply
/// not kept: the customer chooses it again.
pub async fn keep(
    desk: &Desk,
    files: &BTreeMap<SubmissionField, Upload>,
    restored: &Restored,
    issues: &[FieldIssue],
) -> Vec<KeptFile> {
    let faulted = |field: SubmissionField| {
        issues.iter().any(|issue| {
            issue.field == field.as_str()
                || (field.is_export() && issue.field == SubmissionField::EXPORT_GROUP)
        })
    };
    let expires_at = desk.clock.now().unix_seconds() + KEPT_SECS;
    let mut kept = Vec::new();
    for (field, upload) in files {
        if upload.is_empty() || faulted(*field) {
            continue;
        }
        let stored = match restored.0.get(field) {
            Some(blob) => Ok(blob.clone()),
            None => desk.blobs.put_upload(upload, upload.len()).await,
        };
        match stored {
            Ok(blob) => {
                let token =
                    desk.keys
                        .desk_secret
                        .kept_file_token(field.as_str(), &blob, expires_at);
                kept.push(KeptFile {
                    field: *field,
                    pass: format!("{blob}.{token}"),
                });
            }
            Err(error) => {
                tracing::warn!(field = field.as_str(), %error, "a refused form's file could not be kept");
            }
        }
    }
    kept
}

/// The stored files a retry's passes brought back, by field.
#[derive(Debug, Default)]
pub struct Restored(BTreeMap<SubmissionField, String>);

/// Puts back the files whose passes the retry sent, where it sent no new file of its own
/// for that field; a pass that is forged, expired or for another field brings nothing
/// back (the form then asks for the file as if none had been kept). The passes are
/// taken out of the submission either way.
pub async fn restore(desk: &Desk, raw: &mut RawSubmission) -> Restored {
    let now = desk.clock.now().unix_seconds();
    let mut restored = Restored::default();
    for pass_field in [SubmissionField::KeptLabelPhoto, SubmissionField::KeptExport] {
        let Some(pass) = raw.text.remove(&pass_field) else {
            continue;
        };
        let Some((blob, token)) = pass.trim().split_once('.') else {
            continue;
        };
        let candidates: &[SubmissionField] = if pass_field == SubmissionField::KeptLabelPhoto {
            &[SubmissionField::LabelPhoto]
        } else {
            &[SubmissionField::ExportXml, SubmissionField::ExportQr]
        };
        let Some(field) = candidates.iter().copied().find(|field| {
            desk.keys
                .desk_secret
                .kept_file_is_valid(field.as_str(), blob, token, now)
        }) else {
            tracing::info!(
                field = pass_field.as_str(),
                "a kept file's pass was not accepted"
            );
            continue;
        };
        // A new file for the field wins; for the export, any other way of sending it.
        let sent_anew = if field == SubmissionField::LabelPhoto {
            raw.files.get(&field).is_some_and(|u| !u.is_empty())
        } else {
            [SubmissionField::ExportXml, SubmissionField::ExportQr]
                .iter()
                .any(|f| raw.files.get(f).is_some_and(|u| !u.is_empty()))
                || raw
                    .text
                    .get(&SubmissionField::ResetString)
                    .is_some_and(|t| !t.trim().is_empty())
        };
        if sent_anew {
            continue;
        }
        match desk.blobs.get(blob).await {
            Ok(bytes) => {
                raw.files.insert(field, Upload::from_bytes(bytes));
                restored.0.insert(field, blob.to_owned());
            }
            Err(error) => {
                tracing::warn!(field = field.as_str(), %error, "a kept file could not be read back");
            }
        }
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_has_its_pass_field() {
        assert_eq!(
            pass_field_of(SubmissionField::LabelPhoto),
            SubmissionField::KeptLabelPhoto
        );
        assert_eq!(
            pass_field_of(SubmissionField::ExportQr),
            SubmissionField::KeptExport
        );
        assert_eq!(
            pass_field_of(SubmissionField::ExportXml),
            SubmissionField::KeptExport
        );
    }
}
