//! Serial numbers taken out of the codes read off a label.
//!
//! A serial is recognised in two shapes: a code whose whole text is a serial (the
//! Code 128 under "S/N" on most labels), or a vendor code that carries it among other
//! fields: `SN:...;MAC:...`, `S/N=...`, a URL with `?sn=...`, or key/value lines
//! separated by newlines or commas. Every candidate goes through
//! [`DeviceSerial::parse`], the same parser as the export's serials, so a comparison
//! between the two is exact: no case folding (the export's MAC covers the serial byte
//! for byte, and the domain refuses lower case rather than folding it), only the blanks
//! around a value are dropped.

use super::ReadCode;
use crate::domain::DeviceSerial;

/// Characters that end a field in a vendor code. None of them can be part of a serial
/// (upper-case letters, digits and `- / . _`), so splitting on them never cuts one.
const FIELD_SEPARATORS: &[char] = &[';', ',', '\n', '\r', '&', '?', '|', '\t'];

/// The serials the codes name, each once, in the order read.
pub fn serials_in(codes: &[ReadCode]) -> Vec<DeviceSerial> {
    let mut serials: Vec<DeviceSerial> = Vec::new();
    for code in codes {
        for serial in serials_in_text(&code.text) {
            if !serials.contains(&serial) {
                serials.push(serial);
            }
        }
    }
    serials
}

fn serials_in_text(text: &str) -> Vec<DeviceSerial> {
    if let Ok(serial) = DeviceSerial::parse(text.trim()) {
        return vec![serial];
    }
    text.split(FIELD_SEPARATORS)
        .filter_map(serial_field)
        .collect()
}

/// The serial in one `key:value`, `key=value` or `key value` field whose key names a
/// serial number.
fn serial_field(field: &str) -> Option<DeviceSerial> {
    let field = field.trim();
    let (key, value) = match field.find([':', '=']) {
        Some(at) => (&field[..at], &field[at + 1..]),
        None => field.split_once(char::is_whitespace)?,
    };
    if !is_serial_key(key) {
        return None;
    }
    DeviceSerial::parse(&percent_decoded(value.trim())?).ok()
}

/// `SN`, `S/N`, `S.N.`, `Serial`, `Serial No`, `serial_number`, `SNo`... in any case.
fn is_serial_key(key: &str) -> bool {
    let letters: String = key
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if key.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    matches!(
        letters.as_str(),
        "SN" | "SNO" | "SNR" | "SERIAL" | "SERIALNO" | "SERIALNR" | "SERIALNUMBER" | "SERNO"
    )
}

/// A URL query value with its `%XX` escapes decoded (`/` is often written `%2F`); None
/// for an escape that is not one.
fn percent_decoded(value: &str) -> Option<String> {
    if !value.contains('%') {
        return Some(value.to_owned());
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::CodeFormat;

    fn qr(text: &str) -> ReadCode {
        ReadCode {
            format: CodeFormat::Qr,
            text: text.to_owned(),
        }
    }

    fn serial(raw: &str) -> DeviceSerial {
        DeviceSerial::parse(raw).expect("test serial")
    }

    #[test]
    fn a_code_that_is_a_serial() {
        let codes = [ReadCode {
            format: CodeFormat::Code128,
            text: "DS-7608NI-K2/8P0820231115CCRRJ12345678".to_owned(),
        }];
        assert_eq!(
            serials_in(&codes),
            [serial("DS-7608NI-K2/8P0820231115CCRRJ12345678")]
        );
        assert_eq!(
            serials_in(&[qr("  DS-TEST-0001\n")]),
            [serial("DS-TEST-0001")]
        );
    }

    #[test]
    fn vendor_codes_carry_the_serial_among_other_fields() {
        let cases = [
            "SN:DS-TEST-0001;MAC:A4:14:37:12:34:56",
            "MODEL=DS-2CD2043G2-I;S/N=DS-TEST-0001",
            "https://vendor.example/activate?model=DS-2CD&sn=DS-TEST-0001&mac=A414",
            "https://vendor.example/a?serial_number=DS%2DTEST%2D0001",
            "Model: DS-2CD2043G2-I\nSerial No.: DS-TEST-0001\nMAC: A4:14:37:12:34:56",
            "model=X1,sn=DS-TEST-0001,fw=V1.0",
            "SN DS-TEST-0001",
            "s/n: DS-TEST-0001",
        ];
        for text in cases {
            assert_eq!(serials_in(&[qr(text)]), [serial("DS-TEST-0001")], "{text}");
        }
    }

    #[test]
    fn texts_that_name_no_serial() {
        let cases = [
            "https://vendor.example/support",
            "MAC:A4:14:37:12:34:56",
            "MODEL=DS-2CD2043G2-I;FW=V4.30",
            // Lower case is refused, as in the export: the serial is compared byte for byte.
            "sn=ds-test-0001",
            "SN2:DS-TEST-0001",
            "SN=%ZZ",
            "",
        ];
        for text in cases {
            assert_eq!(serials_in(&[qr(text)]), [], "{text:?}");
        }
    }

    #[test]
    fn each_serial_once_in_reading_order() {
        let codes = [
            qr("SN:DS-TEST-0002;MAC:A4:14:37:12:34:56"),
            ReadCode {
                format: CodeFormat::Code128,
                text: "DS-TEST-0002".to_owned(),
            },
            qr("DS-TEST-0001"),
        ];
        assert_eq!(
            serials_in(&codes),
            [serial("DS-TEST-0002"), serial("DS-TEST-0001")]
        );
    }
}
