//! Uploaded pictures: the label-photo check (header first, then a full decode under
//! limits) and the QR reader (the same, then rqrr's detector and decoder). Both take
//! the same untrusted bytes, so one target drives both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resetdesk::intake::photo::{DEFAULT_MAX_LABEL_PIXELS, check_label_photo};
use resetdesk::protocol::qr;

fuzz_target!(|data: &[u8]| {
    // Only that both answer, without crashing, hanging or passing the memory cap, is
    // checked: for an arbitrary picture there is no cheap oracle for the right answer.
    let _ = check_label_photo(data, DEFAULT_MAX_LABEL_PIXELS);
    let _ = qr::read_image(data);
});
