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
//! sides of every code it finds.

use std::collections::HashSet;

use image::DynamicImage;
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
    let grey = image.to_luma8();
    let grey = if grey.width().max(grey.height()) > READ_MAX_SIDE {
        let scale = f64::from(READ_MAX_SIDE) / f64::from(grey.width().max(grey.height()));
        let width = (f64::from(grey.width()) * scale).round().max(1.0) as u32;
        let height = (f64::from(grey.height()) * scale).round().max(1.0) as u32;
        // Area averaging: cheap, and it keeps bars' edges where a sharper filter rings.
        image::imageops::thumbnail(&grey, width, height)
    } else {
        grey
    };
    let (width, height) = grey.dimensions();
    let Ok(source) = Luma8LuminanceSource::new(grey.into_raw(), width, height) else {
        return Vec::new();
    };
    let hints = DecodeHints {
        PossibleFormats: Some(HashSet::from([
            BarcodeFormat::QR_CODE,
            BarcodeFormat::DATA_MATRIX,
            BarcodeFormat::CODE_128,
            BarcodeFormat::CODE_39,
        ])),
        TryHarder: Some(true),
        ..DecodeHints::default()
    };
    let mut reader = GenericMultipleBarcodeReader::new(Budgeted {
        inner: MultiUseMultiFormatReader::default(),
        attempts_left: DECODE_BUDGET,
    });
    let results = reader
        .decode_multiple_with_hints(&mut BinaryBitmap::new(HybridBinarizer::new(source)), &hints)
        .unwrap_or_default();
    let mut codes: Vec<ReadCode> = Vec::new();
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
        }
    }
    codes
}

/// A reader that stops answering after a number of attempts (see [`DECODE_BUDGET`]).
struct Budgeted<R> {
    inner: R,
    attempts_left: usize,
}

impl<R: Reader> Reader for Budgeted<R> {
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
        if self.attempts_left == 0 {
            return Err(Exceptions::NOT_FOUND);
        }
        self.attempts_left -= 1;
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

    #[test]
    fn a_label_without_codes_gives_nothing() {
        let flat = label(false).render().expect("label");
        assert_eq!(read_codes(&DynamicImage::ImageLuma8(flat)), []);
    }
}
