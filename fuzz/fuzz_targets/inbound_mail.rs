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

/// `InboundMail::parse` catches a panic of the MIME parser (mail-parser) and refuses
/// the message, as the desk must; libFuzzer's panic hook would abort before that. So a
/// panic raised inside mail-parser's own source is left to unwind to that catch, and
/// every other panic (ours) still aborts and is reported.
fn let_the_parsers_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_parser = info
                .location()
                .is_some_and(|at| at.file().contains("/mail-parser-"));
            if !in_parser {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_the_parsers_panics_unwind();
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
