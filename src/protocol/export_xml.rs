//! The reset request as an XML file (version 2; version 1 has no `ExportId` and
//! `ExportedBy`):
//!
//! ```xml
//! <ResetRequest xmlns="urn:resetdesk:reset-request" version="2">
//!   <Device>
//!     <ExportId>32 hex characters, the same in every entry</ExportId>
//!     <ExportedBy>serial of the exporting device, the first entry</ExportedBy>
//!     <Model>DS-7608NI-K2</Model>
//!     <Serial>DS-7608NI-K2/8P0820231115CCRRJ12345678</Serial>
//!     <Firmware>V4.30.085 build 220323</Firmware>
//!     <MacAddress>A4:14:37:12:34:56</MacAddress>        <!-- optional -->
//!     <ReservedEmail>owner@example.com</ReservedEmail>  <!-- optional -->
//!     <Nonce>32 hex characters</Nonce>
//!     <IssuedAt>2026-11-24T22:48:25Z</IssuedAt>
//!     <Tag>64 hex characters: HMAC-SHA256 over the entry's canonical bytes</Tag>
//!   </Device>
//! </ResetRequest>
//! ```

use crate::crypto::MacTag;
use crate::domain::{
    DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, MacAddress, Timestamp,
};
use crate::protocol::challenge::{
    DeviceChallenge, DeviceIdentity, ExportBinding, ExportId, FieldProblem,
    MAX_DEVICES_PER_REQUEST, Nonce, ResetRequest,
};
use crate::protocol::xml::{self, Schema, Versions, XmlError};
use crate::protocol::{ExportError, PROTOCOL_V1, PROTOCOL_V2};

/// The fields of both versions; `ExportId` and `ExportedBy` are version 2's.
const SCHEMA: Schema = Schema {
    root: "ResetRequest",
    namespace: "urn:resetdesk:reset-request",
    record: "Device",
    fields: &[
        "ExportId",
        "ExportedBy",
        "Model",
        "Serial",
        "Firmware",
        "MacAddress",
        "ReservedEmail",
        "Nonce",
        "IssuedAt",
        "Tag",
    ],
    max_records: MAX_DEVICES_PER_REQUEST,
};

const VERSIONS: Versions = Versions {
    known: &[PROTOCOL_V1, PROTOCOL_V2],
    named: "1 and 2",
};

/// The fields only version 2 defines.
const BINDING_FIELDS: [&str; 2] = ["ExportId", "ExportedBy"];

/// Writes an export file.
pub fn to_xml(request: &ResetRequest) -> String {
    write_entries(request.devices())
}

/// Writes entries as an export file without checking that they form one export, in the
/// first entry's version. The desk never writes exports; this is for the reference
/// device through [`to_xml`], and for tests that build hostile files.
pub fn write_entries(entries: &[DeviceChallenge]) -> String {
    let version = entries
        .first()
        .map_or(PROTOCOL_V2, DeviceChallenge::version);
    let records: Vec<_> = entries
        .iter()
        .map(|device| {
            let id = &device.identity;
            let mut fields = Vec::new();
            if let Some(binding) = &device.binding {
                fields.push(("ExportId", binding.export_id.to_hex()));
                fields.push(("ExportedBy", binding.exported_by.to_string()));
            }
            fields.extend([
                ("Model", id.model.to_string()),
                ("Serial", id.serial.to_string()),
                ("Firmware", id.firmware.to_string()),
            ]);
            if let Some(mac) = &id.mac_address {
                fields.push(("MacAddress", mac.to_string()));
            }
            if let Some(email) = &id.reserved_email {
                fields.push(("ReservedEmail", email.to_string()));
            }
            fields.push(("Nonce", device.nonce.to_hex()));
            fields.push(("IssuedAt", device.issued_at.to_string()));
            fields.push(("Tag", data_encoding::HEXLOWER.encode(&device.tag.0)));
            fields
        })
        .collect();
    xml::write(&SCHEMA, version, &records)
}

/// Reads an export file. The result is parsed, not trusted: call `verify` next.
pub fn from_xml(bytes: &[u8]) -> Result<ResetRequest, ExportError> {
    let (version, records) = xml::read(&SCHEMA, &VERSIONS, bytes)?;
    let mut devices = Vec::with_capacity(records.len());
    for record in records {
        let n = record.index;
        let binding = if version == PROTOCOL_V1 {
            if let Some(field) = BINDING_FIELDS
                .into_iter()
                .find(|f| record.optional(f).is_some())
            {
                return Err(XmlError::UnexpectedElement {
                    name: field.to_owned(),
                    inside: format!("{} (version 1)", SCHEMA.record),
                }
                .into());
            }
            None
        } else {
            Some(ExportBinding {
                export_id: FieldProblem::check(
                    n,
                    "ExportId",
                    ExportId::parse_hex(record.required("ExportId")?),
                )?,
                exported_by: FieldProblem::check(
                    n,
                    "ExportedBy",
                    DeviceSerial::parse(record.required("ExportedBy")?),
                )?,
            })
        };
        let identity = DeviceIdentity {
            model: FieldProblem::check(n, "Model", DeviceModel::parse(record.required("Model")?))?,
            serial: FieldProblem::check(
                n,
                "Serial",
                DeviceSerial::parse(record.required("Serial")?),
            )?,
            firmware: FieldProblem::check(
                n,
                "Firmware",
                FirmwareVersion::parse(record.required("Firmware")?),
            )?,
            mac_address: record
                .optional("MacAddress")
                .map(|raw| FieldProblem::check(n, "MacAddress", MacAddress::parse(raw)))
                .transpose()?,
            reserved_email: record
                .optional("ReservedEmail")
                .map(|raw| FieldProblem::check(n, "ReservedEmail", EmailAddress::parse(raw)))
                .transpose()?,
        };
        let tag = data_encoding::HEXLOWER_PERMISSIVE
            .decode(record.required("Tag")?.as_bytes())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| FieldProblem {
                device: n,
                field: "Tag",
                problem: "is not 64 hex characters".to_owned(),
            })?;
        devices.push(DeviceChallenge {
            identity,
            nonce: FieldProblem::check(n, "Nonce", Nonce::parse_hex(record.required("Nonce")?))?,
            issued_at: FieldProblem::check(
                n,
                "IssuedAt",
                Timestamp::parse_rfc3339(record.required("IssuedAt")?),
            )?,
            binding,
            tag: MacTag(tag),
        });
    }
    Ok(ResetRequest::new(devices)?)
}
