//! Hostile uploads, replayed on every `cargo test`: the inputs the fuzzers found
//! (`fuzz/regressions/<target>/`) and the seeds they start from (`fuzz/seeds/<target>/`)
//! go to the same parsers as the fuzz targets, and each parser must answer, Ok or Err,
//! without panicking. This needs neither nightly nor libFuzzer; the fuzz targets
//! themselves also check round trips (see fuzz/README.md).

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use resetdesk::config::Settings;
use resetdesk::intake::photo::check_label_photo;
use resetdesk::protocol::{ResponseKey, export_xml, qr, reset_string, response};

/// Every committed input for one fuzz target, as (path, bytes), regressions first.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut found = Vec::new();
    for kind in ["regressions", "seeds"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

/// Runs `parse` on every input of `target` and names each one that panicked.
fn answers_every_input(target: &str, parse: impl Fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "fuzz/seeds/{target}/ has no inputs");
    let panicked: Vec<&str> = inputs
        .iter()
        .filter(|(_, bytes)| panic::catch_unwind(AssertUnwindSafe(|| parse(bytes))).is_err())
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(panicked.is_empty(), "{target} panicked on {panicked:?}");
}

#[test]
fn export_xml_answers_every_fuzz_input() {
    answers_every_input("export_xml", |bytes| {
        let _ = export_xml::from_xml(bytes);
    });
}

#[test]
fn reset_string_answers_every_fuzz_input() {
    answers_every_input("reset_string", |bytes| {
        let _ = reset_string::decode(&String::from_utf8_lossy(bytes));
    });
}

#[test]
fn response_key_answers_every_fuzz_input() {
    answers_every_input("response_key", |bytes| {
        let _ = ResponseKey::parse(&String::from_utf8_lossy(bytes));
    });
}

#[test]
fn response_xml_answers_every_fuzz_input() {
    answers_every_input("response_xml", |bytes| {
        let _ = response::from_xml(bytes);
    });
}

#[test]
fn image_sniff_answers_every_fuzz_input() {
    let max_pixels = Settings::default().intake.max_label_pixels;
    answers_every_input("image_sniff", |bytes| {
        let _ = check_label_photo(bytes, max_pixels);
        let _ = qr::read_image(bytes);
    });
}

#[test]
fn inbound_mail_answers_every_fuzz_input() {
    answers_every_input("inbound_mail", |bytes| {
        let _ = resetdesk::mail::inbound::InboundMail::parse(
            bytes,
            64 * 1024,
            "desk.example",
            Some("support@desk.example"),
        )
        .map(|mail| mail.own_words());
    });
}
