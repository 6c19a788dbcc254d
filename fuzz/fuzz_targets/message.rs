//! Message JSON as stored in a stream entry or the parked hash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| docket::__fuzz::message(data));
