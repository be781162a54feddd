//! Part 8: what reading one label photo costs the evidence worker, by the kind of photo,
//! so its rate can be set against the intake's (issue 18: can the worker keep up?).
//!
//! Three kinds, each read `runs` times on one core: the intake phase's photo (a noise
//! texture, 820×615, with no code on it: every pass runs and finds nothing, the longest
//! path); the reference device's label as a phone photographs it (12 MP, `device label
//! --style photo`, five seeds); and the same photos as a messaging app sends them (longest
//! side 1,600 px, JPEG quality 80). Each is timed in this process (the reading alone, then
//! with the previews) and as the worker runs it, in a child `resetdesk evidence read`
//! process (start-up, limits and pipes included). `serial read` counts the readings
//! that found the label's serial.

use std::io::Cursor;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resetdesk::device::label;
use resetdesk::domain::{DeviceModel, DeviceSerial, FirmwareVersion, MacAddress};
use resetdesk::evidence::reading::{self, ChildLimits};
use resetdesk::intake::photo;
use serde_json::{Value, json};

use super::median;

const SERIAL: &str = "DS-2CD2143G2-I20231234AAWRJ12345";

/// One kind of photo and what reading it took (medians, milliseconds).
struct KindResult {
    name: &'static str,
    bytes: usize,
    pixels: String,
    serial_read: String,
    reading_ms: f64,
    with_previews_ms: f64,
    child_ms: f64,
}

pub fn run(noise_photo: &Bytes, runs: usize, table: &mut Vec<String>) -> Value {
    let phone: Vec<Vec<u8>> = (1..=5).map(phone_photo).collect();
    let sent: Vec<Vec<u8>> = phone.iter().map(|p| as_sent(p)).collect();
    let kinds = [
        (
            "intake phase's photo (noise, no code)",
            vec![noise_photo.to_vec()],
        ),
        ("label, phone photo, 12 MP", phone),
        ("label, as sent by a messaging app, 1,600 px", sent),
    ];
    let mut json_kinds = Vec::new();
    table.push(String::new());
    table.push(
        "label photo read by the evidence worker (part 8; medians, one core): reading / with previews / in a child process (as the worker runs it) → photos/s per core".to_owned(),
    );
    for (name, photos) in kinds {
        let result = measure(name, &photos, runs);
        table.push(format!(
            "  {:<46} {:>5} KB {:>11}  serial read {:>5}  {:>7.1} / {:>7.1} / {:>7.1} ms  → {:>5.1}/s",
            result.name,
            result.bytes / 1024,
            result.pixels,
            result.serial_read,
            result.reading_ms,
            result.with_previews_ms,
            result.child_ms,
            1000.0 / result.child_ms,
        ));
        json_kinds.push(json!({
            "kind": result.name,
            "bytes": result.bytes,
            "pixels": result.pixels,
            "serial_read": result.serial_read,
            "reading_ms": round(result.reading_ms),
            "with_previews_ms": round(result.with_previews_ms),
            "child_ms": round(result.child_ms),
            "photos_per_sec_per_core": round(1000.0 / result.child_ms),
        }));
    }
    Value::Array(json_kinds)
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn measure(name: &'static str, photos: &[Vec<u8>], runs: usize) -> KindResult {
    let max_pixels = resetdesk::config::Settings::default()
        .intake
        .max_label_pixels;
    let program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_resetdesk"));
    let (mut plain, mut previews, mut child) = (Vec::new(), Vec::new(), Vec::new());
    let mut read = 0;
    for _ in 0..runs.max(1) {
        for bytes in photos {
            let found = timed(&mut plain, || {
                reading::read_photo(bytes, max_pixels, false).expect("the photo passes")
            });
            if found.codes.iter().any(|code| code.text.contains(SERIAL)) {
                read += 1;
            }
            timed(&mut previews, || {
                reading::read_photo(bytes, max_pixels, true).expect("the photo passes")
            });
            let inspected = photo::inspect_label_photo(bytes, max_pixels).expect("passes");
            let limits = ChildLimits {
                max_pixels,
                max_bytes: 64 << 20,
                memory_bytes: reading::memory_needed(bytes.len(), &inspected),
                deadline: Duration::from_secs(15),
                // The desk's own binary, as the worker starts it by default.
                own_program: true,
            };
            timed(&mut child, || {
                reading::read_in_child(&program, bytes.clone(), limits).expect("the child reads")
            });
        }
    }
    let first = image::load_from_memory(&photos[0]).expect("decodes");
    KindResult {
        name,
        bytes: photos.iter().map(Vec::len).sum::<usize>() / photos.len(),
        pixels: format!("{}×{}", first.width(), first.height()),
        serial_read: format!("{read}/{}", runs.max(1) * photos.len()),
        reading_ms: median(&mut plain),
        with_previews_ms: median(&mut previews),
        child_ms: median(&mut child),
    }
}

fn timed<T>(times: &mut Vec<f64>, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = f();
    times.push(started.elapsed().as_secs_f64() * 1000.0);
    value
}

/// The reference device's label photographed by a phone (`device label --style photo`).
fn phone_photo(seed: u64) -> Vec<u8> {
    let printed = label::Label {
        model: DeviceModel::parse("DS-2CD2143G2-I").expect("model"),
        serial: DeviceSerial::parse(SERIAL).expect("serial"),
        mac_address: MacAddress::parse("A4:14:37:12:34:56").expect("mac"),
        firmware: FirmwareVersion::parse("V5.7.3").expect("firmware"),
        codes: true,
    };
    let flat = printed.render().expect("renders");
    label::jpeg(&label::photograph(&flat, seed), label::PHOTO_JPEG_QUALITY).expect("encodes")
}

/// `photo` as a messaging app sends it: longest side 1,600 px, JPEG quality 80.
fn as_sent(photo: &[u8]) -> Vec<u8> {
    let picture = image::load_from_memory(photo).expect("decodes");
    let smaller = picture.thumbnail(1_600, 1_600).to_rgb8();
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut out), 80);
    smaller.write_with_encoder(encoder).expect("encodes");
    out
}
