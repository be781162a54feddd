//! The label photo: it must really be a JPEG or PNG of sane size. The header is read
//! before anything is decoded, so a picture that declares 100,000 × 100,000 pixels is
//! refused without allocating for it; then the whole picture is decoded under memory
//! limits, so a truncated or corrupt file is refused too.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

/// The smallest side a readable label photo can have.
pub const MIN_SIDE: u32 = 200;
pub const MAX_SIDE: u32 = 16_384;

/// Names what a non-image upload is, so the message can say "this is a PDF".
fn what_is(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    if head.starts_with(b"%PDF") {
        "a PDF document"
    } else if head.starts_with(b"GIF8") {
        "a GIF picture"
    } else if head.starts_with(b"RIFF") {
        "a WebP picture"
    } else if text.contains("<svg") {
        "an SVG drawing"
    } else if text.contains("<html") || text.contains("<!doctype") {
        "a web page"
    } else if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive"
    } else if bytes.is_empty() {
        "empty"
    } else {
        "not a picture we can read"
    }
}

/// Checks a label photo; returns its media type.
pub fn check_label_photo(bytes: &[u8], max_pixels: u64) -> Result<&'static str, String> {
    let (format, media_type) = if bytes.starts_with(b"\xff\xd8\xff") {
        (ImageFormat::Jpeg, "image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        (ImageFormat::Png, "image/png")
    } else {
        return Err(format!(
            "the label photo must be a JPEG or PNG picture; this file is {}",
            what_is(bytes)
        ));
    };
    let reader = || ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader()
        .into_dimensions()
        .map_err(|_| "the label photo is damaged: its header cannot be read".to_owned())?;
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > max_pixels {
        return Err(format!(
            "the label photo is {width}×{height} pixels; at most {max_pixels} pixels are accepted (a phone photo fits)"
        ));
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(format!(
            "the label photo is only {width}×{height} pixels; the serial number cannot be read on it (at least {MIN_SIDE}×{MIN_SIDE})"
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 << 20));
    let mut decoder = reader();
    decoder.limits(limits);
    decoder
        .decode()
        .map_err(|_| "the label photo is damaged or cut off: take or send it again".to_owned())?;
    Ok(media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::GrayImage::from_pixel(width, height, image::Luma([128]));
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn accepts_a_real_picture() {
        assert_eq!(
            check_label_photo(&png(400, 300), 50_000_000),
            Ok("image/png")
        );
    }

    #[test]
    fn refuses_other_files_by_name() {
        let err = check_label_photo(b"%PDF-1.7\n...", 50_000_000).unwrap_err();
        assert!(err.contains("PDF"), "{err}");
        let err = check_label_photo(b"<svg onload=alert(1)>", 50_000_000).unwrap_err();
        assert!(err.contains("SVG"), "{err}");
    }

    #[test]
    fn refuses_tiny_huge_and_truncated_pictures() {
        assert!(
            check_label_photo(&png(50, 50), 50_000_000)
                .unwrap_err()
                .contains("only 50×50")
        );
        assert!(
            check_label_photo(&png(400, 300), 10_000)
                .unwrap_err()
                .contains("at most 10000 pixels")
        );
        let full = png(400, 300);
        let cut = &full[..full.len() / 2];
        assert!(
            check_label_photo(cut, 50_000_000)
                .unwrap_err()
                .contains("damaged")
        );
    }

    #[test]
    fn refuses_a_declared_pixel_bomb_from_the_header() {
        // A PNG header that declares 100,000 × 100,000 pixels and carries no data.
        let mut bomb = png(200, 200);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let err = check_label_photo(&bomb, 50_000_000).unwrap_err();
        assert!(err.contains("damaged") || err.contains("at most"), "{err}");
    }
}
