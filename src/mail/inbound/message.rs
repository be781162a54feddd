//! One inbound e-mail, read within limits into what the desk acts on: who sent it, which
//! messages it answers, whether a robot wrote it, its text and its files. Everything here
//! is hostile input: the size is checked before parsing, parts are counted, identifiers
//! that go back out in our headers are cleaned, and HTML is never kept.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::domain::EmailAddress;
use crate::i18n::{Lang, Message};

/// Parts a message may have, counted through forwarded messages: a phone's mail with a
/// few photos has a dozen.
pub const MAX_PARTS: usize = 100;
/// Forwarded messages inside forwarded messages are followed this deep.
const MAX_FORWARD_DEPTH: usize = 3;
/// Files looked at in one message; any more are named in the answer.
const MAX_FILES: usize = 10;
/// The text kept of a message: the start, where people write what they want.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// A Message-ID (or a reference to one) longer than this is not one.
const MAX_ID_CHARS: usize = 250;

/// Why a message is refused whole, unread: nothing in it can be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the message has {bytes} bytes; at most {max} are accepted")]
    TooLarge { bytes: u64, max: u64 },
    #[error("this is not an e-mail message")]
    NotAMessage,
    /// What From held, for the desk's log only: the refusal itself (an MTA's bounce)
    /// never repeats it.
    #[error("the message has no sender address the desk can answer")]
    NoSender(String),
    #[error("the message has {parts} MIME parts; at most {MAX_PARTS} are read")]
    TooManyParts { parts: usize },
}

/// What kind of file an attachment is, by its bytes first and its declared type second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// An XML export.
    Xml,
    /// A JPEG or PNG picture: a label photo, or a QR code's.
    Picture,
    /// An iPhone's HEIC/HEIF photo, which the desk cannot read.
    Heic,
    /// A zip archive: the desk opens no archives.
    Archive,
    /// Outlook's winmail.dat (TNEF): attachments the desk cannot unpack.
    Winmail,
    Other,
}

#[derive(Debug, Clone)]
pub struct MailFile {
    /// The name the sender gave, cleaned for showing (no paths, no controls).
    pub name: String,
    pub kind: FileKind,
    pub bytes: Vec<u8>,
}

/// An inbound e-mail as the desk reads it.
#[derive(Debug, Clone)]
pub struct InboundMail {
    /// `<…>`: the message's own Message-ID, or a hash of its bytes when it has none.
    pub message_id: String,
    pub sender: EmailAddress,
    /// The name in `From`, if any.
    pub sender_name: Option<String>,
    pub subject: String,
    /// `In-Reply-To` and `References`, each `<…>`, newest first.
    pub references: Vec<String>,
    /// Why the message is a robot's, taken and left alone (RFC 3834's auto-replies,
    /// bounces, reports, our own mail); `None` for a person's mail.
    pub automated: Option<&'static str>,
    /// Why a person's message must still get no answer from the desk: it came through a
    /// mailing list or group (`List-*`, `Precedence: list/bulk/junk`). It is taken like
    /// any other (a support address behind a Google Group gets these headers on every
    /// customer's mail); only the desk's answers saying what to fix are not sent.
    pub quiet: Option<&'static str>,
    /// The language the message says it is in (`Content-Language`) or reads like.
    pub language: Option<Lang>,
    /// The text, HTML converted to text; quoted earlier mail kept.
    pub text: String,
    pub files: Vec<MailFile>,
    /// Attachments left out, said in an answer: HEIC, archives, winmail.dat, too many.
    pub skipped: Vec<Message>,
}

impl InboundMail {
    /// Reads a message of at most `max_bytes`; `own_domain` is the domain of the desk's
    /// own Message-IDs, `own_address` its sender address (mail from either is a loop).
    pub fn parse(
        raw: &[u8],
        max_bytes: u64,
        own_domain: &str,
        own_address: Option<&str>,
    ) -> Result<Self, Refused> {
        if raw.len() as u64 > max_bytes {
            return Err(Refused::TooLarge {
                bytes: raw.len() as u64,
                max: max_bytes,
            });
        }
        // Before parsing: the parser follows forwarded messages to any depth, and a tree
        // thousands of levels deep overflows the stack when it is dropped. Every part
        // and every nesting level needs a Content-Type header, so counting them bounds
        // both, whatever the parser would make of them.
        let declared = count_ignoring_case(raw, b"content-type");
        if declared > 2 * MAX_PARTS {
            return Err(Refused::TooManyParts { parts: declared });
        }
        // The MIME parser has panicked on malformed input (a debug assertion on a
        // multipart whose parent it lost, found by our fuzzer; an index out of bounds on
        // a broken forwarded message, mail-parser issue 120). A message that makes it
        // panic is one the desk cannot read: refused like any other, never a crash of
        // the process (`mail-intake`) or of the mailbox watcher.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::read(raw, own_domain, own_address)
        }))
        .unwrap_or_else(|_| {
            tracing::error!("reading an e-mail panicked: refused as unreadable");
            Err(Refused::NotAMessage)
        })
    }

    /// [`Self::parse`] past its checks before parsing.
    fn read(raw: &[u8], own_domain: &str, own_address: Option<&str>) -> Result<Self, Refused> {
        let message = MessageParser::default()
            .parse(raw)
            .ok_or(Refused::NotAMessage)?;
        if message.headers().is_empty() {
            return Err(Refused::NotAMessage);
        }
        let parts = count_parts(&message, 0);
        if parts > MAX_PARTS {
            return Err(Refused::TooManyParts { parts });
        }
        let from = message.from().and_then(|a| a.first());
        let written = from.and_then(|a| a.address()).unwrap_or_default();
        let sender =
            EmailAddress::parse(written).map_err(|_| Refused::NoSender(printable(written, 80)))?;
        let sender_name = from
            .and_then(|a| a.name())
            .map(|n| printable(n, 200))
            .filter(|n| !n.is_empty());
        let message_id = message.message_id().and_then(clean_id).unwrap_or_else(|| {
            let digest = data_encoding::HEXLOWER.encode(&crate::crypto::sha256(raw));
            format!("<{digest}@inbound.resetdesk.invalid>")
        });
        let mut references: Vec<String> = Vec::new();
        for value in [message.in_reply_to(), message.references()] {
            let ids: Vec<&str> = match value {
                mail_parser::HeaderValue::Text(id) => vec![id.as_ref()],
                mail_parser::HeaderValue::TextList(ids) => {
                    ids.iter().rev().map(AsRef::as_ref).collect()
                }
                _ => Vec::new(),
            };
            for id in ids.into_iter().filter_map(clean_id) {
                if !references.contains(&id) && references.len() < 50 {
                    references.push(id);
                }
            }
        }
        let ours = |id: &str| {
            id.trim_end_matches('>')
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(own_domain))
        };
        let automated = automated(&message).or_else(|| {
            if ours(&message_id) {
                Some("one of the desk's own messages")
            } else if own_address.is_some_and(|own| sender.mailbox() == own) {
                Some("sent from the desk's own address")
            } else {
                None
            }
        });
        let text: String = message
            .body_text(0)
            .map(|t| printable_text(&t))
            .unwrap_or_default();
        let language = message
            .root_part()
            .content_language()
            .as_text_list()
            .and_then(|list| list.first().and_then(|l| Lang::from_accept_language(l)))
            .or_else(|| {
                message
                    .root_part()
                    .content_language()
                    .as_text()
                    .and_then(Lang::from_accept_language)
            })
            .or_else(|| guess_language(&text));
        let mut mail = Self {
            message_id,
            sender,
            sender_name,
            subject: message
                .subject()
                .map(|s| printable(s, 300))
                .unwrap_or_default(),
            references,
            automated,
            quiet: through_a_list(&message),
            language,
            text,
            files: Vec::new(),
            skipped: Vec::new(),
        };
        mail.collect_files(&message, 0);
        Ok(mail)
    }

    /// The attachments (inline pictures too), and those of forwarded messages.
    fn collect_files(&mut self, message: &mail_parser::Message<'_>, depth: usize) {
        for part in message.attachments() {
            let name = part.attachment_name().map(file_name).unwrap_or_default();
            let declared = part
                .content_type()
                .map(|ct| {
                    format!(
                        "{}/{}",
                        ct.ctype().to_ascii_lowercase(),
                        ct.subtype().unwrap_or("").to_ascii_lowercase()
                    )
                })
                .unwrap_or_default();
            let bytes: &[u8] = match &part.body {
                PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
                PartType::Text(t) => t.as_bytes(),
                PartType::Html(_) => continue,
                PartType::Message(forwarded) => {
                    if depth < MAX_FORWARD_DEPTH {
                        // A forwarded message's own text may hold the reset string.
                        if let Some(text) = forwarded.body_text(0)
                            && self.text.chars().count() < MAX_TEXT_CHARS
                        {
                            self.text.push_str("\n\n");
                            self.text.push_str(&printable_text(&text));
                        }
                        self.collect_files(forwarded, depth + 1);
                    }
                    continue;
                }
                PartType::Multipart(_) => continue,
            };
            let kind = file_kind(&name, &declared, bytes);
            // The answer never repeats the file's name: the sender's words (or a forger's,
            // with someone else's address in From) would reach whoever it names.
            match kind {
                FileKind::Heic => self.skipped.push(Message::new("mail_intake.skipped_heic")),
                FileKind::Archive => self
                    .skipped
                    .push(Message::new("mail_intake.skipped_archive")),
                FileKind::Winmail => self
                    .skipped
                    .push(Message::new("mail_intake.skipped_winmail")),
                FileKind::Other if declared.starts_with("text/plain") => {
                    // A reset string saved as a text file.
                    if self.text.chars().count() < MAX_TEXT_CHARS {
                        self.text.push_str("\n\n");
                        self.text
                            .push_str(&printable_text(&String::from_utf8_lossy(bytes)));
                    }
                }
                FileKind::Other => {}
                FileKind::Xml | FileKind::Picture if self.files.len() >= MAX_FILES => {
                    self.skipped
                        .push(Message::new("mail_intake.skipped_too_many").with("max", MAX_FILES));
                }
                FileKind::Xml | FileKind::Picture => self.files.push(MailFile {
                    name: if name.is_empty() { declared } else { name },
                    kind,
                    bytes: bytes.to_vec(),
                }),
            }
        }
        self.skipped.dedup();
        if self.text.chars().count() > MAX_TEXT_CHARS {
            self.text = self.text.chars().take(MAX_TEXT_CHARS).collect();
        }
    }

    /// The text the sender wrote, without the earlier mail their program quoted below
    /// it ("> …" lines and the "On … wrote:" line before them).
    pub fn own_words(&self) -> String {
        let mut kept: Vec<&str> = Vec::new();
        let lines: Vec<&str> = self.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('>') {
                break;
            }
            let next_quoted = lines
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with('>'));
            let attribution = trimmed.ends_with(':')
                && (next_quoted
                    || trimmed.contains(" wrote")
                    || trimmed.contains(" escribió")
                    || trimmed.starts_with("-----Original"));
            if attribution || trimmed.starts_with("-----Original Message") {
                break;
            }
            kept.push(line);
        }
        kept.join("\n").trim().to_owned()
    }
}

fn count_ignoring_case(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| window.eq_ignore_ascii_case(needle))
        .count()
}

fn count_parts(message: &mail_parser::Message<'_>, depth: usize) -> usize {
    message.parts.len()
        + message
            .parts
            .iter()
            .filter_map(|p| match &p.body {
                PartType::Message(inner) if depth < MAX_FORWARD_DEPTH + 1 => {
                    Some(count_parts(inner, depth + 1))
                }
                _ => None,
            })
            .sum::<usize>()
}

/// RFC 3834 and what mail robots add beside it: a message no answer may go back to.
/// Why a person's message came through a list or group, if it did (see
/// [`InboundMail::quiet`]).
fn through_a_list(message: &mail_parser::Message<'_>) -> Option<&'static str> {
    let present = |name: &str| message.header_raw(name).is_some();
    if ["List-Id", "List-Unsubscribe", "List-Post"]
        .iter()
        .any(|h| present(h))
    {
        return Some("a mailing list or group");
    }
    let precedence = message
        .header_raw("Precedence")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    ["bulk", "list", "junk"]
        .iter()
        .any(|p| precedence.starts_with(p))
        .then_some("Precedence: bulk, list or junk")
}

fn automated(message: &mail_parser::Message<'_>) -> Option<&'static str> {
    let raw = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if raw("Auto-Submitted").is_some_and(|v| !v.is_empty() && !v.starts_with("no")) {
        return Some("Auto-Submitted");
    }
    if raw("Precedence").is_some_and(|v| v.starts_with("auto_reply")) {
        return Some("Precedence");
    }
    if raw("Return-Path").is_some_and(|v| v.replace(' ', "") == "<>") {
        return Some("a bounce (empty Return-Path)");
    }
    if raw("X-Autoreply").is_some()
        || raw("X-Autorespond").is_some()
        || raw("X-Auto-Response-Suppress").is_some_and(|v| v.contains("all") || v.contains("oof"))
    {
        return Some("an automatic reply");
    }
    if message.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    }) {
        return Some("a delivery report");
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let local = from.split('@').next().unwrap_or_default();
    if [
        "mailer-daemon",
        "postmaster",
        "no-reply",
        "noreply",
        "do-not-reply",
    ]
    .contains(&local)
    {
        return Some("a robot's address");
    }
    None
}

/// A Message-ID or reference fit to go back out in our own headers: `<…>` of printable
/// ASCII with no spaces or angle brackets inside; anything else is dropped.
fn clean_id(raw: &str) -> Option<String> {
    let id = raw.trim().trim_start_matches('<').trim_end_matches('>');
    let fits = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'));
    fits.then(|| format!("<{id}>"))
}

/// A header's text on one line, controls and bidirectional overrides dropped.
fn printable(raw: &str, max_chars: usize) -> String {
    raw.chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A body's text: lines kept, other controls and bidirectional overrides dropped.
fn printable_text(raw: &str) -> String {
    raw.replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| (*c == '\n' || !c.is_control()) && !is_bidi_control(*c))
        .take(MAX_TEXT_CHARS)
        .collect()
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// An attachment's name, for showing only: the last path segment, printable, short.
fn file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    printable(last, 100)
}

fn file_kind(name: &str, declared: &str, bytes: &[u8]) -> FileKind {
    let lower = name.to_ascii_lowercase();
    let brand = bytes.get(4..12).unwrap_or_default();
    if lower == "winmail.dat" || declared == "application/ms-tnef" {
        FileKind::Winmail
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        FileKind::Picture
    } else if [
        b"ftypheic",
        b"ftypheix",
        b"ftyphevc",
        b"ftypmif1",
        b"ftypmsf1",
    ]
    .iter()
    .any(|b| brand == *b)
        || declared.starts_with("image/hei")
        || lower.ends_with(".heic")
        || lower.ends_with(".heif")
    {
        FileKind::Heic
    } else if bytes.starts_with(b"PK\x03\x04")
        || declared.contains("zip")
        || lower.ends_with(".zip")
    {
        FileKind::Archive
    } else if declared.ends_with("/xml")
        || lower.ends_with(".xml")
        || bytes
            .iter()
            .skip_while(|b| b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF)
            .take(5)
            .eq(b"<?xml".iter())
    {
        FileKind::Xml
    } else if declared.starts_with("image/") {
        // A picture in a format the desk does not read (GIF, WebP…): the photo checks
        // say so, as for the form.
        FileKind::Picture
    } else {
        FileKind::Other
    }
}

/// The language a text reads like, among those the desk speaks, from its commonest
/// words; `None` when it cannot tell.
fn guess_language(text: &str) -> Option<Lang> {
    const SPANISH: [&str; 14] = [
        "hola",
        "gracias",
        "contraseña",
        "cámara",
        "adjunto",
        "foto",
        "etiqueta",
        "por",
        "favor",
        "el",
        "la",
        "que",
        "de",
        "mi",
    ];
    const ENGLISH: [&str; 14] = [
        "hello", "hi", "thanks", "password", "camera", "attached", "photo", "label", "please",
        "the", "my", "is", "of", "and",
    ];
    let mut spanish = 0;
    let mut english = 0;
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .take(400)
        .map(str::to_lowercase)
    {
        spanish += usize::from(SPANISH.contains(&word.as_str()));
        english += usize::from(ENGLISH.contains(&word.as_str()));
    }
    match spanish.cmp(&english) {
        std::cmp::Ordering::Greater if spanish >= 2 => Some(Lang::Es),
        std::cmp::Ordering::Less if english >= 2 => Some(Lang::En),
        _ => None,
    }
}

/// The reset string a text holds, if it holds one: `RD` and a version digit, then groups
/// of up to five symbols split by dashes, spaces or line breaks (mail programs wrap long
/// lines). It ends at the first group shorter than five, or at anything else.
pub fn reset_string_in(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let start = upper.match_indices("RD").find_map(|(at, _)| {
        let before = upper[..at].chars().next_back();
        let version = upper[at + 2..].chars().next();
        (before.is_none_or(|c| !c.is_ascii_alphanumeric())
            && version.is_some_and(|v| v.is_ascii_digit()))
        .then_some(at)
    })?;
    let mut found = String::new();
    let mut groups = 0;
    for group in upper[start..].split(|c: char| c == '-' || c.is_whitespace()) {
        if group.is_empty() {
            continue;
        }
        if !group.chars().all(|c| c.is_ascii_alphanumeric()) || group.len() > 5 {
            if groups == 0 {
                // "RD2AB…" written without dashes: the whole word.
                found.push_str(group.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()));
            }
            break;
        }
        found.push_str(group);
        groups += 1;
        if group.len() < 5 || found.len() > crate::protocol::reset_string::MAX_RESET_STRING_CHARS {
            break;
        }
    }
    (found.len() > 3).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(raw: &str) -> InboundMail {
        InboundMail::parse(
            raw.as_bytes(),
            1 << 20,
            "desk.example",
            Some("support@desk.example"),
        )
        .unwrap()
    }

    #[test]
    fn a_persons_mail_is_read_with_its_references() {
        let m = mail(
            "From: Ana <ana@example.com>\r\nTo: support@desk.example\r\nSubject: Re: [RQ-AB12-CD34] photo\r\n\
             Message-ID: <abc@mail.example>\r\nIn-Reply-To: <ack.RQ-AB12-CD34.01@desk.example>\r\n\
             References: <x@y> <ack.RQ-AB12-CD34.01@desk.example>\r\n\r\nHola, gracias por la ayuda\r\n",
        );
        assert_eq!(m.message_id, "<abc@mail.example>");
        assert_eq!(m.sender.as_str(), "ana@example.com");
        assert_eq!(m.sender_name.as_deref(), Some("Ana"));
        assert_eq!(
            m.references,
            vec![
                "<ack.RQ-AB12-CD34.01@desk.example>".to_owned(),
                "<x@y>".to_owned()
            ]
        );
        assert_eq!(m.automated, None);
        assert_eq!(m.language, Some(Lang::Es));
    }

    #[test]
    fn robots_and_loops_are_recognised() {
        for header in [
            "Auto-Submitted: auto-replied",
            "Precedence: auto_reply",
            "Return-Path: <>",
            "X-Autoreply: yes",
        ] {
            let m = mail(&format!(
                "From: a@example.com\r\n{header}\r\nSubject: away\r\n\r\nI am away\r\n"
            ));
            assert!(m.automated.is_some(), "{header}");
            assert!(m.quiet.is_none(), "{header}");
        }
        // A person's mail through a list or group: taken, never answered.
        for header in ["Precedence: bulk", "List-Id: <list.example.com>"] {
            let m = mail(&format!(
                "From: a@example.com\r\n{header}\r\nSubject: reset\r\n\r\nhelp\r\n"
            ));
            assert!(m.automated.is_none() && m.quiet.is_some(), "{header}");
        }
        let own = mail("From: a@example.com\r\nMessage-ID: <ack.1@desk.example>\r\n\r\nx\r\n");
        assert!(own.automated.is_some());
        let from_us = mail("From: Support <SUPPORT@desk.example>\r\n\r\nx\r\n");
        assert!(from_us.automated.is_some());
        let person = mail("From: a@example.com\r\nAuto-Submitted: no\r\n\r\nx\r\n");
        assert_eq!(person.automated, None);
    }

    #[test]
    fn identifiers_that_would_inject_headers_are_dropped() {
        assert_eq!(clean_id("<a@b>"), Some("<a@b>".to_owned()));
        assert_eq!(clean_id("<a@b>\r\nBcc: x@y"), None);
        assert_eq!(clean_id("<a b@c>"), None);
        assert_eq!(clean_id(&format!("<{}@b>", "a".repeat(300))), None);
        let m = mail("From: a@example.com\r\nMessage-ID: <a\u{1}b@c>\r\n\r\nx\r\n");
        assert!(m.message_id.ends_with("@inbound.resetdesk.invalid>"));
    }

    #[test]
    fn refusals_name_the_problem() {
        let big = vec![b'a'; 2000];
        assert!(matches!(
            InboundMail::parse(&big, 1000, "d", None),
            Err(Refused::TooLarge {
                bytes: 2000,
                max: 1000
            })
        ));
        assert!(matches!(
            InboundMail::parse(b"Subject: x\r\n\r\nbody", 1000, "d", None),
            Err(Refused::NoSender(_))
        ));
    }

    #[test]
    fn deep_nesting_and_thousands_of_parts_are_refused_before_parsing() {
        let mut nested = b"From: a@x.example\r\nContent-Type: message/rfc822\r\n\r\n".to_vec();
        for _ in 0..200_000 {
            nested.extend(b"Content-Type: message/rfc822\r\n\r\n");
        }
        assert!(matches!(
            InboundMail::parse(&nested, 30 << 20, "d", None),
            Err(Refused::TooManyParts { .. })
        ));
        let mut parts =
            b"From: a@x.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for _ in 0..10_000 {
            parts.extend(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
        }
        parts.extend(b"--b--\r\n");
        assert!(matches!(
            InboundMail::parse(&parts, 30 << 20, "d", None),
            Err(Refused::TooManyParts { .. })
        ));
    }

    #[test]
    fn reset_strings_are_found_in_wrapped_text() {
        assert_eq!(
            reset_string_in("Here it is:\nRD2AB-CDEFG-\nHJKMN-PQ\nThanks, Ana").as_deref(),
            Some("RD2ABCDEFGHJKMNPQ")
        );
        assert_eq!(
            reset_string_in("rd1ab-cdefg hjk").as_deref(),
            Some("RD1ABCDEFGHJK")
        );
        assert_eq!(reset_string_in("the BIRD2 flew"), None);
        assert_eq!(reset_string_in("no string here"), None);
    }

    #[test]
    fn own_words_leave_the_quoted_mail_out() {
        let m = mail(
            "From: a@example.com\r\n\r\nHere is the photo.\r\n\r\nOn Mon, Support wrote:\r\n> old text\r\n",
        );
        assert_eq!(m.own_words(), "Here is the photo.");
    }
}
