//! Inbound e-mail (issue 21): every message the desk's mailbox or an MTA's pipe hands
//! over is read by `InboundMail::parse` before anything else looks at it: the size and
//! the number of parts are checked before the MIME parser runs, identifiers are cleaned,
//! HTML is turned into text, attachments are sorted by their bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resetdesk::mail::inbound::InboundMail;

/// The desk's limit (`mail_max_message_bytes`) is far above what libFuzzer makes; a
/// small one here also drives the refusal before parsing.
const MAX_BYTES: u64 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(mail) = InboundMail::parse(data, MAX_BYTES, "desk.example", Some("support@desk.example"))
    else {
        return;
    };
    // What goes back out in the desk's own headers must be a clean `<id>`, whatever came in.
    for id in std::iter::once(&mail.message_id).chain(&mail.references) {
        assert!(id.starts_with('<') && id.ends_with('>'), "{id:?}");
        assert!(
            id[1..id.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>'),
            "{id:?}"
        );
    }
    assert!(!mail.subject.contains(['\r', '\n']), "{:?}", mail.subject);
    let _ = mail.own_words();
});
