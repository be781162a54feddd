//! What the label says about each device of the export (issue 18, item 2).

use crate::domain::{DeviceSerial, LabelFinding};

/// The findings for one label against one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFindings {
    /// One finding per device of the export, in the export's order.
    pub devices: Vec<(DeviceSerial, LabelFinding)>,
    /// The serials on the label that the export does not name: non-empty means the
    /// `other_serial` risk, whether or not some device also matched.
    pub other_serials: Vec<DeviceSerial>,
}

impl LabelFindings {
    /// Whether the label names a device the export does not (the four-eyes flag).
    pub fn names_another_device(&self) -> bool {
        !self.other_serials.is_empty()
    }
}

/// Compares the serials read off the label with the export's. `codes_read` is whether
/// any code at all was read: codes that name no serial (a URL, a MAC) make a label
/// readable, and its devices `not_on_label` rather than `unreadable`.
///
/// A device the label does not name is `other_serial` when the label names some serial
/// outside the export (an NVR export photographed with a different NVR's label), and
/// `not_on_label` otherwise (the cameras of an NVR export whose label shows the NVR).
pub fn label_findings(
    export_serials: &[DeviceSerial],
    label_serials: &[DeviceSerial],
    codes_read: bool,
) -> LabelFindings {
    let other_serials: Vec<DeviceSerial> = label_serials
        .iter()
        .filter(|serial| !export_serials.contains(serial))
        .cloned()
        .collect();
    let devices = export_serials
        .iter()
        .map(|serial| {
            let finding = if !codes_read {
                LabelFinding::Unreadable
            } else if label_serials.contains(serial) {
                LabelFinding::Matches
            } else if !other_serials.is_empty() {
                LabelFinding::OtherSerial
            } else {
                LabelFinding::NotOnLabel
            };
            (serial.clone(), finding)
        })
        .collect();
    LabelFindings {
        devices,
        other_serials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serials(raw: &[&str]) -> Vec<DeviceSerial> {
        raw.iter()
            .map(|s| DeviceSerial::parse(s).expect("test serial"))
            .collect()
    }

    fn findings(result: &LabelFindings) -> Vec<(&str, &str)> {
        result
            .devices
            .iter()
            .map(|(serial, finding)| (serial.as_str(), finding.as_str()))
            .collect()
    }

    #[test]
    fn the_label_names_the_device() {
        let result = label_findings(&serials(&["NVR-0001"]), &serials(&["NVR-0001"]), true);
        assert_eq!(findings(&result), [("NVR-0001", "matches")]);
        assert!(!result.names_another_device());
    }

    #[test]
    fn another_devices_label_is_a_risk() {
        let result = label_findings(&serials(&["NVR-0001"]), &serials(&["NVR-9999"]), true);
        assert_eq!(findings(&result), [("NVR-0001", "other_serial")]);
        assert_eq!(result.other_serials, serials(&["NVR-9999"]));
        assert!(result.names_another_device());
    }

    #[test]
    fn an_nvr_label_matches_the_nvr_and_leaves_its_cameras_not_on_label() {
        let export = serials(&["NVR-0001", "CAM-0001", "CAM-0002"]);
        let result = label_findings(&export, &serials(&["NVR-0001"]), true);
        assert_eq!(
            findings(&result),
            [
                ("NVR-0001", "matches"),
                ("CAM-0001", "not_on_label"),
                ("CAM-0002", "not_on_label")
            ]
        );
        assert!(result.other_serials.is_empty());
    }

    #[test]
    fn a_label_with_both_its_own_and_a_foreign_serial_still_flags() {
        let export = serials(&["NVR-0001", "CAM-0001"]);
        let result = label_findings(&export, &serials(&["NVR-0001", "NVR-9999"]), true);
        assert_eq!(
            findings(&result),
            [("NVR-0001", "matches"), ("CAM-0001", "other_serial")]
        );
        assert_eq!(result.other_serials, serials(&["NVR-9999"]));
    }

    #[test]
    fn codes_without_serials_and_no_codes_at_all() {
        let export = serials(&["NVR-0001"]);
        assert_eq!(
            findings(&label_findings(&export, &[], true)),
            [("NVR-0001", "not_on_label")]
        );
        assert_eq!(
            findings(&label_findings(&export, &[], false)),
            [("NVR-0001", "unreadable")]
        );
    }
}
