//! The label photo: it must really be a JPEG or PNG of sane size. The header is read
//! before anything is decoded, so a picture that declares 100,000 × 100,000 pixels is
//! refused without allocating for it; then every pixel is decoded, in as little memory
//! as the format allows, so a truncated or corrupt file is refused too.
//!
//! The container is walked segment by segment as well: a photo carrying megabytes of
//! metadata is refused, and whatever follows the picture's end marker (a ZIP appended to
//! make a JPEG/ZIP polyglot, or a phone maker's trailer) is not kept, so the stored
//! evidence is only the picture the agent looks at.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

use crate::i18n::Message;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// The smallest side a readable label photo can have.
pub const MIN_SIDE: u32 = 200;
pub const MAX_SIDE: u32 = 16_384;
/// The pixel cap unless an operator sets `max_label_pixels`: a 50-megapixel phone photo
/// passes, a decompression bomb's declared size does not.
pub const DEFAULT_MAX_LABEL_PIXELS: u64 = 50_000_000;

/// Names what a non-image upload is, so the message can say "this is a PDF": the
/// catalogue key of its name.
fn what_is(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    if head.starts_with(b"%PDF") {
        "problem.photo_kind_pdf"
    } else if head.starts_with(b"GIF8") {
        "problem.photo_kind_gif"
    } else if head.starts_with(b"RIFF") {
        "problem.photo_kind_webp"
    } else if text.contains("<svg") {
        "problem.photo_kind_svg"
    } else if text.contains("<html") || text.contains("<!doctype") {
        "problem.photo_kind_web_page"
    } else if head.starts_with(b"PK\x03\x04") {
        "problem.photo_kind_zip"
    } else if bytes.is_empty() {
        "problem.photo_kind_empty"
    } else {
        "problem.photo_kind_unknown"
    }
}

/// Metadata (EXIF, ICC profiles, comments, PNG text chunks) a photo may carry. Phones
/// write well under 1 MB, depth maps and gain maps included.
pub const MAX_METADATA_BYTES: usize = 2 * 1024 * 1024;

/// A label photo that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedPhoto {
    pub media_type: &'static str,
    /// Where the picture ends: bytes after this are not part of it and are not stored.
    pub picture_len: u64,
}

/// How a picture file is laid out: its metadata size and where its end marker is.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    metadata: usize,
    end: usize,
}

/// A photo whose file ends early or reads differently the second time.
pub fn damaged() -> Message {
    Message::new("problem.photo_damaged")
}

fn u16_at(bytes: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes(
        bytes.get(at..at + 2)?.try_into().ok()?,
    )))
}

/// Walks JPEG segments to the end-of-image marker. Metadata segments are skipped by
/// their length, so a thumbnail inside EXIF (a JPEG of its own) is not mistaken for the end.
fn jpeg_layout(bytes: &[u8]) -> Option<Layout> {
    let mut at = 2;
    let mut metadata = 0;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        while *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            0xD9 => {
                return Some(Layout {
                    metadata,
                    end: at + 2,
                });
            }
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let length = u16_at(bytes, at + 2)?;
                if length < 2 {
                    return None;
                }
                if matches!(marker, 0xE0..=0xEF | 0xFE) {
                    metadata += length;
                }
                at += 2 + length;
                if marker == 0xDA {
                    // Entropy-coded data: a 0xFF in it is followed by 0x00 or a restart
                    // marker; anything else is the next segment.
                    loop {
                        let next = at + bytes.get(at..)?.iter().position(|&b| b == 0xFF)?;
                        match *bytes.get(next + 1)? {
                            0x00 | 0xD0..=0xD7 | 0xFF => at = next + 1,
                            _ => {
                                at = next;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Walks PNG chunks to IEND; ancillary chunks (lowercase first letter) are metadata.
fn png_layout(bytes: &[u8]) -> Option<Layout> {
    let mut at = 8;
    let mut metadata = 0;
    loop {
        let length =
            usize::try_from(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?)).ok()?;
        let kind = bytes.get(at + 4..at + 8)?;
        let end = at.checked_add(12)?.checked_add(length)?;
        if end > bytes.len() {
            return None;
        }
        if kind == b"IEND" {
            return Some(Layout { metadata, end });
        }
        if kind[0].is_ascii_lowercase() {
            metadata += length;
        }
        at = end;
    }
}

/// A picture's kind and size as its header declares them, read from the first few
/// kilobytes, so the memory to decode it can be reserved before it is read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

impl Declared {
    /// The most memory proving the picture may take. A JPEG is decoded to one grey byte
    /// per pixel, with room for the decoder's coefficients; a PNG is read a row at a time.
    pub fn proof_memory(&self) -> u64 {
        let pixels = u64::from(self.width) * u64::from(self.height);
        match self.format {
            ImageFormat::Png => u64::from(self.width) * 8 * 4 + (1 << 20),
            _ => pixels * 3 + (1 << 20),
        }
    }
}

/// Reads a JPEG's or PNG's declared size: the PNG header chunk, or the JPEG segments up
/// to the start of frame, skipping metadata by its length rather than reading it.
pub fn declared(reader: impl std::io::Read) -> Option<Declared> {
    let mut reader = std::io::BufReader::with_capacity(4096, reader);
    fn take(reader: &mut impl std::io::Read, n: usize) -> Option<Vec<u8>> {
        let mut buffer = vec![0; n];
        reader.read_exact(&mut buffer).ok()?;
        Some(buffer)
    }
    let be16 = |b: &[u8]| u32::from(u16::from_be_bytes([b[0], b[1]]));
    let start = take(&mut reader, 2)?;
    if start == b"\x89P" {
        let rest = take(&mut reader, 22)?;
        if &rest[..6] != b"NG\r\n\x1a\n" || &rest[10..14] != b"IHDR" {
            return None;
        }
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        return Some(Declared {
            format: ImageFormat::Png,
            width: be32(&rest[14..18]),
            height: be32(&rest[18..22]),
        });
    }
    if start != b"\xff\xd8" {
        return None;
    }
    // Metadata is bounded, so the frame header comes within a few megabytes.
    let mut skipped = 0usize;
    loop {
        let mut marker = take(&mut reader, 2)?;
        while marker[1] == 0xFF {
            marker = vec![0xFF, take(&mut reader, 1)?[0]];
        }
        if marker[0] != 0xFF {
            return None;
        }
        match marker[1] {
            0x01 | 0xD0..=0xD7 => continue,
            // Start of scan or end of image before any frame header.
            0xDA | 0xD9 => return None,
            _ => {}
        }
        let length = usize::try_from(be16(&take(&mut reader, 2)?))
            .ok()?
            .checked_sub(2)?;
        if matches!(marker[1], 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let frame = take(&mut reader, length.max(5))?;
            return Some(Declared {
                format: ImageFormat::Jpeg,
                width: be16(&frame[3..5]),
                height: be16(&frame[1..3]),
            });
        }
        skipped += length;
        if skipped > MAX_METADATA_BYTES + (1 << 20) {
            return None;
        }
        std::io::copy(
            &mut std::io::Read::take(&mut reader, length as u64),
            &mut std::io::sink(),
        )
        .ok()
        .filter(|copied| *copied == length as u64)?;
    }
}

/// What a label photo's container and header say, read without decoding a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectedPhoto {
    declared: Declared,
    media_type: &'static str,
    picture_len: usize,
}

impl InspectedPhoto {
    /// What the header declares, to compare with what was reserved for it.
    pub fn declared(&self) -> Declared {
        self.declared
    }
}

/// Checks a label photo; says what it is and how much of it is the picture.
pub fn check_label_photo(bytes: &[u8], max_pixels: u64) -> Result<CheckedPhoto, Message> {
    let inspected = inspect_label_photo(bytes, max_pixels)?;
    prove_label_photo(bytes, &inspected)
}

/// The cheap half of the check: the file's kind, its layout (metadata size, where the
/// picture ends) and its declared size, all refused before any pixel is decoded.
pub fn inspect_label_photo(bytes: &[u8], max_pixels: u64) -> Result<InspectedPhoto, Message> {
    let (format, media_type) = if bytes.starts_with(b"\xff\xd8\xff") {
        (ImageFormat::Jpeg, "image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        (ImageFormat::Png, "image/png")
    } else {
        return Err(
            Message::new("problem.photo_not_a_picture").with_message("kind", what_is(bytes))
        );
    };
    let layout = match format {
        ImageFormat::Png => png_layout(bytes),
        _ => jpeg_layout(bytes),
    }
    .ok_or_else(damaged)?;
    if layout.metadata > MAX_METADATA_BYTES {
        return Err(Message::new("problem.photo_metadata")
            .with("size", megabytes(layout.metadata))
            .with("max", megabytes(MAX_METADATA_BYTES)));
    }
    let (width, height) = ImageReader::with_format(Cursor::new(&bytes[..layout.end]), format)
        .into_dimensions()
        .map_err(|_| Message::new("problem.photo_header"))?;
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > max_pixels {
        return Err(Message::new("problem.photo_too_many_pixels")
            .with("width", width)
            .with("height", height)
            .with("max_pixels", max_pixels));
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(Message::new("problem.photo_too_small")
            .with("width", width)
            .with("height", height)
            .with("min", MIN_SIDE));
    }
    Ok(InspectedPhoto {
        declared: Declared {
            format,
            width,
            height,
        },
        media_type,
        picture_len: layout.end,
    })
}

/// The costly half: decodes every pixel, so a truncated or corrupt picture is refused.
/// Nothing is kept but the verdict: a JPEG is decoded to grey (colour conversion proves
/// nothing more), a PNG row by row, so proving a 50-megapixel PNG takes a row of memory.
pub fn prove_label_photo(
    bytes: &[u8],
    inspected: &InspectedPhoto,
) -> Result<CheckedPhoto, Message> {
    let bytes = &bytes[..inspected.picture_len];
    let decoded = match inspected.declared.format {
        ImageFormat::Png => prove_png(bytes),
        _ => prove_jpeg(bytes, inspected.declared),
    };
    decoded.ok_or_else(damaged)?;
    Ok(CheckedPhoto {
        media_type: inspected.media_type,
        picture_len: inspected.picture_len as u64,
    })
}

fn prove_jpeg(bytes: &[u8], declared: Declared) -> Option<()> {
    let options = DecoderOptions::default()
        // As lenient as browsers are with phone cameras' quirks; damage that matters
        // (a cut-off file, garbage segments) is still an error.
        .set_strict_mode(false)
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().ok()?;
    let info = decoder.info()?;
    // The header read by the decoder must agree with the one the size check read.
    if (u32::from(info.width), u32::from(info.height)) != (declared.width, declared.height) {
        return None;
    }
    let mut grey = vec![0; decoder.output_buffer_size()?];
    decoder.decode_into(&mut grey).ok()
}

fn prove_png(bytes: &[u8]) -> Option<()> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_limits(png::Limits { bytes: 64 << 20 });
    decoder.set_ignore_text_chunk(true);
    let mut reader = decoder.read_info().ok()?;
    while reader.next_row().ok()?.is_some() {}
    reader.finish().ok()
}

fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
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
        let picture = png(400, 300);
        assert_eq!(
            check_label_photo(&picture, 50_000_000),
            Ok(CheckedPhoto {
                media_type: "image/png",
                picture_len: picture.len() as u64
            })
        );
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 7])
        });
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .unwrap();
        out
    }

    /// `picture` with APP1 segments of `total` bytes inserted after SOI.
    fn with_app1(picture: &[u8], total: usize, content: &[u8]) -> Vec<u8> {
        let mut out = picture[..2].to_vec();
        let mut left = total;
        while left > 0 {
            let chunk = left.min(65_000);
            out.extend_from_slice(&[0xFF, 0xE1]);
            out.extend_from_slice(&((chunk + 2) as u16).to_be_bytes());
            out.extend(content.iter().copied().cycle().take(chunk));
            left -= chunk;
        }
        out.extend_from_slice(&picture[2..]);
        out
    }

    #[test]
    fn whatever_follows_the_picture_is_not_kept() {
        for picture in [jpeg(300, 200), png(300, 200)] {
            let mut polyglot = picture.clone();
            polyglot.extend_from_slice(b"PK\x03\x04 a zip archive follows");
            let checked = check_label_photo(&polyglot, 50_000_000).unwrap();
            assert_eq!(checked.picture_len, picture.len() as u64);
        }
    }

    #[test]
    fn a_thumbnail_inside_the_metadata_is_not_the_end_of_the_picture() {
        let picture = jpeg(300, 200);
        let thumbnail = jpeg(8, 8);
        let with_thumbnail = with_app1(&picture, thumbnail.len(), &thumbnail);
        let checked = check_label_photo(&with_thumbnail, 50_000_000).unwrap();
        assert_eq!(checked.picture_len, with_thumbnail.len() as u64);
    }

    #[test]
    fn the_declared_size_is_read_from_the_header_alone() {
        let picture = jpeg(300, 200);
        let thumbnail = jpeg(8, 8);
        let cases = [
            (png(640, 480), (640, 480)),
            (picture.clone(), (300, 200)),
            // The thumbnail's own frame header sits inside the metadata, and is skipped.
            (with_app1(&picture, thumbnail.len(), &thumbnail), (300, 200)),
            (with_app1(&picture, 1_500_000, b"Exif\0\0"), (300, 200)),
        ];
        for (bytes, size) in cases {
            let declared = declared(bytes.as_slice()).expect("a header");
            assert_eq!((declared.width, declared.height), size);
            // The same as the full inspection reads, which decides what is reserved.
            let inspected = inspect_label_photo(&bytes, DEFAULT_MAX_LABEL_PIXELS).expect("a photo");
            assert_eq!(inspected.declared(), declared);
        }
        // Only the first bytes are needed: a cut-off file still declares its size.
        let head = &picture[..picture.len() / 2];
        assert!(declared(head).is_some());
        for not_a_picture in [&b""[..], b"GIF89a", b"\xff\xd8\xff\xd9", &picture[..8]] {
            assert_eq!(declared(not_a_picture), None);
        }
    }

    #[test]
    fn refuses_megabytes_of_metadata() {
        let picture = jpeg(300, 200);
        let ok = with_app1(&picture, 500_000, b"Exif\0\0");
        assert!(check_label_photo(&ok, 50_000_000).is_ok());
        let bloated = with_app1(&picture, 10 * 1024 * 1024, b"Exif\0\0");
        let err = check_label_photo(&bloated, 50_000_000)
            .unwrap_err()
            .english();
        assert!(err.contains("10.0 MB of hidden data"), "{err}");
    }

    #[test]
    fn refuses_other_files_by_name() {
        let err = check_label_photo(b"%PDF-1.7\n...", 50_000_000)
            .unwrap_err()
            .english();
        assert!(err.contains("PDF"), "{err}");
        let err = check_label_photo(b"<svg onload=alert(1)>", 50_000_000)
            .unwrap_err()
            .english();
        assert!(err.contains("SVG"), "{err}");
    }

    #[test]
    fn refuses_tiny_huge_and_truncated_pictures() {
        assert!(
            check_label_photo(&png(50, 50), 50_000_000)
                .unwrap_err()
                .english()
                .contains("only 50×50")
        );
        assert!(
            check_label_photo(&png(400, 300), 10_000)
                .unwrap_err()
                .english()
                .contains("at most 10000 pixels")
        );
        let full = png(400, 300);
        let cut = &full[..full.len() / 2];
        assert!(
            check_label_photo(cut, 50_000_000)
                .unwrap_err()
                .english()
                .contains("damaged")
        );
    }

    #[test]
    fn refuses_a_declared_pixel_bomb_from_the_header() {
        // A PNG header that declares 100,000 × 100,000 pixels and carries no data.
        let mut bomb = png(200, 200);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let err = check_label_photo(&bomb, 50_000_000).unwrap_err().english();
        assert!(err.contains("damaged") || err.contains("at most"), "{err}");
    }
}
