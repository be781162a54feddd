//! The typed or pasted reset string (also what a QR code holds). The bytes are read as
//! UTF-8, lossily when they are not valid, as a browser form would deliver them. A
//! string that decodes must encode back to one that decodes the same, grouped or
//! compact, and must survive the XML form too.
//!
//! Nearly every mutation of a valid string breaks its two check symbols (the point of
//! them), so the fuzzer would seldom get past the typo check. Each input is therefore
//! also decoded with its last two symbols replaced by the right check symbols, which lets
//! mutations reach the payload decoder and the field parsers behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resetdesk::protocol::{export_xml, reset_string};

/// Crockford base32, as `protocol::base32` (private to the crate) writes it.
const SYMBOLS: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The check symbols' modulus (see the module documentation of `reset_string`).
const CHECK_MODULUS: u32 = 1021;

fn value(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    SYMBOLS
        .iter()
        .position(|&s| char::from(s) == c)
        .map(|p| p as u8)
}

/// `text` with its last two symbols replaced by the check symbols of the others, or
/// None when it is not shaped like a reset string at all.
fn with_right_check(text: &str) -> Option<String> {
    let body = text.trim_start().strip_prefix("RD")?;
    let symbols: Vec<u8> = body
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(value)
        .collect::<Option<_>>()?;
    let checked = symbols.get(..symbols.len().checked_sub(2)?)?;
    let check = checked
        .iter()
        .fold(0, |acc, &s| (acc * 32 + u32::from(s)) % CHECK_MODULUS);
    let mut out = String::from("RD");
    out.extend(checked.iter().map(|&s| char::from(SYMBOLS[usize::from(s)])));
    out.push(char::from(SYMBOLS[(check / 32) as usize]));
    out.push(char::from(SYMBOLS[(check % 32) as usize]));
    Some(out)
}

fn decode_and_round_trip(text: &str) {
    let Ok(request) = reset_string::decode(text) else {
        return;
    };
    let grouped = reset_string::encode(&request);
    let compact = reset_string::compact(&grouped);
    assert_eq!(
        reset_string::decode(&compact).as_ref(),
        Ok(&request),
        "re-encoded (compact): {compact}"
    );
    // Grouping adds a dash every five symbols, so a compact input near the length limit
    // can re-encode to a grouped string over it; within the limit it must round-trip.
    if grouped.len() <= reset_string::MAX_RESET_STRING_CHARS {
        assert_eq!(
            reset_string::decode(&grouped).as_ref(),
            Ok(&request),
            "re-encoded (grouped): {grouped}"
        );
    }
    let xml = export_xml::to_xml(&request);
    assert_eq!(
        export_xml::from_xml(xml.as_bytes()).as_ref(),
        Ok(&request),
        "as XML:\n{xml}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    decode_and_round_trip(&text);
    if let Some(rechecked) = with_right_check(&text) {
        decode_and_round_trip(&rechecked);
    }
});
