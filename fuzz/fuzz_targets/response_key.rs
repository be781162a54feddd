//! The 8-character response key a person types into the device. Whatever parses must
//! print as `XXXX-XXXX` and parse back to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resetdesk::protocol::ResponseKey;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(key) = ResponseKey::parse(&text) else {
        return;
    };
    let printed = key.to_string();
    assert_eq!(printed.len(), 9, "{printed}");
    assert_eq!(printed.as_bytes()[4], b'-', "{printed}");
    let again = ResponseKey::parse(&printed).expect("a printed key parses");
    assert!(again.matches(&key), "{printed} parses to another key");
});
