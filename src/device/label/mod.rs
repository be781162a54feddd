//! The reference device's rating label, as vendors print it: model, serial, MAC and
//! firmware for people, a QR code and a Code 128 barcode of the serial for machines
//! (issue 18, item 3). [`photograph`] turns it into what a customer's phone uploads.
//! The tests of the desk's label reading print their fixtures with it: a matching label,
//! another device's label, a label without codes.
//!
//! Built with the server only: the fuzz build has no use for pictures of labels.

mod code128;
mod font;
mod photo;

use image::{GrayImage, ImageEncoder, Luma, RgbImage};
use qrcode::{Color, EcLevel, QrCode};

use super::SimulatedDevice;
use crate::domain::{DeviceModel, DeviceSerial, FirmwareVersion, MacAddress};

pub use photo::{PHOTO_HEIGHT, PHOTO_WIDTH, photograph};

/// JPEG quality of a phone photo of the label.
pub const PHOTO_JPEG_QUALITY: u8 = 80;

const MARGIN: u32 = 48;
const TEXT_SCALE: u32 = 5;
const HEADER_SCALE: u32 = 6;
const LINE_GAP: u32 = 18;
const QR_MODULE: u32 = 10;
const QR_QUIET_MODULES: u32 = 4;
/// Code 128's narrowest bar, in pixels.
const BAR_MODULE: u32 = 4;
const BAR_QUIET_MODULES: u32 = 10;
/// Tall bars: a scan line across a label turned 15° still crosses every bar.
const BAR_HEIGHT: u32 = 320;

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("the serial cannot be put in a QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("the serial cannot be put in a Code 128 barcode")]
    Code128,
    #[error("the picture cannot be encoded: {0}")]
    Encode(#[from] image::ImageError),
}

/// What a label says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub model: DeviceModel,
    pub serial: DeviceSerial,
    pub mac_address: MacAddress,
    pub firmware: FirmwareVersion,
    /// Whether the QR code and the barcode are printed (a label without them is the
    /// `unreadable` fixture).
    pub codes: bool,
}

impl Label {
    /// The label of a simulated unit; a unit provisioned without a MAC address gets one
    /// derived from its serial, so the same state prints the same label.
    pub fn of(device: &SimulatedDevice) -> Self {
        Self {
            model: device.model.clone(),
            serial: device.serial.clone(),
            mac_address: device
                .mac_address
                .unwrap_or_else(|| derived_mac_address(&device.serial)),
            firmware: device.firmware.clone(),
            codes: true,
        }
    }

    /// The label as printed: black on white, 1 pixel = 1 printer dot.
    pub fn render(&self) -> Result<GrayImage, LabelError> {
        let serial = self.serial.as_str();
        let lines = [
            format!("MODEL: {}", self.model),
            format!("S/N: {serial}"),
            format!("MAC: {}", self.mac_address),
            format!("FW: {}", self.firmware),
            "INPUT: 12V DC 1.5A".to_owned(),
        ];
        let header = "RESETDESK REFERENCE DEVICE";
        let line_height = font::GLYPH_HEIGHT * TEXT_SCALE + LINE_GAP;
        let header_height = font::GLYPH_HEIGHT * HEADER_SCALE + 2 * LINE_GAP;
        let text_width = lines
            .iter()
            .map(|line| font::text_width(line, TEXT_SCALE))
            .chain([font::text_width(header, HEADER_SCALE)])
            .max()
            .unwrap_or(0);
        let text_height = header_height + line_height * lines.len() as u32;

        let qr = if self.codes {
            Some(QrCode::with_error_correction_level(serial, EcLevel::M)?)
        } else {
            None
        };
        let qr_side = qr.as_ref().map_or(0, |code| {
            (code.width() as u32 + 2 * QR_QUIET_MODULES) * QR_MODULE
        });
        let bars = if self.codes {
            Some(code128::modules(serial).ok_or(LabelError::Code128)?)
        } else {
            None
        };
        let bars_width = bars.as_ref().map_or(0, |modules| {
            (modules.len() as u32 + 2 * BAR_QUIET_MODULES) * BAR_MODULE
        });
        let caption_height = font::GLYPH_HEIGHT * 4 + LINE_GAP;

        let width = (2 * MARGIN + text_width + qr_side).max(2 * MARGIN + bars_width);
        let top_height = text_height.max(qr_side);
        let height = if bars.is_some() {
            2 * MARGIN + top_height + LINE_GAP + BAR_HEIGHT + caption_height
        } else {
            2 * MARGIN + top_height
        };
        let mut image = GrayImage::from_pixel(width, height, Luma([255]));
        frame(&mut image, 14, 4);

        font::draw_text(&mut image, MARGIN, MARGIN, HEADER_SCALE, header);
        for (index, line) in (0u32..).zip(&lines) {
            let y = MARGIN + header_height + index * line_height;
            font::draw_text(&mut image, MARGIN, y, TEXT_SCALE, line);
        }
        if let Some(code) = qr {
            let side = code.width() as u32;
            let left = width - MARGIN - qr_side + QR_QUIET_MODULES * QR_MODULE;
            let top = MARGIN + QR_QUIET_MODULES * QR_MODULE;
            for (index, color) in (0u32..).zip(code.to_colors()) {
                if color == Color::Dark {
                    let (x, y) = (index % side, index / side);
                    fill(
                        &mut image,
                        left + x * QR_MODULE,
                        top + y * QR_MODULE,
                        QR_MODULE,
                        QR_MODULE,
                    );
                }
            }
        }
        if let Some(modules) = bars {
            let left = (width - bars_width) / 2 + BAR_QUIET_MODULES * BAR_MODULE;
            let top = MARGIN + top_height + LINE_GAP;
            for (index, bar) in (0u32..).zip(modules) {
                if bar {
                    fill(
                        &mut image,
                        left + index * BAR_MODULE,
                        top,
                        BAR_MODULE,
                        BAR_HEIGHT,
                    );
                }
            }
            let caption_width = font::text_width(serial, 4);
            let x = width.saturating_sub(caption_width) / 2;
            font::draw_text(&mut image, x, top + BAR_HEIGHT + LINE_GAP / 2, 4, serial);
        }
        Ok(image)
    }
}

/// A locally administered unicast address from the serial (FNV-1a): stable across runs
/// and machines, and never one a vendor could have assigned.
pub fn derived_mac_address(serial: &DeviceSerial) -> MacAddress {
    let hash = serial
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let bytes = hash.to_be_bytes();
    MacAddress::from_bytes([
        (bytes[0] & 0xFC) | 0x02,
        bytes[1],
        bytes[2],
        bytes[3],
        bytes[4],
        bytes[5],
    ])
}

/// The flat label as a PNG file.
pub fn png(image: &GrayImage) -> Result<Vec<u8>, LabelError> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::L8,
    )?;
    Ok(out)
}

/// A photo as a JPEG file of the given quality.
pub fn jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, LabelError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

fn fill(image: &mut GrayImage, left: u32, top: u32, width: u32, height: u32) {
    for y in top..(top + height).min(image.height()) {
        for x in left..(left + width).min(image.width()) {
            image.put_pixel(x, y, Luma([0]));
        }
    }
}

/// A printed border `thickness` pixels wide, `inset` pixels inside the edge.
fn frame(image: &mut GrayImage, inset: u32, thickness: u32) {
    let (width, height) = (image.width(), image.height());
    let inner_width = width - 2 * inset;
    let inner_height = height - 2 * inset;
    fill(image, inset, inset, inner_width, thickness);
    fill(
        image,
        inset,
        height - inset - thickness,
        inner_width,
        thickness,
    );
    fill(image, inset, inset, thickness, inner_height);
    fill(
        image,
        width - inset - thickness,
        inset,
        thickness,
        inner_height,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_mac_addresses_are_stable_local_and_differ_by_serial() {
        let first = DeviceSerial::parse("DS-TEST-0001").expect("serial");
        let second = DeviceSerial::parse("DS-TEST-0002").expect("serial");
        let mac = derived_mac_address(&first);
        assert_eq!(mac, derived_mac_address(&first));
        assert_ne!(mac, derived_mac_address(&second));
        assert_eq!(
            mac.octets()[0] & 0x03,
            0x02,
            "locally administered, unicast"
        );
    }
}
