//! The reset request as a QR code: the compact reset string (no dashes), encoded in
//! QR alphanumeric mode at error-correction level M, drawn as a PNG with a four-module
//! quiet zone. Reading goes the other way, from any JPEG or PNG that shows the code:
//! a screenshot or a phone photo of the device's screen.

use std::io::Cursor;

use image::{GrayImage, ImageFormat, ImageReader, Limits, Luma};
use qrcode::bits::Bits;
use qrcode::{Color, EcLevel, QrCode, Version};

use crate::protocol::reset_string;

/// Pixels per QR module in the PNG we draw.
const MODULE_PIXELS: u32 = 8;
const QUIET_ZONE_MODULES: u32 = 4;

/// Images larger than this in either direction are refused before decoding.
pub const MAX_QR_IMAGE_SIDE: u32 = 8192;
/// Images with more pixels than this are refused before decoding (a 12-megapixel phone
/// photo fits; a decompression bomb does not).
pub const MAX_QR_IMAGE_PIXELS: u64 = 24_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("the picture is not a PNG or JPEG image")]
    NotAnImage,
    #[error(
        "the picture is {width}×{height} pixels; at most {max_side} per side and {max_pixels} pixels in all are accepted"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("the picture could not be decoded: {0}")]
    Damaged(String),
    #[error(
        "no QR code was found in the picture: take it straight on, in focus, with the whole code visible"
    )]
    NoCode,
    #[error("the picture shows {0} QR codes; send a picture of just the device's reset code")]
    SeveralCodes(usize),
    #[error("a QR code was found but could not be read: take a sharper picture")]
    Unreadable,
    #[error("the QR code holds something else ({0}), not a device reset code")]
    NotAResetCode(&'static str),
    #[error("the reset string is too long for one QR code")]
    Capacity,
}

/// Draws the QR code of a reset string as PNG bytes.
pub fn encode_png(reset_string: &str) -> Result<Vec<u8>, QrError> {
    let data = reset_string::compact(reset_string);
    render_png(&alphanumeric_code(&data)?)
}

/// Draws any text as a QR code (the encoder picks the mode), for other screens that
/// show one, such as second-factor enrolment.
pub fn text_png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|_| QrError::Capacity)?;
    render_png(&code)
}

fn render_png(code: &QrCode) -> Result<Vec<u8>, QrError> {
    let width = code.width() as u32;
    let side = (width + 2 * QUIET_ZONE_MODULES) * MODULE_PIXELS;
    let colors = code.to_colors();
    let image = GrayImage::from_fn(side, side, |x, y| {
        let module = |p: u32| (p / MODULE_PIXELS).checked_sub(QUIET_ZONE_MODULES);
        match (module(x), module(y)) {
            (Some(mx), Some(my)) if mx < width && my < width => {
                match colors[(my * width + mx) as usize] {
                    Color::Dark => Luma([0]),
                    Color::Light => Luma([255]),
                }
            }
            _ => Luma([255]),
        }
    });
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| QrError::Damaged(e.to_string()))?;
    Ok(png)
}

/// The smallest code that holds `data` in alphanumeric mode. The automatic encoder
/// would switch to numeric mode for runs of digits; firmware teams asked for one mode.
fn alphanumeric_code(data: &str) -> Result<QrCode, QrError> {
    for version in 1..=40 {
        let mut bits = Bits::new(Version::Normal(version));
        if bits.push_alphanumeric_data(data.as_bytes()).is_ok()
            && bits.push_terminator(EcLevel::M).is_ok()
        {
            return QrCode::with_bits(bits, EcLevel::M).map_err(|_| QrError::Capacity);
        }
    }
    Err(QrError::Capacity)
}

/// The memory reading the code of a picture this size may take: the decoded colour
/// picture, its grey copy and the detector's working copy.
pub fn decode_memory(width: u32, height: u32) -> u64 {
    (u64::from(width) * u64::from(height)).min(MAX_QR_IMAGE_PIXELS) * 6
}

/// Finds exactly one QR code in a PNG or JPEG picture and returns the text it holds.
/// Dimensions are checked from the header before any pixel is decoded.
pub fn read_image(bytes: &[u8]) -> Result<String, QrError> {
    let open = || -> Result<ImageReader<Cursor<&[u8]>>, QrError> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|_| QrError::NotAnImage)?;
        match reader.format() {
            Some(ImageFormat::Png | ImageFormat::Jpeg) => Ok(reader),
            _ => Err(QrError::NotAnImage),
        }
    };
    let (width, height) = open()?
        .into_dimensions()
        .map_err(|e| QrError::Damaged(e.to_string()))?;
    if width > MAX_QR_IMAGE_SIDE
        || height > MAX_QR_IMAGE_SIDE
        || u64::from(width) * u64::from(height) > MAX_QR_IMAGE_PIXELS
    {
        return Err(QrError::TooLarge {
            width,
            height,
            max_side: MAX_QR_IMAGE_SIDE,
            max_pixels: MAX_QR_IMAGE_PIXELS,
        });
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_QR_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_QR_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_QR_IMAGE_PIXELS * 4 + 64 * 1024 * 1024);
    reader.limits(limits);
    let gray = reader
        .decode()
        .map_err(|e| QrError::Damaged(e.to_string()))?
        .into_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(gray);
    let grids = prepared.detect_grids();
    match grids.len() {
        0 => Err(QrError::NoCode),
        1 => {
            let (_, content) = grids[0].decode().map_err(|_| QrError::Unreadable)?;
            let lower = content.to_ascii_lowercase();
            if lower.starts_with("http:") || lower.starts_with("https:") || lower.contains("://") {
                return Err(QrError::NotAResetCode("a web address"));
            }
            Ok(content)
        }
        n => Err(QrError::SeveralCodes(n)),
    }
}
