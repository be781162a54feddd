//! Code 128, code set B: what a label's "S/N" barcode is. Small enough to write out
//! rather than take a writer crate for: one table, a start, a checksum and a stop.

/// Bar and space widths of symbols 0–106 (106 is the stop, with its final bar), one
/// decimal digit per element, bar first. From ISO/IEC 15417's table.
const PATTERNS: [u32; 107] = [
    212222, 222122, 222221, 121223, 121322, 131222, 122213, 122312, 132212, 221213, 221312, 231212,
    112232, 122132, 122231, 113222, 123122, 123221, 223211, 221132, 221231, 213212, 223112, 312131,
    311222, 321122, 321221, 312212, 322112, 322211, 212123, 212321, 232121, 111323, 131123, 131321,
    112313, 132113, 132311, 211313, 231113, 231311, 112133, 112331, 132131, 113123, 113321, 133121,
    313121, 211331, 231131, 213113, 213311, 213131, 311123, 311321, 331121, 312113, 312311, 332111,
    314111, 221411, 431111, 111224, 111422, 121124, 121421, 141122, 141221, 112214, 112412, 122114,
    122411, 142112, 142211, 241211, 221114, 413111, 241112, 134111, 111242, 121142, 121241, 114212,
    124112, 124211, 411212, 421112, 421211, 212141, 214121, 412121, 111143, 111341, 131141, 114113,
    114311, 411113, 411311, 113141, 114131, 311141, 411131, 211412, 211214, 211232, 2331112,
];
const START_B: usize = 104;
const STOP: usize = 106;

/// The modules (true = bar) of `text` in code set B, without quiet zones; None when a
/// character is outside printable ASCII.
pub fn modules(text: &str) -> Option<Vec<bool>> {
    let mut symbols = vec![START_B];
    for c in text.chars() {
        if !(' '..='~').contains(&c) {
            return None;
        }
        symbols.push(c as usize - 32);
    }
    let checksum = symbols
        .iter()
        .enumerate()
        .map(|(position, symbol)| position.max(1) * symbol)
        .sum::<usize>()
        % 103;
    symbols.push(checksum);
    symbols.push(STOP);
    let mut modules = Vec::new();
    for symbol in symbols {
        let digits = PATTERNS[symbol].to_string();
        for (element, width) in digits.bytes().enumerate() {
            let bar = element % 2 == 0;
            modules.extend(std::iter::repeat_n(bar, usize::from(width - b'0')));
        }
    }
    Some(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_is_eleven_modules_and_the_stop_thirteen() {
        for (symbol, pattern) in PATTERNS.iter().enumerate() {
            let width: u32 = pattern
                .to_string()
                .bytes()
                .map(|b| u32::from(b - b'0'))
                .sum();
            assert_eq!(
                width,
                if symbol == STOP { 13 } else { 11 },
                "symbol {symbol}"
            );
        }
    }

    fn widths(pattern: &[usize]) -> Vec<bool> {
        pattern
            .iter()
            .zip([true, false].into_iter().cycle())
            .flat_map(|(width, bar)| std::iter::repeat_n(bar, *width))
            .collect()
    }

    #[test]
    fn start_checksum_and_stop_of_a_worked_example() {
        let modules = modules("PJJ123C").expect("ASCII");
        assert_eq!(modules.len(), 11 * (1 + 7 + 1) + 13);
        // Start B (104) + 1·P(48) + 2·J(42) + 3·J(42) + 4·1(17) + 5·2(18) + 6·3(19)
        // + 7·C(35) = 879, and 879 mod 103 = 55, whose widths are 3 1 1 3 2 1.
        assert_eq!(&modules[..11], widths(&[2, 1, 1, 2, 1, 4]).as_slice());
        assert_eq!(&modules[88..99], widths(&[3, 1, 1, 3, 2, 1]).as_slice());
        assert_eq!(&modules[99..], widths(&[2, 3, 3, 1, 1, 1, 2]).as_slice());
        assert_eq!(super::modules("DS\u{e9}"), None);
    }
}
