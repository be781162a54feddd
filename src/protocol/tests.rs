//! Round trips and checks across the protocol's formats.

use proptest::prelude::*;

use super::*;
use crate::crypto::{DeviceKey, MacTag, MasterSecret, PublicKeySet, SigningKey};
use crate::domain::{
    DeviceModel, DeviceSerial, EmailAddress, FirmwareVersion, MacAddress, Timestamp,
};

fn identity_strategy() -> impl Strategy<Value = DeviceIdentity> {
    (
        "[A-Za-z0-9./_+-]{1,32}",
        "[A-Z0-9./_-]{6,64}",
        "[A-Za-z0-9]([A-Za-z0-9 ._+()-]{0,46}[A-Za-z0-9])?",
        proptest::option::of(any::<[u8; 6]>()),
        proptest::option::of("[a-z0-9]{1,8}([._%+-][a-z0-9]{1,4})?@[a-z0-9]{1,10}\\.(com|es|de)"),
    )
        .prop_map(|(model, serial, firmware, mac, email)| DeviceIdentity {
            model: DeviceModel::parse(&model).unwrap(),
            serial: DeviceSerial::parse(&serial).unwrap(),
            firmware: FirmwareVersion::parse(&firmware).unwrap(),
            mac_address: mac.map(MacAddress::from_bytes),
            reserved_email: email.map(|e| EmailAddress::parse(&e).unwrap()),
        })
}

fn challenge_strategy() -> impl Strategy<Value = DeviceChallenge> {
    (
        identity_strategy(),
        any::<[u8; 16]>(),
        0i64..253_402_000_000,
        any::<[u8; 32]>(),
    )
        .prop_map(|(identity, nonce, issued_at, key)| {
            DeviceChallenge::issue(
                identity,
                Nonce(nonce),
                Timestamp::from_unix_seconds(issued_at).unwrap(),
                &DeviceKey::from_bytes(key),
            )
        })
}

fn request_strategy(max_devices: usize) -> impl Strategy<Value = ResetRequest> {
    proptest::collection::vec(challenge_strategy(), 1..=max_devices)
        .prop_filter_map("serials must differ", |devices| {
            ResetRequest::new(devices).ok()
        })
}

/// A genuine single-device export made with `master`, issued at `issued_at`.
fn genuine(master: &MasterSecret, issued_at: Timestamp) -> ResetRequest {
    let identity = DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse("DS-7608NI-K2/8P0820231115CCRRJ12345678").unwrap(),
        firmware: FirmwareVersion::parse("V4.30.085 build 220323").unwrap(),
        mac_address: Some(MacAddress::parse("A4:14:37:12:34:56").unwrap()),
        reserved_email: None,
    };
    let key = master.derive_device_key(&identity.serial);
    ResetRequest::new(vec![DeviceChallenge::issue(
        identity,
        Nonce::random(),
        issued_at,
        &key,
    )])
    .unwrap()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

const TYPO_CHARS: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-*~$=# ";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn export_xml_round_trips(request in request_strategy(4)) {
        let xml = export_xml::to_xml(&request);
        prop_assert_eq!(export_xml::from_xml(xml.as_bytes()).unwrap(), request);
    }

    #[test]
    fn reset_string_round_trips(request in request_strategy(3)) {
        let text = reset_string::encode(&request);
        prop_assert_eq!(reset_string::decode(&text).unwrap(), request.clone());
        prop_assert_eq!(reset_string::decode(&text.to_lowercase()).unwrap(), request.clone());
        prop_assert_eq!(reset_string::decode(&reset_string::compact(&text)).unwrap(), request);
    }

    /// Any single-character typo in a reset string is detected or corrected (a
    /// look-alike, a case change, a separator), never read as a different export.
    #[test]
    fn reset_string_typo_is_never_a_different_export(
        request in request_strategy(1),
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(TYPO_CHARS.chars().collect::<Vec<_>>()),
    ) {
        let text = reset_string::encode(&request);
        let mut chars: Vec<char> = text.chars().collect();
        let index = position.index(chars.len());
        chars[index] = replacement;
        let typed: String = chars.into_iter().collect();
        if let Ok(decoded) = reset_string::decode(&typed) {
            prop_assert_eq!(decoded, request);
        }
    }

    /// Swapping two neighbouring symbols is always caught.
    #[test]
    fn reset_string_swap_is_detected(
        request in request_strategy(1),
        position in any::<prop::sample::Index>(),
    ) {
        let compact: Vec<char> = reset_string::compact(&reset_string::encode(&request)).chars().collect();
        // Swaps within the symbols after the "RD" prefix.
        let i = 2 + position.index(compact.len() - 3);
        prop_assume!(compact[i] != compact[i + 1]);
        let mut swapped = compact.clone();
        swapped.swap(i, i + 1);
        let typed: String = swapped.into_iter().collect();
        prop_assert!(reset_string::decode(&typed).is_err());
    }

    #[test]
    fn mac_detects_any_changed_field(request in request_strategy(1), flip in any::<prop::sample::Index>()) {
        let master = MasterSecret::from_bytes([5; 32]);
        let device = &request.devices()[0];
        let key = master.derive_device_key(&device.identity.serial);
        let genuine = DeviceChallenge::issue(device.identity.clone(), device.nonce, device.issued_at, &key);
        prop_assert!(genuine.mac_is_valid(&master));
        let mut tampered = genuine.clone();
        let byte = flip.index(16);
        tampered.nonce.0[byte] ^= 1;
        prop_assert!(!tampered.mac_is_valid(&master));
    }

    #[test]
    fn sign_then_verify_round_trips(request in request_strategy(1), seed in any::<[u8; 32]>()) {
        let signer = SigningKey::from_seed_for_test_vectors(&seed);
        let trusted = PublicKeySet::new(vec![signer.public_key().clone()]);
        let signed = response::SignedResponse::sign(&request.devices()[0], &signer);
        let xml = response::to_xml(std::slice::from_ref(&signed));
        let read = response::from_xml(xml.as_bytes()).unwrap();
        prop_assert_eq!(&read[0], &signed);
        prop_assert_eq!(read[0].verify(&trusted), Ok(()));
    }
}

#[test]
fn verify_accepts_genuine_and_names_each_refusal() {
    let master = MasterSecret::from_bytes([1; 32]);
    let issued = at(1_800_000_000);
    let request = genuine(&master, issued);
    let serial = request.devices()[0].identity.serial.clone();

    assert!(
        request
            .clone()
            .verify(&master, issued, DEFAULT_MAX_CLOCK_SKEW_SECS)
            .is_ok()
    );
    let last_second = issued.plus_seconds(CHALLENGE_LIFETIME_SECS - 1);
    assert!(
        request
            .clone()
            .verify(&master, last_second, DEFAULT_MAX_CLOCK_SKEW_SECS)
            .is_ok()
    );

    let expired = request.clone().verify(
        &master,
        issued.plus_seconds(CHALLENGE_LIFETIME_SECS),
        DEFAULT_MAX_CLOCK_SKEW_SECS,
    );
    assert_eq!(
        expired.unwrap_err(),
        ChallengeError::Expired {
            serial: serial.clone(),
            expired_at: issued.plus_seconds(CHALLENGE_LIFETIME_SECS)
        }
    );

    let early = request.clone().verify(
        &master,
        issued.plus_seconds(-301),
        DEFAULT_MAX_CLOCK_SKEW_SECS,
    );
    assert!(matches!(early, Err(ChallengeError::IssuedInFuture { .. })));
    assert!(
        request
            .clone()
            .verify(
                &master,
                issued.plus_seconds(-300),
                DEFAULT_MAX_CLOCK_SKEW_SECS
            )
            .is_ok()
    );

    let other_master = MasterSecret::from_bytes([2; 32]);
    assert_eq!(
        request
            .verify(&other_master, issued, DEFAULT_MAX_CLOCK_SKEW_SECS)
            .unwrap_err(),
        ChallengeError::BadMac { serial }
    );
}

#[test]
fn forged_tag_is_refused_and_tampered_xml_fails_mac() {
    let master = MasterSecret::from_bytes([1; 32]);
    let issued = at(1_800_000_000);
    let request = genuine(&master, issued);
    let xml = export_xml::to_xml(&request);
    let tampered = xml.replace("V4.30.085 build 220323", "V4.30.086 build 220323");
    let parsed = export_xml::from_xml(tampered.as_bytes()).unwrap();
    assert!(matches!(
        parsed.verify(&master, issued, 300),
        Err(ChallengeError::BadMac { .. })
    ));
    let mut forged = request.devices()[0].clone();
    forged.tag = MacTag([0; 32]);
    assert!(!forged.mac_is_valid(&master));
}

#[test]
fn duplicate_serials_are_refused() {
    let master = MasterSecret::from_bytes([1; 32]);
    let device = genuine(&master, at(1_800_000_000)).devices()[0].clone();
    assert_eq!(
        ResetRequest::new(vec![device.clone(), device.clone()]).unwrap_err(),
        RequestShapeError::DuplicateDevice(device.identity.serial)
    );
    assert_eq!(
        ResetRequest::new(vec![]).unwrap_err(),
        RequestShapeError::NoDevices
    );
}

#[test]
fn qr_png_round_trips_in_alphanumeric_mode() {
    let master = MasterSecret::from_bytes([1; 32]);
    let request = genuine(&master, at(1_800_000_000));
    let text = reset_string::encode(&request);
    let png = qr::encode_png(&text).unwrap();
    let read = qr::read_image(&png).unwrap();
    assert_eq!(read, reset_string::compact(&text));
    assert_eq!(ExportInput::sniff(&png).unwrap().decode().unwrap(), request);
}

#[test]
fn qr_reader_refuses_non_images_and_empty_pictures() {
    assert_eq!(
        qr::read_image(b"%PDF-1.7 ...").unwrap_err(),
        QrError::NotAnImage
    );
    let blank = image::GrayImage::from_pixel(200, 200, image::Luma([255]));
    let mut png = Vec::new();
    blank
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(qr::read_image(&png).unwrap_err(), QrError::NoCode);
}

#[test]
fn reset_string_errors_are_precise() {
    let master = MasterSecret::from_bytes([1; 32]);
    let text = reset_string::encode(&genuine(&master, at(1_800_000_000)));
    assert_eq!(
        reset_string::decode("hello world").unwrap_err(),
        ExportError::ResetString(ResetStringError::NotAResetString)
    );
    assert_eq!(
        reset_string::decode("").unwrap_err(),
        ExportError::ResetString(ResetStringError::Empty)
    );
    let with_u = format!("{}U{}", &text[..7], &text[8..]);
    assert_eq!(
        reset_string::decode(&with_u).unwrap_err(),
        ExportError::ResetString(ResetStringError::BadCharacter {
            found: 'U',
            position: 8
        })
    );
    let truncated = &text[..text.len() - 6];
    assert_eq!(
        reset_string::decode(truncated).unwrap_err(),
        ExportError::ResetString(ResetStringError::Typo)
    );
    let huge = "RD".to_owned() + &"0".repeat(10_000);
    assert!(matches!(
        reset_string::decode(&huge).unwrap_err(),
        ExportError::ResetString(ResetStringError::TooLong { .. })
    ));
}

#[test]
fn sniff_tells_the_forms_apart() {
    assert!(matches!(
        ExportInput::sniff(b"  <?xml version=\"1.0\"?>"),
        Ok(ExportInput::Xml(_))
    ));
    assert!(matches!(
        ExportInput::sniff(b"RD1AB-CDEFG"),
        Ok(ExportInput::ResetString(_))
    ));
    assert!(matches!(
        ExportInput::sniff(b"\x89PNG\r\n\x1a\nrest"),
        Ok(ExportInput::QrImage(_))
    ));
    assert!(matches!(
        ExportInput::sniff(b"\xff\xd8\xff\xe0"),
        Ok(ExportInput::QrImage(_))
    ));
    assert_eq!(
        ExportInput::sniff(b"\xff\xfe\x00").unwrap_err(),
        ExportError::Unrecognised
    );
    assert_eq!(
        ExportInput::sniff(b"   ").unwrap_err(),
        ExportError::Unrecognised
    );
}

#[test]
fn response_refusals_are_typed() {
    let master = MasterSecret::from_bytes([1; 32]);
    let request = genuine(&master, at(1_800_000_000));
    let signer = SigningKey::from_seed_for_test_vectors(&[1; 32]);
    let other = SigningKey::from_seed_for_test_vectors(&[2; 32]);
    let signed = response::SignedResponse::sign(&request.devices()[0], &signer);
    let only_other = PublicKeySet::new(vec![other.public_key().clone()]);
    assert_eq!(
        signed.verify(&only_other),
        Err(SignatureError::UnknownKeyId(signer.id().clone()))
    );
    let trusted = PublicKeySet::new(vec![signer.public_key().clone()]);
    let mut altered = signed.clone();
    altered.expires_at = altered.expires_at.plus_seconds(3600);
    assert_eq!(altered.verify(&trusted), Err(SignatureError::BadSignature));
    let mut relabelled = signed;
    relabelled.key_id = other.id().clone();
    let both = PublicKeySet::new(vec![
        signer.public_key().clone(),
        other.public_key().clone(),
    ]);
    assert_eq!(relabelled.verify(&both), Err(SignatureError::BadSignature));
}

#[test]
fn committed_test_vectors_match_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/test-vectors");
    for version in vectors::VERSIONS {
        let name = vectors::json_file_name(version);
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_else(|_| {
            panic!("docs/test-vectors/{name} exists: run `resetdesk test-vectors --out-dir docs/test-vectors`")
        });
        let sets = vectors::generate(version);
        assert_eq!(
            committed,
            vectors::to_json(&sets),
            "the code no longer produces the published vectors of version {version}"
        );
        for set in &sets {
            let png = std::fs::read(dir.join(vectors::qr_file_name(set))).unwrap();
            assert_eq!(
                qr::read_image(&png).unwrap(),
                reset_string::compact(&set.reset_string)
            );
        }
    }
}

#[test]
fn test_vectors_verify_and_respond_consistently() {
    let master = MasterSecret::from_bytes(std::array::from_fn(|i| i as u8));
    let signer = SigningKey::from_seed_for_test_vectors(&std::array::from_fn(|i| 0xA0 ^ i as u8));
    for set in vectors::VERSIONS.into_iter().flat_map(vectors::generate) {
        let from_xml = export_xml::from_xml(set.export_xml.as_bytes()).unwrap();
        let from_string = reset_string::decode(&set.reset_string).unwrap();
        assert_eq!(from_xml, from_string);
        let issued = from_xml.devices()[0].issued_at;
        let verified = from_xml.verify(&master, issued, 300).unwrap();
        let responses = respond(&verified, &master, &signer);
        for (response, vector) in responses.iter().zip(&set.devices) {
            assert_eq!(response.key.to_string(), vector.response_key);
        }
    }
}
