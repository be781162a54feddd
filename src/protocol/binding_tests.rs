//! Protocol version 2: entries bound to their export. Each test is an attack the
//! binding must stop (an entry copied between exports) or a round trip it must keep.

use super::*;
use crate::crypto::{MasterSecret, PublicKeySet, SigningKey};
use crate::device::{self, DeviceState, ImportRefusal};
use crate::domain::{DeviceModel, DeviceSerial, FirmwareVersion, Timestamp};

fn master() -> MasterSecret {
    MasterSecret::from_bytes([42; 32])
}

fn signer() -> SigningKey {
    SigningKey::from_seed_for_test_vectors(&[7; 32])
}

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-12-01T10:00:00Z").unwrap()
}

fn provisioned(serial: &str) -> DeviceState {
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V4.30.085").unwrap(),
        mac_address: None,
        reserved_email: None,
    };
    let trusted = PublicKeySet::new(vec![signer().public_key().clone()]);
    device::provision(identity, &master(), trusted)
}

fn export(state: &mut DeviceState, cameras: usize, version: u8) -> ResetRequest {
    // The simulator's firmware generation, as if the device had been flashed with it.
    state.protocol = version;
    device::export(state, cameras, Some(&master()), now()).unwrap()
}

/// The entries of `into` with `foreign` put in at `position`, as an attacker edits XML.
fn stitched(into: &ResetRequest, foreign: &DeviceChallenge, position: usize) -> Vec<u8> {
    let mut entries = into.devices().to_vec();
    entries.insert(position.min(entries.len()), foreign.clone());
    export_xml::write_entries(&entries).into_bytes()
}

#[test]
fn a_v2_export_round_trips_through_xml_and_reset_string() {
    let mut nvr = provisioned("NVR-OWNER-0001");
    let request = export(&mut nvr, 2, PROTOCOL_V2);
    assert_eq!(request.version(), PROTOCOL_V2);
    let binding = request.binding().unwrap().clone();
    assert_eq!(binding.exported_by.as_str(), "NVR-OWNER-0001");
    assert!(
        request
            .devices()
            .iter()
            .all(|d| d.binding.as_ref() == Some(&binding))
    );

    let xml = export_xml::to_xml(&request);
    assert!(xml.contains(r#"version="2""#) && xml.contains("<ExportId>"));
    assert_eq!(export_xml::from_xml(xml.as_bytes()).unwrap(), request);
    let string = reset_string::encode(&request);
    assert!(string.starts_with("RD2"));
    assert_eq!(reset_string::decode(&string).unwrap(), request);
    request.verify(&master(), now(), 300).unwrap();
}

#[test]
fn the_binding_is_inside_the_mac() {
    let mut nvr = provisioned("NVR-OWNER-0001");
    let request = export(&mut nvr, 1, PROTOCOL_V2);
    // Re-labelling every entry as another export keeps the shape but breaks each MAC.
    let mut devices = request.devices().to_vec();
    for device in &mut devices {
        device.binding.as_mut().unwrap().export_id = ExportId([9; 16]);
    }
    let request = ResetRequest::new(devices).unwrap();
    assert!(matches!(
        request.verify(&master(), now(), 300),
        Err(ChallengeError::BadMac { .. })
    ));
}

#[test]
fn an_entry_copied_from_another_export_is_refused_as_stitched() {
    let mut own = provisioned("NVR-ATTACKER-01");
    let mut victim = provisioned("CAM-VICTIM-0001");
    for cameras in [1, 4, 16] {
        let mine = export(&mut own, cameras, PROTOCOL_V2);
        let theirs = export(&mut victim, 0, PROTOCOL_V2);
        for position in [0, 1 + cameras / 2, cameras + 1] {
            let file = stitched(&mine, &theirs.devices()[0], position);
            assert_eq!(
                export_xml::from_xml(&file),
                Err(ExportError::Shape(RequestShapeError::Stitched)),
                "{} devices, the foreign one at {position}",
                cameras + 2
            );
        }
    }
}

#[test]
fn an_export_whose_first_entry_is_not_the_exporter_is_refused() {
    let mut nvr = provisioned("NVR-OWNER-0001");
    let request = export(&mut nvr, 2, PROTOCOL_V2);
    let mut reordered = request.devices().to_vec();
    reordered.swap(0, 1);
    assert_eq!(
        ResetRequest::new(reordered).unwrap_err(),
        RequestShapeError::Stitched
    );
}

#[test]
fn a_foreign_entry_spliced_into_a_v2_reset_string_fails_its_mac() {
    let mut own = provisioned("NVR-ATTACKER-01");
    let mut victim = provisioned("CAM-VICTIM-0001");
    let mine = export(&mut own, 1, PROTOCOL_V2);
    let theirs = export(&mut victim, 0, PROTOCOL_V2);
    // The string carries the binding once: the victim's entry, read under the
    // attacker's binding, no longer matches the bytes its device MACed.
    let mut entries = mine.devices().to_vec();
    let mut foreign = theirs.devices()[0].clone();
    foreign.binding = mine.binding().cloned();
    entries.push(foreign);
    let spliced = ResetRequest::new(entries).unwrap();
    let string = reset_string::encode(&spliced);
    let decoded = reset_string::decode(&string).unwrap();
    assert_eq!(
        decoded.verify(&master(), now(), 300).unwrap_err(),
        ChallengeError::BadMac {
            serial: DeviceSerial::parse("CAM-VICTIM-0001").unwrap()
        }
    );
}

#[test]
fn versions_cannot_be_mixed_in_one_export() {
    let mut nvr = provisioned("NVR-OWNER-0001");
    let mut camera = provisioned("CAM-OTHER-00001");
    let v2 = export(&mut nvr, 0, PROTOCOL_V2);
    let v1 = export(&mut camera, 0, PROTOCOL_V1);
    let mixed = vec![v2.devices()[0].clone(), v1.devices()[0].clone()];
    assert_eq!(
        ResetRequest::new(mixed).unwrap_err(),
        RequestShapeError::MixedVersions
    );
    // Version 1 files may not carry version 2's fields.
    let text = export_xml::to_xml(&v1).replace(
        "<Model>",
        "<ExportId>00000000000000000000000000000000</ExportId><Model>",
    );
    assert!(matches!(
        export_xml::from_xml(text.as_bytes()),
        Err(ExportError::Xml(xml::XmlError::UnexpectedElement { .. }))
    ));
}

#[test]
fn a_v2_export_is_answered_in_v2_and_the_device_takes_only_that() {
    let mut nvr = provisioned("NVR-OWNER-0001");
    let request = export(&mut nvr, 1, PROTOCOL_V2);
    let verified = request.clone().verify(&master(), now(), 300).unwrap();
    let responses = respond(&verified, &master(), &signer());
    let signed: Vec<_> = responses.iter().map(|r| r.signed.clone()).collect();
    assert!(
        signed
            .iter()
            .all(|s| s.export_id == Some(request.binding().unwrap().export_id))
    );
    let file = response::to_xml(&signed);
    assert!(file.contains(r#"version="2""#) && file.contains("<ExportId>"));
    assert_eq!(response::from_xml(file.as_bytes()).unwrap(), signed);

    // A version 1 answer to the same challenge (as a desk that ignored the binding
    // would sign) is not what the device asked for.
    let mut unbound = signed.clone();
    for (entry, challenge) in unbound.iter_mut().zip(request.devices()) {
        let mut v1 = challenge.clone();
        v1.binding = None;
        *entry = SignedResponse::sign(&v1, &signer());
    }
    let mut copy = nvr.clone();
    let report = device::import_response(
        &mut copy,
        response::to_xml(&unbound).as_bytes(),
        "new password 1",
        now(),
    )
    .unwrap();
    assert!(matches!(report[0].1, Err(ImportRefusal::NotCurrent(_))));

    // The typed key of version 2 covers the export id too.
    let v1_key = ResponseKey::derive(
        &master().derive_device_key(&responses[0].serial),
        &responses[0].serial,
        &request.devices()[0].nonce,
        None,
    );
    assert_ne!(v1_key, responses[0].key);
    let mut copy = nvr.clone();
    assert!(matches!(
        device::import_key(
            &mut copy,
            None,
            &v1_key.to_string(),
            "new password 1",
            now()
        ),
        Err(ImportRefusal::WrongKey { .. })
    ));

    // The real answer opens both units.
    let report =
        device::import_response(&mut nvr, file.as_bytes(), "new password 1", now()).unwrap();
    assert_eq!(report.len(), 2);
    assert!(report.iter().all(|(_, outcome)| outcome.is_ok()));
}

#[test]
fn a_v1_export_is_still_answered_in_v1() {
    let mut camera = provisioned("CAM-FIELD-00001");
    let request = export(&mut camera, 0, PROTOCOL_V1);
    assert!(export_xml::to_xml(&request).contains(r#"version="1""#));
    assert!(reset_string::encode(&request).starts_with("RD1"));
    let verified = request.verify(&master(), now(), 300).unwrap();
    let responses = respond(&verified, &master(), &signer());
    assert_eq!(responses[0].signed.export_id, None);
    let file = response::to_xml(&[responses[0].signed.clone()]);
    assert!(file.contains(r#"version="1""#) && !file.contains("ExportId"));
    device::import_key(
        &mut camera,
        None,
        &responses[0].key.to_string(),
        "new password 1",
        now(),
    )
    .unwrap();
}
