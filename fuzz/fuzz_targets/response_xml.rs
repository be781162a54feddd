//! The signed response file, read on the device side from whatever the customer puts
//! on a USB stick. Signatures are not checked here (that needs trusted keys); the
//! parse itself must not fail badly, and what reads must read back the same after
//! writing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resetdesk::protocol::response;

fuzz_target!(|data: &[u8]| {
    let Ok(responses) = response::from_xml(data) else {
        return;
    };
    let written = response::to_xml(&responses);
    assert_eq!(
        response::from_xml(written.as_bytes()).as_ref(),
        Ok(&responses),
        "a response file we read must read back the same after we write it:\n{written}"
    );
});
