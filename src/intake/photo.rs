//! The label photo: it must really be a JPEG or PNG of sane size. The header is read
//! before anything is decoded, so a picture that declares 100,000 × 100,000 pixels is
//! refused without allocating for it; then every pixel is decoded, in as little memory
//! as the format allows, so a truncated or corrupt file is refused too.
//!
//! The container is walked segment by segment as well: a photo carrying megabytes of
//! metadata is refused, and whatever follows the picture's end marker (a ZIP appended to
//! make a JPEG/ZIP polyglot, or a phone maker's trailer) is not kept, so the stored
//! evidence is only the picture the agent looks at. The same walk counts a JPEG's scans
//! and the samples each one decodes, so a progressive JPEG that repeats a cheap scan
//! hundreds of times (seconds of decoding for a few kilobytes) is refused before any
//! decoding starts.

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

/// How a picture file is laid out: its metadata size, where its end marker is, and how
/// much decoding its scans ask for.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    metadata: usize,
    end: usize,
    scans: u32,
    work: u64,
}

/// A photo whose file ends early or reads differently the second time.
pub fn damaged() -> Message {
    Message::new("problem.photo_damaged")
}

/// Scans a JPEG may have; more is refused before any decoding. A phone camera writes
/// baseline JPEGs (one scan); libjpeg's standard progression writes 10 (6 for grey), and
/// optimisers (mozjpeg, jpegrescan) stay near that. A progressive decoder walks every
/// block of a scan's components once per scan, and the standard lets a scan of a few
/// bytes stand for millions of blocks (end-of-band runs), so a file that repeats one
/// refinement scan hundreds of times keeps a core busy for many seconds while its bytes
/// stay small: LJT-01-003 in libjpeg-turbo's "Two Issues with the JPEG Standard" (2018,
/// the root of many oss-fuzz timeouts since). libjpeg-turbo leaves the cap to the
/// application (`djpeg -maxscans`, `TJPARAM_SCANLIMIT`; its own fuzzers and NVIDIA DALI
/// use 500); Chromium's decoder gives up at its 100th scan, and so does LibreOffice's.
/// 99 is what Chromium shows: nothing a browser can display is refused, and nothing a
/// camera writes comes near it.
pub const MAX_JPEG_SCANS: u32 = 99;

/// The decoding work a picture may ask for, as samples decoded summed over its scans,
/// per pixel the desk accepts (`max_label_pixels`). The largest photo the desk takes,
/// encoded progressively by libjpeg's standard script in full colour without
/// subsampling, costs 14 per pixel (8 with the usual 4:2:0; 1.5 for a baseline phone
/// photo), so no ordinary photo is refused, and no picture makes the desk work harder
/// than that one: a 49-megapixel picture cannot repeat its scans up to the scan cap.
pub const MAX_DECODE_WORK_PER_PIXEL: u64 = 16;

fn u16_at(bytes: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes(
        bytes.get(at..at + 2)?.try_into().ok()?,
    )))
}

/// A JPEG's frame header: its size and each component's id and sampling factors.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    width: u32,
    height: u32,
    components: Vec<(u8, u32, u32)>,
}

impl Frame {
    fn parse(body: &[u8]) -> Option<Self> {
        let count = usize::from(*body.get(5)?);
        let mut components = Vec::with_capacity(count);
        for at in (6..6 + 3 * count).step_by(3) {
            let (id, sampling) = (*body.get(at)?, *body.get(at + 1)?);
            let (h, v) = (u32::from(sampling >> 4), u32::from(sampling & 0x0F));
            // Sampling factors are 1 to 4 (T.81 B.2.2); the work below divides by them.
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return None;
            }
            components.push((id, h, v));
        }
        Some(Self {
            width: u32::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?])),
            height: u32::from(u16::from_be_bytes([*body.get(1)?, *body.get(2)?])),
            components,
        })
    }

    /// The samples one scan decodes: each of its components at its own resolution.
    fn scan_work(&self, scan: &[u8]) -> Option<u64> {
        let count = usize::from(*scan.first()?);
        let h_max = self.components.iter().map(|c| c.1).max()?;
        let v_max = self.components.iter().map(|c| c.2).max()?;
        let mut work = 0u64;
        for at in (1..1 + 2 * count).step_by(2) {
            let id = *scan.get(at)?;
            let &(_, h, v) = self.components.iter().find(|c| c.0 == id)?;
            let columns = (self.width * h).div_ceil(h_max);
            let rows = (self.height * v).div_ceil(v_max);
            work += u64::from(columns) * u64::from(rows);
        }
        Some(work)
    }
}

/// What walking a JPEG's segments found, as far as it got.
#[derive(Debug, Default, PartialEq, Eq)]
struct JpegWalk {
    metadata: usize,
    frame: Option<Frame>,
    scans: u32,
    work: u64,
    /// Where the end-of-image marker ends; `None` when the walk stopped before it.
    end: Option<usize>,
}

/// A byte source that counts where it is.
struct Walker<R> {
    reader: R,
    at: usize,
}

impl<R: std::io::BufRead> Walker<R> {
    fn peek(&mut self) -> Option<u8> {
        self.reader.fill_buf().ok()?.first().copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.reader.consume(1);
        self.at += 1;
        Some(byte)
    }

    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buffer = vec![0; n];
        self.reader.read_exact(&mut buffer).ok()?;
        self.at += n;
        Some(buffer)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let skipped = std::io::copy(
            &mut std::io::Read::take(&mut self.reader, n as u64),
            &mut std::io::sink(),
        )
        .ok()?;
        self.at += n;
        (skipped == n as u64).then_some(())
    }

    /// Skips entropy-coded data: a 0xFF in it is followed by 0x00 (a stuffed byte) or a
    /// restart marker; anything else is the next segment's marker, which is returned.
    fn skip_entropy(&mut self) -> Option<u8> {
        loop {
            let buffer = self.reader.fill_buf().ok()?;
            if buffer.is_empty() {
                return None;
            }
            // The whole upload is one buffer: each 0xFF is found by memchr and judged by
            // the byte after it, without a call per byte (this walk was a tenth of
            // intake's CPU, profiled at 64 clients, when it went byte by byte).
            let mut from = 0;
            let mut marker = None;
            let mut split_at_end = false;
            while let Some(found) = memchr::memchr(0xFF, &buffer[from..]) {
                let ff = from + found;
                match buffer.get(ff + 1) {
                    Some(0x00 | 0xD0..=0xD7) => from = ff + 2,
                    // A fill byte: the last 0xFF is the one before the marker.
                    Some(0xFF) => from = ff + 1,
                    Some(&next) => {
                        marker = Some((ff + 2, next));
                        break;
                    }
                    None => {
                        from = ff + 1;
                        split_at_end = true;
                        break;
                    }
                }
            }
            if let Some((consumed, next)) = marker {
                self.reader.consume(consumed);
                self.at += consumed;
                return Some(next);
            }
            let consumed = if split_at_end { from } else { buffer.len() };
            self.reader.consume(consumed);
            self.at += consumed;
            if split_at_end {
                // A 0xFF ends the buffer: what follows it comes with the next one.
                loop {
                    match self.peek()? {
                        0x00 | 0xD0..=0xD7 => {
                            self.byte();
                            break;
                        }
                        0xFF => {
                            self.byte();
                        }
                        next => {
                            self.byte();
                            return Some(next);
                        }
                    }
                }
            }
        }
    }
}

/// Walks a JPEG (from just after its start marker) segment by segment to the end-of-image
/// marker, without decoding: metadata is skipped by its length, so a thumbnail inside
/// EXIF (a JPEG of its own) is not mistaken for the end, and each scan is counted with
/// the samples it decodes. Stops where the file ends or stops making sense, with what it
/// found so far; `end` says whether it reached the end.
fn walk_jpeg(reader: impl std::io::BufRead) -> JpegWalk {
    let mut walker = Walker { reader, at: 2 };
    let mut walk = JpegWalk::default();
    let mut pending = None;
    loop {
        let marker = match pending.take() {
            Some(marker) => marker,
            None => {
                if walker.byte() != Some(0xFF) {
                    return walk;
                }
                let mut marker = walker.byte();
                while marker == Some(0xFF) {
                    marker = walker.byte();
                }
                let Some(marker) = marker else { return walk };
                marker
            }
        };
        match marker {
            0xD9 => {
                walk.end = Some(walker.at);
                return walk;
            }
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(length) = walker.take(2).and_then(|b| u16_at(&b, 0)) else {
            return walk;
        };
        let Some(body) = length.checked_sub(2) else {
            return walk;
        };
        match marker {
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                // One frame per picture: a second one is not a photo.
                if walk.frame.is_some() {
                    return walk;
                }
                let Some(frame) = walker.take(body).and_then(|b| Frame::parse(&b)) else {
                    return walk;
                };
                walk.frame = Some(frame);
            }
            0xDA => {
                let work = walker
                    .take(body)
                    .and_then(|b| walk.frame.as_ref()?.scan_work(&b));
                let Some(work) = work else { return walk };
                walk.scans += 1;
                walk.work = walk.work.saturating_add(work);
                let Some(next) = walker.skip_entropy() else {
                    return walk;
                };
                pending = Some(next);
            }
            _ => {
                if matches!(marker, 0xE0..=0xEF | 0xFE) {
                    walk.metadata += length;
                }
                if walker.skip(body).is_none() {
                    return walk;
                }
            }
        }
    }
}

fn jpeg_layout(bytes: &[u8]) -> Option<Layout> {
    let walk = walk_jpeg(bytes.get(2..)?);
    Some(Layout {
        metadata: walk.metadata,
        end: walk.end?,
        scans: walk.scans,
        work: walk.work,
    })
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
            // One pass over the pixels, whatever the interlacing: counted from the size.
            return Some(Layout {
                metadata,
                end,
                scans: 1,
                work: 0,
            });
        }
        if kind[0].is_ascii_lowercase() {
            metadata += length;
        }
        at = end;
    }
}

/// A picture's kind and size as its header declares them, and for a JPEG its scans and
/// the decoding work they ask for, read without decoding a pixel, so the memory to
/// decode it can be reserved, and a picture too costly to decode refused, before it is
/// read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// Scans (a PNG has one): a progressive JPEG's decoder visits every block of a
    /// scan's components once per scan.
    pub scans: u32,
    /// Samples decoded, summed over the scans.
    pub work: u64,
}

impl Declared {
    /// The most memory reading the picture's pixels may take (the evidence worker): the
    /// proof, the picture in grey, and for a PNG the picture whole in RGBA as decoded.
    pub fn reading_memory(&self) -> u64 {
        let pixels = u64::from(self.width) * u64::from(self.height);
        let whole = if self.format == ImageFormat::Png {
            4 * pixels
        } else {
            0
        };
        self.proof_memory() + 2 * pixels + whole
    }

    /// The most memory proving the picture may take. A JPEG is decoded to one grey byte
    /// per pixel, with room for the decoder's coefficients; a PNG is read a row at a time.
    pub fn proof_memory(&self) -> u64 {
        let pixels = u64::from(self.width) * u64::from(self.height);
        match self.format {
            ImageFormat::Png => u64::from(self.width) * 8 * 4 + (1 << 20),
            _ => pixels * 3 + (1 << 20),
        }
    }

    /// Refuses a picture with more scans than [`MAX_JPEG_SCANS`], or whose scans ask for
    /// more decoding than [`MAX_DECODE_WORK_PER_PIXEL`] allows for `max_pixels`: from
    /// what the walk counted, before any decoding, and before the picture waits for a
    /// share of the picture work.
    pub fn check_cost(&self, max_pixels: u64) -> Result<(), Message> {
        if self.scans > MAX_JPEG_SCANS {
            return Err(Message::new("problem.picture_too_many_scans")
                .with("scans", self.scans)
                .with("max", MAX_JPEG_SCANS));
        }
        if self.work > max_pixels.saturating_mul(MAX_DECODE_WORK_PER_PIXEL) {
            return Err(Message::new("problem.picture_too_costly")
                .with("width", self.width)
                .with("height", self.height)
                .with("scans", self.scans));
        }
        Ok(())
    }
}

/// Reads what a JPEG or PNG declares: the PNG header chunk, or the JPEG's segments, its
/// frame header and every scan's header, skipping metadata by its length and entropy-coded
/// data without decoding it. A file cut off after its frame header still declares its
/// size (and the scans up to the cut).
pub fn declared(reader: impl std::io::Read) -> Option<Declared> {
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, reader);
    let mut start = [0; 2];
    std::io::Read::read_exact(&mut reader, &mut start).ok()?;
    if &start == b"\x89P" {
        let mut rest = [0; 22];
        std::io::Read::read_exact(&mut reader, &mut rest).ok()?;
        if &rest[..6] != b"NG\r\n\x1a\n" || &rest[10..14] != b"IHDR" {
            return None;
        }
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let (width, height) = (be32(&rest[14..18]), be32(&rest[18..22]));
        return Some(Declared {
            format: ImageFormat::Png,
            width,
            height,
            scans: 1,
            work: u64::from(width) * u64::from(height),
        });
    }
    if &start != b"\xff\xd8" {
        return None;
    }
    let walk = walk_jpeg(reader);
    let frame = walk.frame?;
    Some(Declared {
        format: ImageFormat::Jpeg,
        width: frame.width,
        height: frame.height,
        scans: walk.scans,
        work: walk.work,
    })
}

/// What a label photo's container and header say, read without decoding a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectedPhoto {
    declared: Declared,
    media_type: &'static str,
    picture_len: usize,
}

impl InspectedPhoto {
    /// What intake stores: the structure is all it checks on the request path.
    pub fn checked(&self) -> CheckedPhoto {
        CheckedPhoto {
            media_type: self.media_type,
            picture_len: self.picture_len as u64,
        }
    }

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
/// picture ends, a JPEG's scans), its declared size and the decoding its scans ask for,
/// all refused before any pixel is decoded.
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
    let declared = Declared {
        format,
        width,
        height,
        scans: layout.scans,
        work: match format {
            ImageFormat::Png => u64::from(width) * u64::from(height),
            _ => layout.work,
        },
    };
    declared.check_cost(max_pixels)?;
    Ok(InspectedPhoto {
        declared,
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

/// The proof and the pixels at once, for the evidence worker: the picture in grey (all
/// reading a label's codes needs), or `damaged` for what [`prove_label_photo`] refuses.
/// A PNG is decoded whole here, `reading_memory` bytes at most.
pub fn read_label_pixels(
    bytes: &[u8],
    inspected: &InspectedPhoto,
) -> Result<image::GrayImage, Message> {
    let bytes = &bytes[..inspected.picture_len];
    let (width, height) = (inspected.declared.width, inspected.declared.height);
    let grey = match inspected.declared.format {
        ImageFormat::Png => {
            prove_png(bytes).ok_or_else(damaged)?;
            let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
            let mut limits = image::Limits::default();
            limits.max_alloc = Some(inspected.declared.reading_memory());
            reader.limits(limits);
            reader.decode().map_err(|_| damaged())?.into_luma8()
        }
        _ => {
            let grey = decode_jpeg_grey(bytes, inspected.declared, Strictness::AsBrowsers)
                .ok_or_else(damaged)?;
            image::GrayImage::from_raw(width, height, grey).ok_or_else(damaged)?
        }
    };
    Ok(grey)
}

/// Whether every pixel decodes without an error even in a strict decoder. The lenient
/// decode intake and [`read_label_pixels`] use (as browsers are) paints grey from a bad
/// Huffman code on and says nothing, so damage in a JPEG's entropy-coded data shows only
/// here. Phone cameras' quirks fail it too, so the evidence worker asks it only of a
/// photo on which no code could be read. A PNG's decode is strict already.
pub fn decodes_strictly(bytes: &[u8], inspected: &InspectedPhoto) -> bool {
    let bytes = &bytes[..inspected.picture_len];
    match inspected.declared.format {
        ImageFormat::Png => prove_png(bytes).is_some(),
        _ => decode_jpeg_grey(bytes, inspected.declared, Strictness::Strict).is_some(),
    }
}

fn prove_jpeg(bytes: &[u8], declared: Declared) -> Option<()> {
    decode_jpeg_grey(bytes, declared, Strictness::AsBrowsers).map(drop)
}

/// How much a JPEG decode forgives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// As lenient as browsers are with phone cameras' quirks; damage that matters (a
    /// cut-off file, garbage segments) is still an error.
    AsBrowsers,
    /// Any error in the entropy-coded data is one.
    Strict,
}

/// Every pixel of a JPEG, in grey.
fn decode_jpeg_grey(bytes: &[u8], declared: Declared, strictness: Strictness) -> Option<Vec<u8>> {
    let options = DecoderOptions::default()
        .set_strict_mode(strictness == Strictness::Strict)
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
    decoder.decode_into(&mut grey).ok()?;
    Some(grey)
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

    /// A 244×244 grey progressive JPEG in 6 scans (libjpeg's progression for grey).
    const PROGRESSIVE: &[u8] = include_bytes!("../../fuzz/seeds/image_sniff/progressive-small.jpg");

    /// `jpeg` with its last scan repeated until it has `total` scans.
    fn with_scans(jpeg: &[u8], total: u32) -> Vec<u8> {
        let body = &jpeg[..jpeg.len() - 2];
        let starts: Vec<usize> = body
            .windows(2)
            .enumerate()
            .filter(|(_, w)| *w == [0xFF, 0xDA])
            .map(|(i, _)| i)
            .collect();
        let last = &body[*starts.last().expect("a scan")..];
        let mut out = body.to_vec();
        for _ in starts.len() as u32..total {
            out.extend_from_slice(last);
        }
        out.extend_from_slice(b"\xff\xd9");
        out
    }

    /// `jpeg` with its frame header saying `width` × `height`.
    fn declaring(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
        let mut out = jpeg.to_vec();
        let sof = out
            .windows(2)
            .position(|w| w == [0xFF, 0xC2])
            .expect("SOF2");
        out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        out
    }

    #[test]
    fn counts_each_scan_and_the_samples_it_decodes() {
        let progressive = declared(PROGRESSIVE).expect("a header");
        assert_eq!((progressive.scans, progressive.work), (6, 6 * 244 * 244));
        let checked = inspect_label_photo(PROGRESSIVE, DEFAULT_MAX_LABEL_PIXELS).expect("a photo");
        assert_eq!(checked.declared(), progressive);
        assert!(check_label_photo(PROGRESSIVE, DEFAULT_MAX_LABEL_PIXELS).is_ok());
        // A baseline colour photo: one scan, its chroma at most at full resolution.
        let baseline = declared(jpeg(300, 200).as_slice()).expect("a header");
        assert_eq!(baseline.scans, 1);
        assert!((60_000..=180_000).contains(&baseline.work), "{baseline:?}");
        let png = declared(png(300, 200).as_slice()).expect("a header");
        assert_eq!((png.scans, png.work), (1, 60_000));
    }

    #[test]
    fn the_walk_finds_the_same_markers_however_the_bytes_arrive() {
        // A baseline picture whose entropy-coded data also holds a restart marker, and
        // fill bytes before its end marker: what the walk must step over, not stop at.
        let plain = jpeg(300, 200);
        let middle = plain.len() / 2;
        let mut marked = plain[..middle].to_vec();
        marked.extend_from_slice(&[0xFF, 0xD3]);
        marked.extend_from_slice(&plain[middle..plain.len() - 2]);
        marked.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xD9]);
        for picture in [plain.as_slice(), marked.as_slice(), PROGRESSIVE] {
            let whole = walk_jpeg(&picture[2..]);
            assert_eq!(whole.end, Some(picture.len()));
            assert!(whole.scans >= 1 && whole.frame.is_some());
            // Read in small pieces, a 0xFF falls at the end of a piece, its next byte in
            // the piece after: every piece size walks to the same place.
            for capacity in [1, 2, 3, 5, 64, 4096] {
                let pieces = std::io::BufReader::with_capacity(capacity, &picture[2..]);
                assert_eq!(walk_jpeg(pieces), whole, "pieces of {capacity} bytes");
            }
        }
        // Cut inside the entropy-coded data, or just after a 0xFF: no end is found.
        let ff = plain.iter().rposition(|&b| b == 0xFF).unwrap();
        for cut in [&plain[..middle], &plain[..ff + 1]] {
            assert_eq!(walk_jpeg(&cut[2..]).end, None);
        }
    }

    #[test]
    fn refuses_more_scans_than_the_cap_before_decoding() {
        let at_cap = with_scans(PROGRESSIVE, MAX_JPEG_SCANS);
        assert!(inspect_label_photo(&at_cap, DEFAULT_MAX_LABEL_PIXELS).is_ok());
        let bomb = with_scans(PROGRESSIVE, 300);
        // The walk the desk does before the picture waits for its share...
        let walked = declared(bomb.as_slice()).expect("a header");
        assert_eq!(walked.scans, 300);
        let err = walked.check_cost(DEFAULT_MAX_LABEL_PIXELS).unwrap_err();
        assert!(err.english().contains("(300 passes;"), "{}", err.english());
        // ...and the inspection any check does before decoding.
        let err = inspect_label_photo(&bomb, DEFAULT_MAX_LABEL_PIXELS).unwrap_err();
        assert!(
            err.english().contains("we accept up to 99"),
            "{}",
            err.english()
        );
        let over = with_scans(PROGRESSIVE, MAX_JPEG_SCANS + 1);
        assert!(inspect_label_photo(&over, DEFAULT_MAX_LABEL_PIXELS).is_err());
    }

    #[test]
    fn refuses_scans_that_cost_more_than_the_largest_photo() {
        // 7000 × 7000 in 16 scans is what the largest photo may cost, progressive in
        // full colour; in 40 it is two and a half times that, under the scan cap.
        let large = declaring(PROGRESSIVE, 7000, 7000);
        let sixteen = with_scans(&large, 16);
        assert!(inspect_label_photo(&sixteen, DEFAULT_MAX_LABEL_PIXELS).is_ok());
        let forty = with_scans(&large, 40);
        let err = inspect_label_photo(&forty, DEFAULT_MAX_LABEL_PIXELS)
            .unwrap_err()
            .english();
        assert!(
            err.contains("would take too long to read") && err.contains("7000×7000"),
            "{err}"
        );
        // The bound follows the operator's pixel cap: 25 megapixels in 32 scans cost
        // what 50 may, not what 40 may.
        let smaller = with_scans(&declaring(PROGRESSIVE, 5000, 5000), 32);
        assert!(inspect_label_photo(&smaller, DEFAULT_MAX_LABEL_PIXELS).is_ok());
        assert!(inspect_label_photo(&smaller, 40_000_000).is_err());
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
