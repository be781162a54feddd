//! Reading every QR, Data Matrix, Code 128 and Code 39 on a label photo.
//!
//! **Crate: rxing 0.9** (the Rust port of ZXing), chosen over the alternatives in 2026-12:
//! - it reads all four formats a rating label carries; rqrr (already used for the export's
//!   QR picture) reads QR only, and the other pure-Rust readers are QR-only too;
//! - it is kept: releases from 0.1 to 0.9.3 (2026-09), edition 2024, tests against ZXing's
//!   own black-box image sets; zxing-cpp's bindings would read as well but build C++ with
//!   CMake, and zbar needs a system library;
//! - pure Rust, so `unsafe_code = "forbid"` stays meaningful for what we add.
//!
//! Features: `decoders`, the four formats' modules (`qrcode`, `datamatrix`, `oned`),
//! `multi_barcode_readers` and `encoding_rs` (already in our tree; without a character
//! set feature rxing's byte-mode decoding is `unimplemented!()`, a panic on hostile
//! input). Left out: `image` (it pins `image = "=0.25.8"`, older than ours: we hand rxing
//! a grey buffer instead), writers, and `client_support` (chrono-tz, fancy-regex: result
//! parsing we do ourselves in `serials.rs`).
//! Cost measured on this 2-core machine: 12 new crates in Cargo.lock (rxing, its one-d
//! derive macro, num and 5 of its parts, regex, codepage-437 and csv for its build),
//! 24 s of a cold dev build (`cargo build -p rxing`, dependencies at opt-level 1);
//! nothing in the build without `server`.
//!
//! Bounds: the caller hands over a decoded, size-capped image. It is turned grey and
//! shrunk so its longest side is at most [`READ_MAX_SIDE`] (a 12 MP phone photo of a
//! label still has 2–3 pixels per barcode module at that size), and the reader gets a
//! budget of decode attempts, because rxing's multi-code search recurses into the four
//! sides of every code it finds. At most four passes over the picture: all formats, then
//! (when no barcode was read) the linear ones on a locally thresholded copy, straight
//! and turned ±10°.
//! Time for a 12 MP JPEG of a label (2 cores, release build, `device label --style
//! photo`, 25 seeds): decoding ~40 ms, grey and shrink ~80 ms, reading 70–170 ms, and
//! 50–210 ms more for the extra passes when the barcode is not read at first; in the
//! dev build (dependencies at opt-level 1) reading takes 0.3–0.5 s.

use std::collections::HashSet;

use image::{DynamicImage, GrayImage, Luma};
use rxing::common::HybridBinarizer;
use rxing::multi::{GenericMultipleBarcodeReader, MultipleBarcodeReader};
use rxing::{
    BarcodeFormat, Binarizer, BinaryBitmap, DecodeHints, Exceptions, Luma8LuminanceSource,
    MultiUseMultiFormatReader, RXingResult, Reader,
};

/// Longest side, in pixels, of the grey picture the codes are read from.
pub const READ_MAX_SIDE: u32 = 2000;

/// Decode attempts per photo: one per code found and one per side searched around it.
/// Four codes with their neighbourhoods fit; a photo tiled with codes cannot make the
/// search run for minutes.
const DECODE_BUDGET: usize = 40;

/// The symbologies read from a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeFormat {
    Qr,
    DataMatrix,
    Code128,
    Code39,
}

impl CodeFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qr => "qr",
            Self::DataMatrix => "data_matrix",
            Self::Code128 => "code_128",
            Self::Code39 => "code_39",
        }
    }

    /// The format named as [`Self::as_str`] names it.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Qr, Self::DataMatrix, Self::Code128, Self::Code39]
            .into_iter()
            .find(|format| format.as_str() == name)
    }

    /// Code 128 and Code 39: one row of bars, read along rows of pixels.
    pub fn is_linear(self) -> bool {
        matches!(self, Self::Code128 | Self::Code39)
    }

    fn from_rxing(format: BarcodeFormat) -> Option<Self> {
        match format {
            BarcodeFormat::QR_CODE => Some(Self::Qr),
            BarcodeFormat::DATA_MATRIX => Some(Self::DataMatrix),
            BarcodeFormat::CODE_128 => Some(Self::Code128),
            BarcodeFormat::CODE_39 => Some(Self::Code39),
            _ => None,
        }
    }
}

/// One code read off the label: its symbology and the text it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCode {
    pub format: CodeFormat,
    pub text: String,
}

/// Every code of the four formats found on the picture, each text once, in the order
/// found. An empty list means no code could be read (a finding of its own).
pub fn read_codes(image: &DynamicImage) -> Vec<ReadCode> {
    let grey = shrunk_grey(image);
    let mut attempts_left = DECODE_BUDGET;
    let mut codes = Vec::new();
    read_into(&grey, &ALL_FORMATS, &mut attempts_left, &mut codes);
    if !codes.iter().any(|code| code.format.is_linear()) {
        // The linear readers threshold each row on that row's own histogram, which a
        // desk beside the label and light from one side pull off; and a row must cross
        // every bar, which a long barcode turned more than ~10° defeats. So once more on
        // the picture thresholded locally (as the 2D readers see it), straight and turned
        // both ways: on our photographed labels, 15 barcodes of 25 read instead of 6.
        for degrees in [0.0, -10.0, 10.0] {
            let turned_grey = if degrees == 0.0 {
                grey.clone()
            } else {
                turned(&grey, degrees)
            };
            let found = read_into(
                &thresholded(turned_grey),
                &LINEAR_FORMATS,
                &mut attempts_left,
                &mut codes,
            );
            if found {
                break;
            }
        }
    }
    codes
}

const ALL_FORMATS: [BarcodeFormat; 4] = [
    BarcodeFormat::QR_CODE,
    BarcodeFormat::DATA_MATRIX,
    BarcodeFormat::CODE_128,
    BarcodeFormat::CODE_39,
];
const LINEAR_FORMATS: [BarcodeFormat; 2] = [BarcodeFormat::CODE_128, BarcodeFormat::CODE_39];

/// The picture in grey, its longest side at most [`READ_MAX_SIDE`].
fn shrunk_grey(image: &DynamicImage) -> GrayImage {
    // A picture decoded straight to grey (as the evidence worker does) is not copied.
    let converted;
    let grey = match image.as_luma8() {
        Some(grey) => grey,
        None => {
            converted = image.to_luma8();
            &converted
        }
    };
    let longest = grey.width().max(grey.height());
    if longest <= READ_MAX_SIDE {
        return grey.clone();
    }
    let scale = f64::from(READ_MAX_SIDE) / f64::from(longest);
    let width = (f64::from(grey.width()) * scale).round().max(1.0) as u32;
    let height = (f64::from(grey.height()) * scale).round().max(1.0) as u32;
    // Area averaging: cheap, and it keeps bars' edges where a sharper filter rings.
    image::imageops::thumbnail(grey, width, height)
}

/// Reads the codes of `formats` on `grey` into `codes` (each once); whether it found a
/// new one.
fn read_into(
    grey: &GrayImage,
    formats: &[BarcodeFormat],
    attempts_left: &mut usize,
    codes: &mut Vec<ReadCode>,
) -> bool {
    let (width, height) = grey.dimensions();
    let Ok(source) = Luma8LuminanceSource::new(grey.as_raw().clone(), width, height) else {
        return false;
    };
    let hints = DecodeHints {
        PossibleFormats: Some(formats.iter().copied().collect::<HashSet<_>>()),
        TryHarder: Some(true),
        ..DecodeHints::default()
    };
    let mut reader = GenericMultipleBarcodeReader::new(Budgeted {
        inner: MultiUseMultiFormatReader::default(),
        attempts_left,
    });
    let results = reader
        .decode_multiple_with_hints(&mut BinaryBitmap::new(HybridBinarizer::new(source)), &hints)
        .unwrap_or_default();
    let mut found = false;
    for result in results {
        let Some(format) = CodeFormat::from_rxing(*result.getBarcodeFormat()) else {
            continue;
        };
        let code = ReadCode {
            format,
            text: result.getText().to_owned(),
        };
        if !codes.contains(&code) {
            codes.push(code);
            found = true;
        }
    }
    found
}

/// Black and white by the hybrid binarizer's local thresholds (blocks of 8 pixels
/// against their 5×5 neighbourhood), as the 2D readers see a picture.
fn thresholded(grey: GrayImage) -> GrayImage {
    let (width, height) = grey.dimensions();
    let Ok(source) = Luma8LuminanceSource::new(grey.into_raw(), width, height) else {
        return GrayImage::new(width, height);
    };
    let bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
    let black = bitmap.get_black_matrix();
    GrayImage::from_fn(width, height, |x, y| {
        Luma([if black.get(x, y) { 0 } else { 255 }])
    })
}

/// `grey` turned by `degrees` about its centre (bilinear; white where nothing was).
fn turned(grey: &GrayImage, degrees: f64) -> GrayImage {
    let (width, height) = grey.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (centre_x, centre_y) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
    let source = grey.as_raw();
    let stride = width as usize;
    let at = |x: usize, y: usize| f64::from(source[y * stride + x]);
    GrayImage::from_fn(width, height, |x, y| {
        let (dx, dy) = (f64::from(x) - centre_x, f64::from(y) - centre_y);
        let (u, v) = (
            centre_x + dx * cos - dy * sin,
            centre_y + dx * sin + dy * cos,
        );
        if u < 0.0 || v < 0.0 || u >= f64::from(width - 1) || v >= f64::from(height - 1) {
            return Luma([255]);
        }
        let (x0, y0) = (u as usize, v as usize);
        let (fx, fy) = (u - u.floor(), v - v.floor());
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
        let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
        Luma([(top * (1.0 - fy) + bottom * fy) as u8])
    })
}

/// A reader that stops answering after a number of attempts (see [`DECODE_BUDGET`]),
/// shared by every pass over one photo.
struct Budgeted<'a, R> {
    inner: R,
    attempts_left: &'a mut usize,
}

impl<R: Reader> Reader for Budgeted<'_, R> {
    fn decode<B: Binarizer>(
        &mut self,
        image: &mut BinaryBitmap<B>,
    ) -> rxing::common::Result<RXingResult> {
        self.decode_with_hints(image, &DecodeHints::default())
    }

    fn decode_with_hints<B: Binarizer>(
        &mut self,
        image: &mut BinaryBitmap<B>,
        hints: &DecodeHints,
    ) -> rxing::common::Result<RXingResult> {
        if *self.attempts_left == 0 {
            return Err(Exceptions::NOT_FOUND);
        }
        *self.attempts_left -= 1;
        self.inner.decode_with_hints(image, hints)
    }

    fn reset(&mut self) {
        self.inner.reset();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::device::label::{Label, photograph};
    use crate::domain::{DeviceModel, DeviceSerial, FirmwareVersion, MacAddress};

    const SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";

    fn label(codes: bool) -> Label {
        Label {
            model: DeviceModel::parse("DS-7608NI-K2").expect("model"),
            serial: DeviceSerial::parse(SERIAL).expect("serial"),
            mac_address: MacAddress::parse("A4:14:37:12:34:56").expect("MAC"),
            firmware: FirmwareVersion::parse("V4.30.085").expect("firmware"),
            codes,
        }
    }

    fn texts(codes: &[ReadCode]) -> Vec<(&'static str, &str)> {
        codes
            .iter()
            .map(|code| (code.format.as_str(), code.text.as_str()))
            .collect()
    }

    #[test]
    fn a_printed_label_gives_its_qr_code_and_its_barcode() {
        let flat = label(true).render().expect("label");
        let read = read_codes(&DynamicImage::ImageLuma8(flat));
        let mut codes = texts(&read);
        codes.sort_unstable();
        assert_eq!(codes, [("code_128", SERIAL), ("qr", SERIAL)]);
    }

    #[test]
    fn a_phone_photo_of_the_label_still_gives_the_serial() {
        let flat = label(true).render().expect("label");
        for seed in [1, 2, 3] {
            let photo = DynamicImage::ImageRgb8(photograph(&flat, seed));
            let started = Instant::now();
            let codes = read_codes(&photo);
            eprintln!(
                "seed {seed}: {:?} in {:?}",
                texts(&codes),
                started.elapsed()
            );
            assert!(
                codes.iter().any(|code| code.text == SERIAL),
                "seed {seed}: {:?}",
                texts(&codes)
            );
        }
    }

    /// A Code 39 barcode of `text` (ISO/IEC 16388's table: nine elements, bar first,
    /// the wide ones marked by the bits from the ninth down), narrow 4 px, wide 12 px.
    fn code_39(text: &str) -> GrayImage {
        const ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%*";
        const WIDE: [u16; 44] = [
            0x034, 0x121, 0x061, 0x160, 0x031, 0x130, 0x070, 0x025, 0x124, 0x064, 0x109, 0x049,
            0x148, 0x019, 0x118, 0x058, 0x00D, 0x10C, 0x04C, 0x01C, 0x103, 0x043, 0x142, 0x013,
            0x112, 0x052, 0x007, 0x106, 0x046, 0x016, 0x181, 0x0C1, 0x1C0, 0x091, 0x190, 0x0D0,
            0x085, 0x184, 0x0C4, 0x0A8, 0x0A2, 0x08A, 0x02A, 0x094,
        ];
        let mut bars = vec![false; 40];
        for c in format!("*{text}*").chars() {
            let wide = WIDE[ALPHABET.find(c).expect("a Code 39 character")];
            for element in 0..9 {
                let width = if wide & (0x100 >> element) != 0 {
                    12
                } else {
                    4
                };
                bars.extend(std::iter::repeat_n(element % 2 == 0, width));
            }
            bars.extend([false; 4]);
        }
        bars.extend([false; 40]);
        let width = u32::try_from(bars.len()).expect("narrow");
        GrayImage::from_fn(width, 240, |x, y| {
            let bar = (20..220).contains(&y) && bars[x as usize];
            Luma([if bar { 0 } else { 255 }])
        })
    }

    #[test]
    fn a_code_39_barcode_is_read_too() {
        let codes = read_codes(&DynamicImage::ImageLuma8(code_39("CAM-0042/B.7")));
        assert_eq!(texts(&codes), [("code_39", "CAM-0042/B.7")]);
    }

    #[test]
    fn a_label_without_codes_gives_nothing() {
        let flat = label(false).render().expect("label");
        assert_eq!(read_codes(&DynamicImage::ImageLuma8(flat)), []);
    }
}
