//! Crockford's base32 (`0-9 A-Z` without `I L O U`), as the reset string and the
//! response key use it: case-insensitive, with `O` read as `0` and `I`/`L` as `1`,
//! so that what a person copies from a screen decodes to what the device meant.

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The symbol for a 5-bit value.
pub(crate) fn symbol(value: u8) -> char {
    ALPHABET[usize::from(value & 31)] as char
}

/// The value of one symbol after look-alike folding, or `None` for a character that
/// is not in the alphabet (including `U`).
pub(crate) fn value(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    ALPHABET
        .iter()
        .position(|&s| s as char == c)
        .map(|p| p as u8)
}

/// Encodes bytes as symbols, most significant bit first; the last symbol is padded
/// with zero bits.
pub(crate) fn encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(((buffer >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        out.push(((buffer << (5 - bits)) & 31) as u8);
    }
    out
}

/// Decodes symbol values to bytes; `None` when the padding bits are not zero or the
/// symbol count cannot come from whole bytes.
pub(crate) fn decode(values: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &v in values {
        buffer = (buffer << 5) | u32::from(v & 31);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    let padding_is_zero = buffer & ((1 << bits) - 1) == 0;
    (bits < 5 && padding_is_zero).then_some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn folds_look_alikes_and_case() {
        assert_eq!(value('o'), Some(0));
        assert_eq!(value('O'), Some(0));
        assert_eq!(value('i'), Some(1));
        assert_eq!(value('L'), Some(1));
        assert_eq!(value('z'), Some(31));
        assert_eq!(value('U'), None);
        assert_eq!(value('-'), None);
    }

    #[test]
    fn known_value() {
        let text: String = encode(b"\x00\xff").into_iter().map(symbol).collect();
        assert_eq!(text, "03ZG");
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&bytes)), Some(bytes));
        }
    }
}
