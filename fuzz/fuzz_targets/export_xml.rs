//! The device's XML export, as uploaded by anyone on the internet: the strict reader in
//! `protocol/xml.rs` and the field parsers behind it. A document that reads must also
//! survive being written again, in XML and, when it fits, as a reset string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resetdesk::protocol::{export_xml, reset_string};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = export_xml::from_xml(data) else {
        return;
    };
    let written = export_xml::to_xml(&request);
    assert_eq!(
        export_xml::from_xml(written.as_bytes()).as_ref(),
        Ok(&request),
        "an export we read must read back the same after we write it:\n{written}"
    );
    if request.devices().len() <= reset_string::MAX_DEVICES_PER_STRING {
        let grouped = reset_string::encode(&request);
        let compact = reset_string::compact(&grouped);
        // Long fields on many devices can exceed what the decoder reads; that limit is
        // documented (MAX_RESET_STRING_CHARS), so only strings within it must round-trip.
        for text in [grouped, compact] {
            if text.len() <= reset_string::MAX_RESET_STRING_CHARS {
                assert_eq!(
                    reset_string::decode(&text).as_ref(),
                    Ok(&request),
                    "the reset string of an export must decode to the same request: {text}"
                );
            }
        }
    }
});
