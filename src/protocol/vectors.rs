//! Test vectors: fixed inputs run through every format, so a firmware team can check
//! its own implementation byte for byte, one file per protocol version (`v1.json`,
//! `v2.json`). `resetdesk test-vectors --out-dir docs/test-vectors` writes them; a unit
//! test fails when the code and the committed files disagree.

use serde::Serialize;

use crate::crypto::{MasterSecret, SigningKey};
use crate::domain::{
    DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, MacAddress, Timestamp,
};
use crate::protocol::challenge::{
    DeviceChallenge, DeviceIdentity, ExportBinding, ExportId, Nonce, ResetRequest,
};
use crate::protocol::response::SignedResponse;
use crate::protocol::response_key::ResponseKey;
use crate::protocol::{
    CHALLENGE_LIFETIME_SECS, DEFAULT_MAX_CLOCK_SKEW_SECS, PROTOCOL_V1, PROTOCOL_V2, export_xml,
    reset_string, response,
};

/// The protocol versions with published vectors.
pub const VERSIONS: [u8; 2] = [PROTOCOL_V1, PROTOCOL_V2];

/// One named scenario with its inputs and every derived output.
#[derive(Debug, Serialize)]
pub struct VectorSet {
    pub name: &'static str,
    pub protocol_version: u8,
    pub inputs: Inputs,
    pub signing_key: SigningKeyVector,
    pub devices: Vec<DeviceVector>,
    pub export_xml: String,
    pub reset_string: String,
    pub response_xml: String,
}

#[derive(Debug, Serialize)]
pub struct Inputs {
    pub factory_master_secret_hex: String,
    pub signing_key_seed_hex: String,
    /// Version 2: the export id the exporting device chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_id_hex: Option<String>,
    /// Version 2: the exporting device, the first of `devices`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exported_by: Option<String>,
    pub devices: Vec<DeviceInput>,
}

#[derive(Debug, Serialize)]
pub struct DeviceInput {
    pub model: String,
    pub serial: String,
    pub firmware: String,
    pub mac_address: Option<String>,
    pub reserved_email: Option<String>,
    pub nonce_hex: String,
    pub issued_at: String,
    pub issued_at_unix: i64,
}

#[derive(Debug, Serialize)]
pub struct SigningKeyVector {
    pub key_id: String,
    pub public_key_hex: String,
}

#[derive(Debug, Serialize)]
pub struct DeviceVector {
    pub serial: String,
    pub device_key_hex: String,
    pub export_entry_mac_input_hex: String,
    pub export_entry_tag_hex: String,
    pub response_key_hmac_input_hex: String,
    pub response_key: String,
    pub expires_at: String,
    pub response_signed_bytes_hex: String,
    pub response_signature_hex: String,
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

struct DeviceSpec {
    model: &'static str,
    serial: &'static str,
    firmware: &'static str,
    mac_address: Option<&'static str>,
    reserved_email: Option<&'static str>,
    nonce_byte: u8,
}

// The domain types accept every literal below; a failure is a bug in this file.
#[allow(clippy::expect_used)]
fn build(version: u8, name: &'static str, specs: &[DeviceSpec]) -> VectorSet {
    let master = MasterSecret::from_bytes(std::array::from_fn(|i| i as u8));
    let seed: [u8; 32] = std::array::from_fn(|i| 0xA0 ^ i as u8);
    let signer = SigningKey::from_seed_for_test_vectors(&seed);
    let issued_at = Timestamp::parse_rfc3339("2026-11-24T09:30:00Z").expect("literal time");
    let binding = (version == PROTOCOL_V2).then(|| ExportBinding {
        export_id: ExportId(std::array::from_fn(|i| 0xE0 ^ i as u8)),
        exported_by: DeviceSerial::parse(specs[0].serial).expect("literal serial"),
    });
    let mut inputs = Vec::new();
    let mut challenges = Vec::new();
    for spec in specs {
        let identity = DeviceIdentity {
            model: DeviceModel::parse(spec.model).expect("literal model"),
            serial: DeviceSerial::parse(spec.serial).expect("literal serial"),
            firmware: FirmwareVersion::parse(spec.firmware).expect("literal firmware"),
            mac_address: spec
                .mac_address
                .map(|m| MacAddress::parse(m).expect("literal MAC")),
            reserved_email: spec
                .reserved_email
                .map(|e| EmailAddress::parse(e).expect("literal e-mail")),
        };
        let nonce = Nonce(std::array::from_fn(|i| {
            spec.nonce_byte.wrapping_add(i as u8)
        }));
        let key = master.derive_device_key(&identity.serial);
        inputs.push(DeviceInput {
            model: spec.model.to_owned(),
            serial: spec.serial.to_owned(),
            firmware: spec.firmware.to_owned(),
            mac_address: identity.mac_address.map(|m| m.to_string()),
            reserved_email: spec.reserved_email.map(str::to_owned),
            nonce_hex: nonce.to_hex(),
            issued_at: issued_at.to_string(),
            issued_at_unix: issued_at.unix_seconds(),
        });
        challenges.push(match &binding {
            Some(binding) => {
                DeviceChallenge::issue_bound(identity, nonce, issued_at, binding.clone(), &key)
            }
            None => DeviceChallenge::issue(identity, nonce, issued_at, &key),
        });
    }
    let request = ResetRequest::new(challenges).expect("distinct literal serials");
    let mut devices = Vec::new();
    let mut signed = Vec::new();
    for challenge in request.devices() {
        let serial = &challenge.identity.serial;
        let key = master.derive_device_key(serial);
        let response = SignedResponse::sign(challenge, &signer);
        let export_id = binding.as_ref().map(|b| &b.export_id);
        devices.push(DeviceVector {
            serial: serial.to_string(),
            device_key_hex: hex(&key.to_bytes()),
            export_entry_mac_input_hex: hex(&challenge.canonical_bytes()),
            export_entry_tag_hex: hex(&challenge.tag.0),
            response_key_hmac_input_hex: hex(&ResponseKey::message(
                serial,
                &challenge.nonce,
                export_id,
            )),
            response_key: ResponseKey::derive(&key, serial, &challenge.nonce, export_id)
                .to_string(),
            expires_at: response.expires_at.to_string(),
            response_signed_bytes_hex: hex(&response.signed_bytes()),
            response_signature_hex: hex(&response.signature.0),
        });
        signed.push(response);
    }
    VectorSet {
        name,
        protocol_version: version,
        inputs: Inputs {
            factory_master_secret_hex: hex(&std::array::from_fn::<u8, 32, _>(|i| i as u8)),
            signing_key_seed_hex: hex(&seed),
            export_id_hex: binding.as_ref().map(|b| b.export_id.to_hex()),
            exported_by: binding.as_ref().map(|b| b.exported_by.to_string()),
            devices: inputs,
        },
        signing_key: SigningKeyVector {
            key_id: signer.id().to_string(),
            public_key_hex: hex(signer.public_key().bytes()),
        },
        devices,
        export_xml: export_xml::to_xml(&request),
        reset_string: reset_string::encode(&request),
        response_xml: response::to_xml(&signed),
    }
}

/// Every published vector set of protocol `version`: the same devices in each version.
pub fn generate(version: u8) -> Vec<VectorSet> {
    vec![
        build(
            version,
            "single-camera",
            &[DeviceSpec {
                model: "DS-2CD2143G2-I",
                serial: "DS-2CD2143G2-I20231115AAWRJ12345678",
                firmware: "V5.7.3 build 220112",
                mac_address: Some("A4:14:37:12:34:56"),
                reserved_email: Some("owner@example.com"),
                nonce_byte: 0x10,
            }],
        ),
        build(
            version,
            "nvr-with-two-cameras",
            &[
                DeviceSpec {
                    model: "DS-7608NI-K2",
                    serial: "DS-7608NI-K2/8P0820231115CCRRJ12345678",
                    firmware: "V4.30.085 build 220323",
                    mac_address: Some("A4:14:37:AB:CD:EF"),
                    reserved_email: None,
                    nonce_byte: 0x20,
                },
                DeviceSpec {
                    model: "DS-2CD2043G2-I",
                    serial: "DS-2CD2043G2-I20230302AAWRK00000001",
                    firmware: "V5.7.3 build 220112",
                    mac_address: None,
                    reserved_email: None,
                    nonce_byte: 0x30,
                },
                DeviceSpec {
                    model: "DS-2CD2043G2-I",
                    serial: "DS-2CD2043G2-I20230302AAWRK00000002",
                    firmware: "V5.7.3 build 220112",
                    mac_address: None,
                    reserved_email: None,
                    nonce_byte: 0x40,
                },
            ],
        ),
    ]
}

/// The file the vectors of `version` are published in.
pub fn json_file_name(version: u8) -> String {
    format!("v{version}.json")
}

/// The file a set's reset string is published in as a QR picture (version 1's names
/// predate version 2 and are kept).
pub fn qr_file_name(set: &VectorSet) -> String {
    match set.protocol_version {
        PROTOCOL_V1 => format!("{}.qr.png", set.name),
        version => format!("v{version}-{}.qr.png", set.name),
    }
}

/// The vectors of one version as the committed JSON text.
pub fn to_json(sets: &[VectorSet]) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        description: &'a str,
        challenge_lifetime_seconds: i64,
        default_max_clock_skew_seconds: i64,
        sets: &'a [VectorSet],
    }
    let version = sets.first().map_or(PROTOCOL_V1, |set| set.protocol_version);
    let description = format!(
        "resetdesk protocol v{version} test vectors; see docs/PROTOCOL.md. Generated by `resetdesk test-vectors`."
    );
    let file = File {
        description: &description,
        challenge_lifetime_seconds: CHALLENGE_LIFETIME_SECS,
        default_max_clock_skew_seconds: DEFAULT_MAX_CLOCK_SKEW_SECS,
        sets,
    };
    #[allow(clippy::expect_used)]
    let text = serde_json::to_string_pretty(&file).expect("vectors serialise");
    text + "\n"
}
