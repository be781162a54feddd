//! Issue 18: the reference device prints its rating label, and the desk's reader reads it
//! back, from the flat PNG and from a phone's 12 MP photo of it: the device's own label
//! → `matches`, another device's label → `other_serial`, a label without codes →
//! `unreadable`. Also the fixture the evidence worker's tests need: a JPEG damaged in its
//! entropy-coded data, whose structure still passes intake's check.

use std::fs;
use std::time::Instant;

use resetdesk::domain::{DeviceSerial, LabelFinding};
use resetdesk::evidence::{self, LabelFindings};
use resetdesk::intake::photo;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::support::Sandbox;

const SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";
const OTHER_SERIAL: &str = "DS-7608NI-K2/8P0820240202CCRRJ87654321";
const TWELVE_MEGAPIXELS: u64 = 4000 * 3000;

fn serial(raw: &str) -> DeviceSerial {
    DeviceSerial::parse(raw).expect("test serial")
}

/// A sandbox with keys and one provisioned NVR, provisioned without a MAC address (the
/// label derives one).
fn provisioned() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.run(&["keys", "init"]).ok();
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            SERIAL,
            "--model",
            "DS-7608NI-K2",
            "--state",
            "nvr.json",
        ])
        .ok();
    sandbox
}

/// Runs `device label` with `options` and returns the file it wrote.
fn print_label(sandbox: &Sandbox, out: &str, options: &[&str]) -> Vec<u8> {
    let mut args = vec!["device", "label", "--state", "nvr.json", "--out", out];
    args.extend_from_slice(options);
    let run = sandbox.run(&args).ok();
    assert!(run.stdout.contains("printed the label"), "{}", run.stdout);
    fs::read(sandbox.path(out)).expect("the label file")
}

/// What the evidence worker will do with a photo: decode, read the codes, take the
/// serials out, compare with the export's.
fn findings(picture: &[u8], export: &[&str]) -> LabelFindings {
    let image = image::load_from_memory(picture).expect("a picture");
    let started = Instant::now();
    let codes = evidence::read_codes(&image);
    eprintln!(
        "{}x{}: read {:?} in {:?}",
        image.width(),
        image.height(),
        codes,
        started.elapsed()
    );
    let label_serials = evidence::serials_in(&codes);
    let export: Vec<DeviceSerial> = export.iter().map(|s| serial(s)).collect();
    evidence::label_findings(&export, &label_serials, !codes.is_empty())
}

#[test]
fn the_printed_label_names_its_device() {
    let sandbox = provisioned();
    let png = print_label(&sandbox, "label.png", &[]);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG by default");

    let found = findings(&png, &[SERIAL]);
    assert_eq!(found.devices, [(serial(SERIAL), LabelFinding::Matches)]);
    assert_eq!(found.other_serials, []);
}

#[test]
fn a_phone_photo_of_the_label_names_its_device() {
    let sandbox = provisioned();
    let jpeg = print_label(&sandbox, "photo.jpg", &["--style", "photo"]);
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    let image = image::load_from_memory(&jpeg).expect("a JPEG");
    assert_eq!((image.width(), image.height()), (4000, 3000));
    // What intake accepts at once: a 12 MP photo passes the structure check.
    photo::inspect_label_photo(&jpeg, TWELVE_MEGAPIXELS).expect("intake's structure check");

    // An NVR export with a camera: the NVR's label matches the NVR, not the camera.
    let camera = "DS-2CD2043G2-I0820231115C01";
    let found = findings(&jpeg, &[SERIAL, camera]);
    assert_eq!(
        found.devices,
        [
            (serial(SERIAL), LabelFinding::Matches),
            (serial(camera), LabelFinding::NotOnLabel)
        ]
    );
    assert_eq!(found.other_serials, []);
}

#[test]
fn the_same_seed_takes_the_same_photo() {
    let sandbox = provisioned();
    let first = print_label(&sandbox, "first.jpg", &["--style", "photo", "--seed", "7"]);
    let again = print_label(&sandbox, "again.jpg", &["--style", "photo", "--seed", "7"]);
    let other = print_label(&sandbox, "other.jpg", &["--style", "photo", "--seed", "8"]);
    assert!(first == again, "seed 7 twice gave two different photos");
    assert!(first != other, "seeds 7 and 8 gave the same photo");
}

#[test]
fn another_devices_label_is_other_serial() {
    let sandbox = provisioned();
    let jpeg = print_label(
        &sandbox,
        "other.jpg",
        &["--style", "photo", "--serial", OTHER_SERIAL, "--seed", "3"],
    );
    let found = findings(&jpeg, &[SERIAL]);
    assert_eq!(found.devices, [(serial(SERIAL), LabelFinding::OtherSerial)]);
    assert_eq!(found.other_serials, [serial(OTHER_SERIAL)]);
    assert!(found.names_another_device());
}

#[test]
fn a_label_without_codes_is_unreadable() {
    let sandbox = provisioned();
    let jpeg = print_label(&sandbox, "bare.jpg", &["--style", "photo", "--no-codes"]);
    let found = findings(&jpeg, &[SERIAL]);
    assert_eq!(found.devices, [(serial(SERIAL), LabelFinding::Unreadable)]);
    assert_eq!(found.other_serials, []);
}

/// Flips bytes in the entropy-coded data after the first start-of-scan segment, leaving
/// every marker and header as it was: intake's structure check cannot tell, only a full
/// decode can (the evidence worker's job).
pub fn damage_entropy_coded_data(jpeg: &[u8]) -> Vec<u8> {
    let sos = jpeg
        .windows(2)
        .position(|pair| pair == [0xFF, 0xDA])
        .expect("a start-of-scan marker");
    let header_len = usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
    let scan = sos + 2 + header_len;
    let mut damaged = jpeg.to_vec();
    let end = damaged.len() - 2;
    for at in (scan + (end - scan) / 4..end).step_by(37) {
        let neighbours_are_data = damaged[at - 1] != 0xFF && damaged[at + 1] != 0xFF;
        let flipped = damaged[at] ^ 0x5A;
        // Markers and stuffed bytes stay: the damage is in the data between them.
        if damaged[at] != 0xFF && flipped != 0xFF && neighbours_are_data {
            damaged[at] = flipped;
        }
    }
    damaged
}

/// Whether a strict decoder reads every pixel of `jpeg` without an error.
fn decodes_strictly(jpeg: &[u8]) -> bool {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    JpegDecoder::new_with_options(ZCursor::new(jpeg), options)
        .decode()
        .is_ok()
}

#[test]
fn a_jpeg_damaged_in_its_entropy_coded_data_passes_the_structure_check_only() {
    let sandbox = provisioned();
    let jpeg = print_label(&sandbox, "photo.jpg", &["--style", "photo"]);
    let damaged = damage_entropy_coded_data(&jpeg);
    assert_eq!(damaged.len(), jpeg.len());
    assert_ne!(damaged, jpeg);

    photo::inspect_label_photo(&damaged, TWELVE_MEGAPIXELS)
        .expect("the structure of the damaged photo is intact");
    assert!(decodes_strictly(&jpeg), "the intact photo decodes strictly");
    // Intake's lenient proof (`prove_label_photo`, as browsers are) paints grey from the
    // first bad Huffman code on and says nothing: the evidence worker decodes strictly.
    assert!(
        !decodes_strictly(&damaged),
        "a strict decode finds the damage"
    );
}
