//! Dead letter JSON as stored in the dead hash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| docket::__fuzz::dead_letter(data));
