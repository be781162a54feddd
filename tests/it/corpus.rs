//! The hostile-input corpus (tests/corpus/cases.toml): every case goes through the real
//! intake as the JSON API and as the HTML form. Each must get its expected status with a
//! message a person understands, never a 5xx or a panic, and a refused case must leave
//! no ticket, blob, outbox message or audit entry behind. Accepted cases with script in
//! their text fields must come out inert on every page and in the e-mail.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{ImageFormat, RgbImage};
use resetdesk::device;
use resetdesk::domain::{DeviceModel, DeviceSerial, FirmwareVersion, MacAddress, Timestamp};
use resetdesk::protocol::{
    DeviceChallenge, DeviceIdentity, ExportBinding, PROTOCOL_VERSION, ResetRequest, export_xml, qr,
    reset_string,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::desk_support::{Backend, TestApp, spawn_app_on_with};

/// The corpus must not shrink unnoticed.
const MIN_CASES: usize = 150;

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
    #[serde(default)]
    console: Vec<ConsoleCase>,
}

/// A request a signed-in agent makes in the console.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ConsoleCase {
    id: String,
    get: Option<String>,
    post: Option<String>,
    #[serde(default)]
    form: BTreeMap<String, String>,
    #[serde(default = "yes")]
    csrf: bool,
    status: u16,
    says: Option<String>,
    #[serde(default)]
    inert: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    export_xml: Option<String>,
    export_qr: Option<String>,
    label_photo: Option<String>,
    reset_string: Option<String>,
    #[serde(default)]
    no_export: bool,
    #[serde(default)]
    no_photo: bool,
    #[serde(default)]
    cameras: usize,
    /// The protocol version the devices export in (default: today's).
    protocol: Option<u8>,
    #[serde(default)]
    issued_hours_ago: i64,
    #[serde(default)]
    replace: Vec<(String, String)>,
    #[serde(default)]
    text: BTreeMap<String, String>,
    #[serde(default)]
    omit: Vec<String>,
    filename: Option<String>,
    raw: Option<String>,
    channels: Option<Vec<String>>,
    status: u16,
    says: Option<String>,
    #[serde(default)]
    inert: bool,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn load() -> Corpus {
    let text = std::fs::read_to_string(corpus_dir().join("cases.toml")).unwrap();
    let corpus: Corpus = toml::from_str(&text).expect("tests/corpus/cases.toml parses");
    let mut ids = std::collections::HashSet::new();
    for case in &corpus.case {
        assert!(
            ids.insert(case.id.clone()),
            "case {} appears twice",
            case.id
        );
    }
    for case in &corpus.console {
        assert!(
            ids.insert(case.id.clone()),
            "case {} appears twice",
            case.id
        );
        assert!(
            case.get.is_some() != case.post.is_some(),
            "case {}: get or post",
            case.id
        );
    }
    corpus
}

/// One part of a multipart body.
struct Part {
    name: Option<String>,
    filename: Option<String>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Part {
    fn text(name: &str, value: impl Into<Vec<u8>>) -> Self {
        Self {
            name: Some(name.to_owned()),
            filename: None,
            content_type: None,
            body: value.into(),
        }
    }

    fn file(name: &str, filename: &str, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            name: Some(name.to_owned()),
            filename: Some(filename.to_owned()),
            content_type: Some(content_type),
            body,
        }
    }
}

const BOUNDARY: &str = "corpus-boundary-7MA4YWxkTrZu0gW";

fn multipart(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = "Content-Disposition: form-data".to_owned();
        if let Some(name) = &part.name {
            disposition.push_str(&format!("; name=\"{name}\""));
        }
        if let Some(filename) = &part.filename {
            disposition.push_str(&format!("; filename=\"{}\"", filename.replace('"', "%22")));
        }
        out.extend_from_slice(disposition.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&part.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// A request as it goes on the wire: extra headers and a body.
struct Request {
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sent by hand over a socket (declared lengths that lie, trickled bodies).
    by_hand: Option<HandMade>,
}

enum HandMade {
    DeclaredLength(u64),
    Trickle,
}

fn form_request(parts: &[Part]) -> Request {
    Request {
        content_type: Some(format!("multipart/form-data; boundary={BOUNDARY}")),
        headers: Vec::new(),
        body: multipart(parts),
        by_hand: None,
    }
}

/// `n` characters of filler.
fn long(n: usize) -> String {
    "A".repeat(n)
}

/// Expands `@long:N` in a literal.
fn literal(value: &str) -> String {
    match value.strip_prefix("@long:") {
        Some(n) => long(n.parse().unwrap()),
        None => value.to_owned(),
    }
}

/// Everything one case needs that is made fresh for each channel.
struct Fresh {
    index: usize,
    request: ResetRequest,
    /// Another device's export, for "the MAC of something else" cases.
    other: ResetRequest,
}

fn identity(serial: &str) -> DeviceIdentity {
    DeviceIdentity {
        model: DeviceModel::parse("DS-7608NI-K2").unwrap(),
        serial: DeviceSerial::parse(serial).unwrap(),
        firmware: FirmwareVersion::parse("V5.7.3 build 220112").unwrap(),
        mac_address: Some(MacAddress::parse("A4:14:37:12:34:56").unwrap()),
        reserved_email: None,
    }
}

fn fresh(app: &TestApp, case: &Case, index: usize) -> Fresh {
    let keys = app.keys();
    let master = keys.master_secret().unwrap();
    let issued =
        Timestamp::from_unix_seconds(app.now().unix_seconds() - case.issued_hours_ago * 3600 - 60)
            .unwrap();
    let mut own = device::provision(
        identity(&format!("CORPUS-{index:05}")),
        &master,
        keys.public_keys().unwrap(),
    );
    let version = case.protocol.unwrap_or(PROTOCOL_VERSION);
    own.protocol = version;
    let request = device::export(&mut own, case.cameras, Some(&master), issued).unwrap();
    let mut other_state = device::provision(
        identity(&format!("OTHER-{index:05}")),
        &master,
        keys.public_keys().unwrap(),
    );
    other_state.protocol = version;
    let other = device::export(&mut other_state, 0, Some(&master), issued).unwrap();
    Fresh {
        index,
        request,
        other,
    }
}

fn element_line(xml: &str, element: &str) -> String {
    let open = format!("<{element}>");
    let close = format!("</{element}>");
    let start = xml.find(&open).unwrap();
    let end = xml[start..].find(&close).unwrap() + start + close.len();
    xml[start..end].to_owned()
}

/// Applies a case's replacements to an export's text.
fn apply_replacements(case: &Case, fresh: &Fresh, text: String) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    for (from, to) in &case.replace {
        let current = String::from_utf8_lossy(&bytes).into_owned();
        let (from, to): (String, Vec<u8>) = if let Some(element) = from.strip_prefix("@element:") {
            (element_line(&current, element), Vec::new())
        } else if let Some(rest) = from.strip_prefix("@set:") {
            let (element, value) = rest.split_once(':').unwrap();
            (
                element_line(&current, element),
                format!("<{element}>{value}</{element}>").into_bytes(),
            )
        } else if let Some(n) = from.strip_prefix("@truncate:") {
            bytes.truncate(n.parse().unwrap());
            continue;
        } else if from == "@flip-tag" {
            let tag = element_line(&current, "Tag");
            let flipped = tag.replacen("<Tag>", "<Tag>X", 1).replacen("X0", "1", 1);
            let flipped = if flipped.contains('X') {
                // The first digit was not 0: make it 0.
                let digit = &tag[5..6];
                tag.replacen(&format!("<Tag>{digit}"), "<Tag>0", 1)
            } else {
                flipped
            };
            (tag, flipped.into_bytes())
        } else if from == "@foreign-tag" {
            let other = export_xml::to_xml(&fresh.other);
            (
                element_line(&current, "Tag"),
                element_line(&other, "Tag").into_bytes(),
            )
        } else {
            let to = if let Some((text, hex)) = to.split_once("@bytes:") {
                let mut bytes = text.as_bytes().to_vec();
                bytes.extend(data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap());
                bytes
            } else if let Some(which) = to.strip_suffix("</ResetRequest>")
                && which.starts_with('@')
            {
                let source = match which {
                    "@same-device" => current.clone(),
                    "@other-device" => export_xml::to_xml(&fresh.other),
                    other => panic!("unknown device {other}"),
                };
                let device = &source[source.find("<Device>").unwrap()
                    ..source.find("</Device>").unwrap() + "</Device>".len()];
                format!("{device}</ResetRequest>").into_bytes()
            } else if let Some(rest) = to.strip_prefix("<Serial>@long:") {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                format!(
                    "<Serial>{}{}",
                    long(digits.parse().unwrap()),
                    &rest[digits.len()..]
                )
                .into_bytes()
            } else {
                to.clone().into_bytes()
            };
            (from.clone(), to)
        };
        assert!(
            current.contains(&from),
            "case {}: {from:?} is not in the export",
            case.id
        );
        bytes = replace_bytes(&bytes, from.as_bytes(), &to);
    }
    bytes
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut at = 0;
    while at < haystack.len() {
        if haystack[at..].starts_with(from) {
            out.extend_from_slice(to);
            at += from.len();
        } else {
            out.push(haystack[at]);
            at += 1;
        }
    }
    out
}

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn photo_image(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 200) as u8])
    })
}

/// A JPEG with `total` bytes of APP1 (EXIF) segments after its start marker.
fn with_exif(jpeg: &[u8], total: usize) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut left = total;
    while left > 0 {
        let chunk = left.min(65_000);
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((chunk + 2) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend(std::iter::repeat_n(0x4D, chunk - 6));
        left -= chunk;
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG whose header declares `width` × `height` and carries a few real pixels.
fn declaring_png(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&photo_image(200, 200), ImageFormat::Png);
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    // A careful forger fixes the header's checksum too.
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// CRC-32 as PNG chunks use it (IEEE, reflected).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn photo(kind: &str, app: &TestApp) -> Vec<u8> {
    let jpeg = || encode(&photo_image(640, 480), ImageFormat::Jpeg);
    match kind.split_once(':').map_or((kind, ""), |(k, a)| (k, a)) {
        ("", _) => jpeg(),
        ("png", _) => encode(&photo_image(640, 480), ImageFormat::Png),
        ("12mp", _) => encode(&photo_image(4000, 3000), ImageFormat::Jpeg),
        ("exif", size) => with_exif(&jpeg(), size.parse().unwrap()),
        ("polyglot", _) => {
            let mut bytes = jpeg();
            bytes.extend_from_slice(
                &std::fs::read(corpus_dir().join("files/images/archive.zip")).unwrap(),
            );
            bytes
        }
        ("png-trailer", _) => {
            let mut bytes = encode(&photo_image(640, 480), ImageFormat::Png);
            bytes.extend_from_slice(b"<script>alert(1)</script>");
            bytes
        }
        ("truncated", _) => {
            let bytes = jpeg();
            bytes[..bytes.len() / 2].to_vec()
        }
        ("header-only", _) => {
            let bytes = jpeg();
            bytes[..bytes.len().min(300)].to_vec()
        }
        ("magic-jpeg", _) => {
            let mut bytes = b"\xff\xd8\xff\xe0".to_vec();
            bytes.extend_from_slice(&[0x41; 5000]);
            bytes
        }
        ("png-magic-html", _) => {
            let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
            bytes.extend_from_slice(b"<html><script>alert(1)</script></html>");
            bytes
        }
        ("declares", size) => {
            let (width, height) = size.split_once('x').unwrap();
            declaring_png(width.parse().unwrap(), height.parse().unwrap())
        }
        ("tiny", _) => encode(&photo_image(60, 40), ImageFormat::Jpeg),
        ("oversize", _) => {
            let limit = app.desk.settings.intake.max_label_photo_bytes as usize;
            let mut bytes = jpeg();
            bytes.resize(limit + 1, 0);
            bytes
        }
        (other, _) => panic!("unknown photo kind {other}"),
    }
}

/// A picture of `codes` placed side by side on a white page of `width` × `height`.
fn qr_picture(codes: &[Vec<u8>], width: u32, height: u32) -> RgbImage {
    let mut page = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let mut x = 40;
    for png in codes {
        let code = image::load_from_memory(png).unwrap().into_rgb8();
        image::imageops::overlay(&mut page, &code, x, 40);
        x += i64::from(code.width()) + 60;
    }
    page
}

fn qr(kind: &str, fresh: &Fresh, app: &TestApp) -> Vec<u8> {
    let string = reset_string::encode(&fresh.request);
    let code = || qr::encode_png(&string).unwrap();
    match kind.split_once(':').map_or((kind, ""), |(k, a)| (k, a)) {
        ("", _) => code(),
        ("jpeg", _) => {
            let png = code();
            let picture = qr_picture(&[png], 900, 900);
            encode(&picture, ImageFormat::Jpeg)
        }
        ("screenshot", _) => encode(&qr_picture(&[code()], 1920, 1080), ImageFormat::Png),
        ("two", _) => {
            let other = qr::encode_png(&reset_string::encode(&fresh.other)).unwrap();
            let (a, b) = (code(), other);
            let width = 2 * image::load_from_memory(&a).unwrap().width() + 200;
            encode(
                &qr_picture(&[a, b], width, width / 2 + 200),
                ImageFormat::Png,
            )
        }
        ("text", text) => qr::text_png(text).unwrap(),
        ("typo", _) => qr::text_png(&mistype(&string, "typo")).unwrap(),
        ("truncated", _) => {
            let png = code();
            png[..png.len() / 2].to_vec()
        }
        (other, _) => {
            let _ = app;
            panic!("unknown QR kind {other}")
        }
    }
}

/// A different symbol that is not a look-alike of `c` (so it is a real typo).
fn other_symbol(c: char) -> char {
    if c == '7' { 'X' } else { '7' }
}

/// The reset string as a person might mistype or mangle it.
fn mistype(grouped: &str, kind: &str) -> String {
    let compact = reset_string::compact(grouped);
    let chars: Vec<char> = compact.chars().collect();
    let at = 10;
    let with = |f: &dyn Fn(&mut Vec<char>)| {
        let mut c = chars.clone();
        f(&mut c);
        c.into_iter().collect::<String>()
    };
    match kind {
        "" => grouped.to_owned(),
        "lower" => grouped.to_lowercase(),
        "compact" => compact,
        "spaces" => grouped.replace('-', " "),
        "lookalike" => {
            let (head, payload) = grouped.split_at(3);
            format!("{head}{}", payload.replace('0', "O").replace('1', "I"))
        }
        "padded" => format!("  \n{grouped}\n\t "),
        "lines" => grouped
            .split('-')
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.join("-"))
            .collect::<Vec<_>>()
            .join("\r\n"),
        "typo" => with(&|c| c[at] = other_symbol(c[at])),
        "swap" => with(&|c| {
            let i = (at..c.len() - 1).find(|&i| c[i] != c[i + 1]).unwrap();
            c.swap(i, i + 1);
        }),
        "delete" => with(&|c| {
            c.remove(at);
        }),
        "double" => with(&|c| c.insert(at, c[at])),
        "drop-group" => {
            let mut groups: Vec<&str> = grouped.split('-').collect();
            groups.remove(2);
            groups.join("-")
        }
        "typo-check" => with(&|c| {
            let last = c.len() - 1;
            c[last] = other_symbol(c[last]);
        }),
        "letter-u" => with(&|c| c[at] = 'U'),
        "half" => chars[..chars.len() / 2].iter().collect(),
        "prefix" => format!("XD{}", &compact[2..]),
        "version" => format!("RD9{}", &compact[3..]),
        "emoji" => with(&|c| c.insert(at, '😀')),
        "zero-width" => with(&|c| c.insert(at, '\u{200B}')),
        "rtl" => with(&|c| c.insert(at, '\u{202E}')),
        "nul" => with(&|c| c.insert(at, '\0')),
        other => panic!("unknown reset string kind {other}"),
    }
}

/// The own export's entries with the other device's (a fresh stand-alone export of
/// someone else's camera) put in `first`, in the `middle` or `last`: the stitched export
/// of issue 15.
fn stitched_entries(fresh: &Fresh, position: &str) -> Vec<DeviceChallenge> {
    let mut entries = fresh.request.devices().to_vec();
    let at = match position {
        "first" => 0,
        "middle" => entries.len().div_ceil(2),
        "last" => entries.len(),
        other => panic!("unknown position {other}"),
    };
    entries.insert(at, fresh.other.devices()[0].clone());
    entries
}

/// A stitched reset string. Version 2 strings carry the binding once, so the attacker
/// writes the own export's binding for every entry (and the check symbols anew).
fn stitched_string(fresh: &Fresh, position: &str) -> String {
    let mut entries = stitched_entries(fresh, position);
    if let Some(binding) = fresh.request.binding() {
        let binding = ExportBinding {
            export_id: binding.export_id,
            exported_by: entries[0].identity.serial.clone(),
        };
        for entry in &mut entries {
            entry.binding = Some(binding.clone());
        }
    }
    reset_string::encode(&ResetRequest::new(entries).unwrap())
}

fn file_input(spec: &str, fresh: &Fresh, app: &TestApp, case: &Case) -> Vec<u8> {
    if spec == "@export" {
        return apply_replacements(case, fresh, export_xml::to_xml(&fresh.request));
    }
    if let Some(position) = spec.strip_prefix("@stitched:") {
        return export_xml::write_entries(&stitched_entries(fresh, position)).into_bytes();
    }
    if let Some(kind) = spec.strip_prefix("@photo") {
        return photo(kind.trim_start_matches(':'), app);
    }
    if let Some(kind) = spec.strip_prefix("@qr") {
        return qr(kind.trim_start_matches(':'), fresh, app);
    }
    if let Some(text) = spec.strip_prefix("@text:") {
        return text.as_bytes().to_vec();
    }
    if let Some(depth) = spec.strip_prefix("@nested:") {
        let depth: usize = depth.parse().unwrap();
        let mut xml =
            "<?xml version=\"1.0\"?><ResetRequest xmlns=\"urn:resetdesk:reset-request\" version=\"1\">"
                .to_owned();
        xml.push_str(&"<Device>".repeat(depth));
        xml.push_str(&"</Device>".repeat(depth));
        xml.push_str("</ResetRequest>");
        return xml.into_bytes();
    }
    if let Some(size) = spec.strip_prefix("@whitespace:") {
        let xml = export_xml::to_xml(&fresh.request);
        let at = xml.find("<Device>").unwrap();
        let mut bytes = xml.as_bytes()[..at].to_vec();
        bytes.resize(bytes.len() + size.parse::<usize>().unwrap(), b' ');
        bytes.extend_from_slice(&xml.as_bytes()[at..]);
        return bytes;
    }
    if spec == "@utf16" {
        let xml = export_xml::to_xml(&fresh.request).replace("UTF-8", "UTF-16");
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
        return bytes;
    }
    std::fs::read(corpus_dir().join("files").join(spec))
        .unwrap_or_else(|e| panic!("case {}: {spec}: {e}", case.id))
}

/// The customer's details: valid by default, changed as the case says.
fn customer(case: &Case, fresh: &Fresh, channel: &str) -> Vec<(String, String)> {
    let mut fields: BTreeMap<String, String> = [
        ("name", "Ana López".to_owned()),
        (
            "email",
            format!("corpus-{}-{channel}@example.com", fresh.index),
        ),
        ("phone", "+34 600 123 456".to_owned()),
        ("company", "Instalaciones Sur SL".to_owned()),
        ("country", "ES".to_owned()),
        ("role", "installer".to_owned()),
        ("purchase_channel", "Distribuidor Madrid".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (field, value) in &case.text {
        fields.insert(field.clone(), literal(value));
    }
    for field in &case.omit {
        fields.remove(field);
    }
    fields.into_iter().collect()
}

fn build(case: &Case, fresh: &Fresh, app: &TestApp, channel: &str) -> Request {
    if let Some(raw) = &case.raw {
        return raw_request(raw, case, fresh, app, channel);
    }
    form_request(&parts(case, fresh, app, channel))
}

fn parts(case: &Case, fresh: &Fresh, app: &TestApp, channel: &str) -> Vec<Part> {
    let mut parts: Vec<Part> = customer(case, fresh, channel)
        .into_iter()
        .map(|(name, value)| Part::text(&name, value))
        .collect();
    let explicit_export =
        case.export_xml.is_some() || case.export_qr.is_some() || case.reset_string.is_some();
    if !case.no_export {
        if let Some(spec) = &case.export_xml {
            parts.push(Part::file(
                "export_xml",
                "export.xml",
                "application/xml",
                file_input(spec, fresh, app, case),
            ));
        }
        if let Some(spec) = &case.export_qr {
            parts.push(Part::file(
                "export_qr",
                "reset-code.png",
                "image/png",
                file_input(spec, fresh, app, case),
            ));
        }
        if let Some(spec) = &case.reset_string {
            let grouped = reset_string::encode(&fresh.request);
            let value = match spec.strip_prefix("@export") {
                Some(kind) => {
                    let kind = kind.trim_start_matches(':');
                    if let Some(position) = kind.strip_prefix("stitched-") {
                        stitched_string(fresh, position)
                    } else if kind == "other-device-check" {
                        let own = reset_string::compact(&grouped);
                        let other = reset_string::compact(&reset_string::encode(&fresh.other));
                        format!("{}{}", &own[..own.len() - 2], &other[other.len() - 2..])
                    } else {
                        mistype(&grouped, kind)
                    }
                }
                None => literal(spec),
            };
            parts.push(Part::text("reset_string", value));
        }
        if !explicit_export {
            parts.push(Part::file(
                "export_xml",
                "export.xml",
                "application/xml",
                export_xml::to_xml(&fresh.request).into_bytes(),
            ));
        }
    } else if let Some(spec) = &case.reset_string {
        parts.push(Part::text("reset_string", literal(spec)));
    }
    if !case.no_photo {
        let spec = case.label_photo.as_deref().unwrap_or("@photo");
        let filename = case
            .filename
            .as_deref()
            .map_or("label.jpg".to_owned(), literal);
        parts.push(Part::file(
            "label_photo",
            &filename,
            "image/jpeg",
            file_input(spec, fresh, app, case),
        ));
    }
    parts
}

fn raw_request(kind: &str, case: &Case, fresh: &Fresh, app: &TestApp, channel: &str) -> Request {
    let good = || parts(case, fresh, app, channel);
    let with_type = |content_type: &str, body: Vec<u8>| Request {
        content_type: Some(content_type.to_owned()),
        headers: Vec::new(),
        body,
        by_hand: None,
    };
    match kind {
        "missing-boundary" => with_type("multipart/form-data", multipart(&good())),
        "wrong-boundary" => with_type(
            "multipart/form-data; boundary=something-else",
            multipart(&good()),
        ),
        "long-boundary" => {
            let boundary = "b".repeat(5000);
            with_type(
                &format!("multipart/form-data; boundary={boundary}"),
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAna\r\n--{boundary}--\r\n").into_bytes(),
            )
        }
        "json" => with_type(
            "application/json",
            br#"{"name":"Ana","email":"ana@example.com"}"#.to_vec(),
        ),
        "urlencoded" => with_type(
            "application/x-www-form-urlencoded",
            b"name=Ana&email=ana%40example.com".to_vec(),
        ),
        "text-plain" => with_type("text/plain", b"name=Ana".to_vec()),
        "no-content-type" => Request {
            content_type: None,
            headers: Vec::new(),
            body: multipart(&good()),
            by_hand: None,
        },
        "duplicate-name" => {
            let mut parts = good();
            parts.insert(0, Part::text("name", "Mallory"));
            form_request(&parts)
        }
        "duplicate-photo" => {
            let mut parts = good();
            parts.push(Part::file(
                "label_photo",
                "second.jpg",
                "image/jpeg",
                photo("", app),
            ));
            form_request(&parts)
        }
        "thousand-parts" => {
            let mut parts = good();
            for i in 0..1000 {
                parts.push(Part::text(&format!("extra{i}"), "x"));
            }
            form_request(&parts)
        }
        "nameless-part" => {
            let mut parts = good();
            parts.insert(
                0,
                Part {
                    name: None,
                    filename: None,
                    content_type: None,
                    body: b"who am I".to_vec(),
                },
            );
            form_request(&parts)
        }
        "no-disposition" => {
            let mut body =
                format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nhello\r\n").into_bytes();
            body.extend_from_slice(&multipart(&good()));
            with_type(&format!("multipart/form-data; boundary={BOUNDARY}"), body)
        }
        "unknown-field" => {
            let mut parts = good();
            parts.insert(0, Part::text("is_admin", "true"));
            form_request(&parts)
        }
        "unterminated" => {
            let mut body = multipart(&good());
            body.truncate(body.len() - BOUNDARY.len() - 200);
            with_type(&format!("multipart/form-data; boundary={BOUNDARY}"), body)
        }
        "empty-body" => form_request(&[]),
        "huge-length" => Request {
            by_hand: Some(HandMade::DeclaredLength(10 * 1024 * 1024 * 1024)),
            ..form_request(&good())
        },
        "gzip" => {
            let mut body = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03];
            body.extend_from_slice(&[0x4b; 4096]);
            Request {
                headers: vec![("Content-Encoding".to_owned(), "gzip".to_owned())],
                ..with_type(&format!("multipart/form-data; boundary={BOUNDARY}"), body)
            }
        }
        "latin1-name" => {
            let mut parts = good();
            parts.retain(|p| p.name.as_deref() != Some("name"));
            parts.insert(0, Part::text("name", b"Ana L\xf3pez".to_vec()));
            form_request(&parts)
        }
        "slow-body" => Request {
            by_hand: Some(HandMade::Trickle),
            ..form_request(&good())
        },
        other => panic!("unknown raw request {other}"),
    }
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

async fn send(app: &TestApp, path: &str, request: Request) -> Result<Answer, String> {
    if let Some(how) = request.by_hand {
        return send_by_hand(app, path, request.content_type, request.body, how).await;
    }
    let mut builder = app.client.post(app.url(path)).body(request.body);
    if let Some(content_type) = request.content_type {
        builder = builder.header("Content-Type", content_type);
    }
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let body = response.text().await.map_err(|e| format!("{e:?}"))?;
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// A request written to the socket by hand: a lying Content-Length, or a body trickled a
/// byte at a time.
async fn send_by_hand(
    app: &TestApp,
    path: &str,
    content_type: Option<String>,
    body: Vec<u8>,
    how: HandMade,
) -> Result<Answer, String> {
    let address = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut reader, mut writer) = stream.into_split();
    let length = match how {
        HandMade::DeclaredLength(length) => length,
        HandMade::Trickle => body.len() as u64,
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        content_type.unwrap_or_default()
    );
    writer
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let writing = tokio::spawn(async move {
        match how {
            HandMade::DeclaredLength(_) => {
                let _ = writer.write_all(&body).await;
            }
            HandMade::Trickle => {
                for byte in body.iter().take(200) {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    if writer.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                }
            }
        }
        writer
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reader.read_to_end(&mut answer),
    )
    .await;
    writing.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok(Answer {
        status,
        content_type,
        body: body.to_owned(),
    })
}

/// The message(s) the answer shows a person.
fn shown_message(answer: &Answer) -> String {
    if answer.content_type.starts_with("application/json") {
        let value: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let mut messages = vec![
            value["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ];
        if let Some(list) = value["errors"].as_array() {
            messages.extend(
                list.iter()
                    .filter_map(|e| e["message"].as_str())
                    .map(str::to_owned),
            );
        }
        messages.join(" | ")
    } else {
        // The form shows problems in alerts and beside each field.
        let marked = crate::html::visible_texts(&answer.body, ".alert, .error");
        if marked.is_empty() {
            crate::html::visible_text(&answer.body)
        } else {
            marked.join(" | ")
        }
    }
}

/// Strings that must never appear raw in HTML: each case's script-bearing inputs.
fn dangerous_inputs(case: &Case) -> Vec<String> {
    case.text
        .values()
        .map(|v| literal(v))
        .filter(|v| v.contains('<') || v.contains('"') || v.contains('\''))
        .collect()
}

fn check_inert(html: &str, dangerous: &[String], place: &str, problems: &mut Vec<String>) {
    for input in dangerous {
        if html.contains(input.as_str()) {
            problems.push(format!("{place}: {input:?} appears unescaped"));
        }
    }
    let lower = html.to_ascii_lowercase();
    // Quoted attribute values: escaped text cannot contain a raw quote, so these can
    // only be real attributes.
    for attribute in [
        "href=\"javascript:",
        "src=\"javascript:",
        "action=\"javascript:",
    ] {
        if lower.contains(attribute) {
            problems.push(format!("{place}: has {attribute}"));
        }
    }
}

/// Counts of everything a submission can store.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Stored {
    tickets: usize,
    blobs: usize,
    mails: i64,
    audit: usize,
}

/// The passes of the files a refused form's page offers back for the retry.
fn kept_files(page: &str) -> Vec<String> {
    ["kept_label_photo", "kept_export"]
        .iter()
        .flat_map(|name| crate::html::select_attrs(page, &format!("input[name={name}]"), "value"))
        .collect()
}

async fn stored(app: &TestApp) -> Stored {
    let (tickets, blobs, mails) = app.stored_counts().await;
    let audit = app
        .desk
        .store
        .audit_entries(0, None, 1_000_000)
        .await
        .unwrap()
        .len();
    Stored {
        tickets,
        blobs,
        mails,
        audit,
    }
}

fn picture_is_whole(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\xff\xd9") || bytes.ends_with(b"IEND\xae\x42\x60\x82")
}

/// The checks after an accepted case: the pages and the mail show its text inert, and
/// the stored label photo is the picture alone.
async fn check_accepted(
    app: &TestApp,
    agent: &reqwest::Client,
    case: &Case,
    answer: &Answer,
    email: &str,
    problems: &mut Vec<String>,
) {
    let (number, status_url) = if answer.content_type.starts_with("application/json") {
        let value: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        (
            value["ticket"].as_str().unwrap().to_owned(),
            value["status_url"].as_str().unwrap().to_owned(),
        )
    } else {
        (
            crate::html::text(&answer.body, "#ticket-number"),
            crate::html::select_attr(&answer.body, "#status-link", "href").replace("&amp;", "&"),
        )
    };
    let label = agent
        .get(app.url(&format!("/console/tickets/{number}/label")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    if !picture_is_whole(&label) {
        problems.push(format!(
            "the stored label photo of {number} has data after the picture"
        ));
    }
    if !case.inert {
        return;
    }
    let status_page = app.page(&status_url).await;
    check_inert(
        &status_page,
        &dangerous_inputs(case),
        "status page",
        problems,
    );
    let queue = app
        .console_page(agent, &format!("/console?q={number}"))
        .await;
    check_inert(&queue, &dangerous_inputs(case), "console queue", problems);
    let ticket = app
        .console_page(agent, &format!("/console/tickets/{number}"))
        .await;
    check_inert(
        &ticket,
        &dangerous_inputs(case),
        "console ticket page",
        problems,
    );
    // The text is there, escaped: the checks above looked at the right page.
    for input in dangerous_inputs(case) {
        if !crate::html::shows(&ticket, &input) {
            problems.push(format!("console ticket page does not show {input:?}"));
        }
    }
    app.run_outbox().await;
    let mails = app.mails_to(email);
    if mails.len() != 1 {
        problems.push(format!("{} acknowledgment mails to {email}", mails.len()));
    }
    for mail in mails {
        check_inert(
            &mail.html,
            &dangerous_inputs(case),
            "acknowledgment e-mail",
            problems,
        );
        let lower = mail.headers.to_ascii_lowercase();
        if lower.contains("\nbcc:") || lower.contains("\ncc:") {
            problems.push(format!(
                "the acknowledgment e-mail has extra recipients:\n{}",
                mail.headers
            ));
        }
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

async fn hostile_corpus(backend: Backend) {
    count_panics();
    let Some(app) = spawn_app_on_with(backend, |s| {
        s.intake.per_ip_per_hour = 100_000;
        // Short, so the trickled body (200 bytes at 10 a second) meets it quickly; long
        // enough that a 12-megapixel photo is read in time on a loaded 2-core machine
        // (2 s was not: a broken pipe while the whole suite ran).
        s.uploads.timeout_secs = 6;
    })
    .await
    else {
        return;
    };
    let app = Arc::new(app);
    app.create_agent("agent@vendor.test").await;
    let agent = app.sign_in("agent@vendor.test").await;
    let corpus = load();
    let cases = &corpus.case;
    assert!(
        cases.len() >= MIN_CASES,
        "the corpus has {} cases; it must keep at least {MIN_CASES}",
        cases.len()
    );
    let panics_before = PANICS.load(Ordering::SeqCst);
    let mut problems = Vec::new();
    let mut index = 0;
    let mut sent = 0;
    for case in cases {
        let channels = case
            .channels
            .clone()
            .unwrap_or_else(|| vec!["api".to_owned(), "form".to_owned()]);
        for channel in &channels {
            index += 1;
            let fresh = fresh(&app, case, index);
            let request = build(case, &fresh, &app, channel);
            let path = if channel == "api" {
                "/api/v1/requests"
            } else {
                "/"
            };
            let before = stored(&app).await;
            let answer = match send(&app, path, request).await {
                Ok(answer) => answer,
                Err(error) => {
                    problems.push(format!("{} via {channel}: no answer: {error}", case.id));
                    continue;
                }
            };
            sent += 1;
            let after = stored(&app).await;
            let label = format!("{} via {channel}", case.id);
            let shown = shown_message(&answer);
            if answer.status >= 500 {
                problems.push(format!("{label}: {} {shown}", answer.status));
                continue;
            }
            if answer.status != case.status {
                problems.push(format!(
                    "{label}: expected {}, got {}: {}",
                    case.status,
                    answer.status,
                    shown.chars().take(300).collect::<String>()
                ));
            }
            if let Some(says) = &case.says
                && !shown.to_lowercase().contains(&says.to_lowercase())
            {
                problems.push(format!(
                    "{label}: the message does not say {says:?}: {}",
                    shown.chars().take(300).collect::<String>()
                ));
            }
            if channel == "form" {
                if !answer.content_type.starts_with("text/html") {
                    problems.push(format!(
                        "{label}: the form answered {}",
                        answer.content_type
                    ));
                }
                check_inert(
                    &answer.body,
                    &dangerous_inputs(case),
                    &format!("{label}: form page"),
                    &mut problems,
                );
            } else if !answer.content_type.starts_with("application/json") {
                problems.push(format!("{label}: the API answered {}", answer.content_type));
            }
            if answer.status >= 400 {
                // A refused form keeps the files that passed their checks for its retry
                // (`intake::kept`): those, offered back on the page, are the only files
                // it may leave; nothing else, and no row at all.
                let kept = kept_files(&answer.body);
                let expected = Stored {
                    blobs: before.blobs + kept.len(),
                    ..before
                };
                if after != expected {
                    problems.push(format!(
                        "{label}: left behind {before:?} -> {after:?} ({} kept for the retry)",
                        kept.len()
                    ));
                }
                let stored = crate::desk_support::blob_names(&app.dir.path().join("data/blobs"));
                for pass in &kept {
                    let blob = pass.split('.').next().unwrap_or_default();
                    if !stored.iter().any(|name| name == blob) {
                        problems.push(format!("{label}: offers back {blob}, which is not stored"));
                    }
                }
            } else {
                if after.tickets != before.tickets + 1 {
                    problems.push(format!("{label}: accepted but {before:?} -> {after:?}"));
                }
                let email = customer(case, &fresh, channel)
                    .into_iter()
                    .find(|(k, _)| k == "email")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                check_accepted(&app, &agent, case, &answer, &email, &mut problems).await;
            }
        }
    }
    for case in &corpus.console {
        console_case(&app, &agent, case, &mut problems).await;
        sent += 1;
    }
    // Blob names are the desk's own, whatever the uploaded file was called.
    check_blob_names(&app.dir.path().join("data/blobs"), &mut problems);
    let panics = PANICS.load(Ordering::SeqCst) - panics_before;
    if panics > 0 {
        problems.push(format!("{panics} panics while the corpus ran"));
    }
    println!(
        "hostile corpus: {} intake cases, {} console cases, {sent} requests, {} problems",
        cases.len(),
        corpus.console.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

static CONSOLE_TICKETS: AtomicUsize = AtomicUsize::new(0);

/// One console case; `{ticket}` in its path is a fresh ticket submitted for it.
async fn console_case(
    app: &TestApp,
    agent: &reqwest::Client,
    case: &ConsoleCase,
    problems: &mut Vec<String>,
) {
    let label = format!("console {}", case.id);
    let path = case.get.as_ref().or(case.post.as_ref()).unwrap();
    let mut ticket = None;
    if path.contains("{ticket}") {
        let n = CONSOLE_TICKETS.fetch_add(1, Ordering::SeqCst);
        let email = format!("console-{n}@example.com");
        let mut device = app.device(&format!("CONSOLE-{n:04}"), "DS-7608NI-K2");
        let request = app.export(&mut device, 0, app.now());
        let form = crate::desk_support::export_part(
            crate::desk_support::customer_form(&email),
            &request,
            "xml",
        )
        .part(
            "label_photo",
            crate::desk_support::file_part(photo("", app), "label.jpg", "image/jpeg"),
        );
        let created: serde_json::Value = app.submit(form).await.json().await.unwrap();
        ticket = Some((
            created["ticket"].as_str().unwrap().to_owned(),
            created["status_url"].as_str().unwrap().to_owned(),
            email,
        ));
    }
    let path = match &ticket {
        Some((number, _, _)) => path.replace("{ticket}", number),
        None => path.replace("@long:10000", &long(10_000)),
    };
    let before = stored(app).await;
    let response = if case.get.is_some() {
        agent.get(app.url(&path)).send().await.unwrap()
    } else {
        let page_path = match &ticket {
            Some((number, _, _)) => format!("/console/tickets/{number}"),
            None => "/console".to_owned(),
        };
        let page = app.console_page(agent, &page_path).await;
        let mut form: Vec<(String, String)> = case
            .form
            .iter()
            .map(|(k, v)| (k.clone(), literal(v)))
            .collect();
        if case.csrf {
            form.push(("csrf".to_owned(), crate::desk_support::csrf(&page)));
        }
        agent.post(app.url(&path)).form(&form).send().await.unwrap()
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let after = stored(app).await;
    if status != case.status {
        problems.push(format!(
            "{label}: expected {}, got {status}: {}",
            case.status,
            crate::html::visible_text(&body)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    if let Some(says) = &case.says
        && !crate::html::visible_text(&body)
            .to_lowercase()
            .contains(&says.to_lowercase())
    {
        problems.push(format!("{label}: the page does not say {says:?}"));
    }
    if status >= 400 && after != before {
        problems.push(format!("{label}: refused but {before:?} -> {after:?}"));
    }
    check_inert(&body, &case.inert, &label, problems);
    if let Some((number, status_url, email)) = ticket {
        let page = app
            .console_page(agent, &format!("/console/tickets/{number}"))
            .await;
        check_inert(
            &page,
            &case.inert,
            &format!("{label}: ticket page"),
            problems,
        );
        let status_page = app.page(&status_url).await;
        check_inert(
            &status_page,
            &case.inert,
            &format!("{label}: status page"),
            problems,
        );
        app.run_outbox().await;
        for mail in app.mails_to(&email) {
            check_inert(
                &mail.html,
                &case.inert,
                &format!("{label}: e-mail"),
                problems,
            );
            let headers = mail.headers.to_ascii_lowercase();
            if headers.contains("\nbcc:") || headers.matches("\nsubject:").count() > 1 {
                problems.push(format!(
                    "{label}: e-mail headers were injected:\n{}",
                    mail.headers
                ));
            }
        }
    }
}

fn check_blob_names(dir: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            check_blob_names(&path, problems);
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy();
        if !name.chars().all(|c| c.is_ascii_hexdigit()) {
            problems.push(format!("a blob is named {name:?}"));
        }
    }
}

crate::on_both_backends!(hostile_corpus);

/// What a hostile e-mail must come to.
#[derive(Debug)]
enum MailExpect {
    /// Refused whole, unread (an MTA bounces it: `mail-intake` exits 65); the error says
    /// this.
    Refused(&'static str),
    /// Answered once, saying this (in English); no ticket.
    Answered(&'static str),
    /// A ticket, whose first message holds none of these.
    Ticket {
        not_in_text: &'static [&'static str],
    },
}

/// A raw message: headers as given (CRLF added), then the body.
fn raw_mail(headers: &[&str], body: &str) -> Vec<u8> {
    let mut raw = String::new();
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

fn base64_lines(bytes: &[u8]) -> String {
    data_encoding::BASE64
        .encode(bytes)
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
        .collect()
}

/// A stored zip archive (no compression) of the named files: what a phone's "share as
/// zip" makes.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, bytes) in files {
        let offset = out.len() as u32;
        let crc = crc32(bytes);
        let mut header = Vec::new();
        header.extend(0x0403_4b50u32.to_le_bytes());
        header.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        header.extend(crc.to_le_bytes());
        header.extend((bytes.len() as u32).to_le_bytes());
        header.extend((bytes.len() as u32).to_le_bytes());
        header.extend((name.len() as u16).to_le_bytes());
        header.extend(0u16.to_le_bytes());
        header.extend(name.as_bytes());
        out.extend(&header);
        out.extend(*bytes);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend(crc.to_le_bytes());
        central.extend((bytes.len() as u32).to_le_bytes());
        central.extend((bytes.len() as u32).to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0; 12]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let start = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0; 4]);
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The mail cases of the corpus (issue 21): every hostile shape goes through the real
/// intake (`mail::inbound::take`, what the mailbox watcher and `mail-intake` call). Each
/// is refused unread, answered once with what to fix, or made a ticket with its HTML
/// and tricks left out; none panics, and a refused one leaves nothing behind.
async fn hostile_mail(backend: Backend) {
    use resetdesk::mail::inbound::{TakeError, Taken, take};

    let Some(app) = spawn_app_on_with(backend, |_| {}).await else {
        return;
    };
    let export = |serial: &str| {
        let mut device = app.device(serial, "DS-7608NI-K2");
        let request = app.export(&mut device, 0, Timestamp::now());
        export_xml::to_xml(&request).into_bytes()
    };
    let photo = encode(&photo_image(640, 480), ImageFormat::Jpeg);
    let request_parts = |serial: &str, boundary: &str| {
        format!(
            "--{boundary}\r\nContent-Type: application/xml; name=\"export.xml\"\r\nContent-Disposition: attachment; filename=\"export.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--{boundary}\r\nContent-Type: image/jpeg; name=\"label.jpg\"\r\nContent-Disposition: attachment; filename=\"label.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            base64_lines(&export(serial)),
            base64_lines(&photo)
        )
    };

    let mut cases: Vec<(&str, Vec<u8>, MailExpect)> = Vec::new();

    // 10,000 parts: counted before the MIME parser runs.
    let mut body = String::new();
    for n in 0..10_000 {
        body.push_str(&format!(
            "--p\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n"
        ));
    }
    body.push_str("--p--\r\n");
    cases.push((
        "ten_thousand_parts",
        raw_mail(
            &[
                "From: a@example.com",
                "Message-ID: <parts@example.com>",
                "Content-Type: multipart/mixed; boundary=\"p\"",
            ],
            &body,
        ),
        MailExpect::Refused("MIME parts"),
    ));

    // Forwarded messages nested 5,000 deep: a parser that follows them all overflows its
    // stack; the count of Content-Type headers refuses it first.
    let mut nested = String::from("From: a@example.com\r\nMessage-ID: <deep@example.com>\r\n");
    for _ in 0..5_000 {
        nested.push_str("Content-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\n");
    }
    nested.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    cases.push((
        "deep_nesting",
        nested.into_bytes(),
        MailExpect::Refused("MIME parts"),
    ));

    // 30 MB: over `mail_max_message_bytes` (25 MiB), refused before it is parsed.
    let mut huge = raw_mail(
        &[
            "From: a@example.com",
            "Message-ID: <huge@example.com>",
            "Content-Type: text/plain",
        ],
        "",
    );
    huge.resize(huge.len() + 30 * 1024 * 1024, b'a');
    cases.push(("thirty_megabytes", huge, MailExpect::Refused("at most")));

    // No sender the desk could answer.
    cases.push((
        "no_from",
        raw_mail(
            &["Subject: hi", "Message-ID: <nofrom@example.com>"],
            "hello",
        ),
        MailExpect::Refused("no sender"),
    ));
    cases.push((
        "from_is_a_group_of_nobody",
        raw_mail(
            &[
                "From: undisclosed-recipients:;",
                "Message-ID: <group@example.com>",
            ],
            "hello",
        ),
        MailExpect::Refused("no sender"),
    ));

    // Encoded-word tricks: a display name that decodes to another address, a subject
    // that decodes to a line break and a Bcc header, a file name that decodes to a path.
    let trick_name = data_encoding::BASE64
        .encode(b"support@vendor.test <evil@attacker.example>\r\nBcc: victim@example.org");
    cases.push((
        "encoded_words",
        raw_mail(
            &[
                &format!("From: =?utf-8?B?{trick_name}?= <ana.encoded@example.com>"),
                "Subject: =?utf-8?Q?hello=0D=0ABcc:_victim@example.org?=",
                "Message-ID: <encoded@example.com>",
                "Content-Type: multipart/mixed; boundary=\"e\"",
            ],
            &format!(
                "--e\r\nContent-Type: text/plain\r\n\r\nNo photo here.\r\n--e\r\nContent-Type: application/xml; name=\"=?utf-8?B?{}?=\"\r\nContent-Disposition: attachment; filename=\"=?utf-8?B?{}?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--e--\r\n",
                data_encoding::BASE64.encode(b"../../../etc/passwd"),
                data_encoding::BASE64.encode(b"../../../etc/passwd"),
                base64_lines(&export("ENCODED000001"))
            ),
        ),
        MailExpect::Answered("label"),
    ));

    // Header injection: a Message-ID and references carrying line breaks, spaces and
    // angle brackets, which the desk's own headers would repeat.
    cases.push((
        "header_injection",
        raw_mail(
            &[
                "From: ana.inject@example.com",
                "Subject: help",
                "Message-ID: <x@example.com>\r\n Bcc: victim@example.org",
                "In-Reply-To: <a@b>\r\n\tX-Injected: yes",
                "References: <ok@example.com> <bad id@example.com> <c<d@e>",
            ],
            "I need a password reset.",
        ),
        MailExpect::Answered("export"),
    ));

    // A zip of the export and the photo: never unpacked, named in the answer.
    let zip = zip_of(&[
        ("export.xml", &export("ZIPPED0000001")),
        ("label.jpg", &photo),
    ]);
    cases.push((
        "zip",
        raw_mail(
            &["From: ana.zip@example.com", "Subject: files", "Message-ID: <zip@example.com>", "Content-Type: multipart/mixed; boundary=\"z\""],
            &format!(
                "--z\r\nContent-Type: text/plain\r\n\r\nAll in the zip.\r\n--z\r\nContent-Type: application/zip; name=\"files.zip\"\r\nContent-Disposition: attachment; filename=\"files.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--z--\r\n",
                base64_lines(&zip)
            ),
        ),
        MailExpect::Answered("archives"),
    ));

    // HTML only, with script, styles and a tracking image: the ticket's message is text.
    cases.push((
        "html_with_script",
        raw_mail(
            &["From: ana.html@example.com", "Subject: reset", "Message-ID: <html@example.com>", "Content-Type: multipart/mixed; boundary=\"h\""],
            &format!(
                "--h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{{color:red}}</style><script>alert('x')</script></head><body><p onclick=\"steal()\">Please <b>reset</b> it</p><img src=\"https://tracker.example/p.gif\"></body></html>\r\n{}--h--\r\n",
                request_parts("HTMLMAIL00001", "h")
            ),
        ),
        MailExpect::Ticket { not_in_text: &["<script", "alert(", "onclick", "<b>", "tracker.example", "color:red"] },
    ));

    // Invalid UTF-8 and NUL bytes in the headers and the text.
    let mut broken = b"X-Junk: \xff\xfe\x00\x1b[31m\r\n".to_vec();
    broken.extend(raw_mail(
        &[
            "From: ana.bytes@example.com",
            "Subject: \u{202e}txt.exe",
            "Message-ID: <bytes@example.com>",
            "Content-Type: text/plain; charset=utf-8",
        ],
        "",
    ));
    broken.extend(b"reset please \xc3\x28 \x00 end\r\n");
    cases.push(("broken_bytes", broken, MailExpect::Answered("export")));

    let token = app.agent_token("agent@vendor.test").await;
    for (id, raw, expect) in cases {
        let before = app.stored_counts().await;
        let mails_before = app.mails().len();
        let taken = take(&app.desk, &raw).await;
        app.run_outbox().await;
        let after = app.stored_counts().await;
        let new_mails: Vec<_> = app.mails().into_iter().skip(mails_before).collect();
        for mail in &new_mails {
            // The desk's own headers stay whole: one recipient, nothing injected.
            let lower = mail.headers.to_ascii_lowercase();
            assert!(
                !lower.contains("bcc:") && !lower.contains("x-injected"),
                "{id}: {}",
                mail.headers
            );
            assert!(
                !mail.to.contains("victim") && !mail.to.contains("attacker"),
                "{id}: to {}",
                mail.to
            );
            assert!(
                !mail.subject.contains('\n') && !mail.subject.contains("victim"),
                "{id}: {}",
                mail.subject
            );
        }
        match expect {
            MailExpect::Refused(says) => {
                let Err(TakeError::Refused(why)) = &taken else {
                    panic!("{id}: refused, not {taken:?}");
                };
                assert!(why.to_string().contains(says), "{id}: {why}");
                assert_eq!(after, before, "{id}: nothing stored");
                assert!(new_mails.is_empty(), "{id}: nothing sent");
            }
            MailExpect::Answered(says) => {
                assert!(matches!(taken, Ok(Taken::Answered)), "{id}: {taken:?}");
                assert_eq!(after.0, before.0, "{id}: no ticket");
                assert_eq!(new_mails.len(), 1, "{id}: one answer");
                assert!(
                    new_mails[0].text.contains(says),
                    "{id}: {}",
                    new_mails[0].text
                );
            }
            MailExpect::Ticket { not_in_text } => {
                let Ok(Taken::NewTicket(number)) = &taken else {
                    panic!("{id}: a ticket, not {taken:?}");
                };
                let ticket: serde_json::Value = app
                    .api_get(&token, &format!("/api/v1/tickets/{number}"))
                    .await
                    .json()
                    .await
                    .unwrap();
                let text = ticket["messages"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(text.contains("reset"), "{id}: the words are kept: {text}");
                for bad in not_in_text {
                    assert!(!text.contains(bad), "{id}: {bad:?} in {text}");
                }
            }
        }
    }
}

crate::on_both_backends!(hostile_mail);
