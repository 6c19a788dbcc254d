//! A pickle as pydocket stores it in `args`, `kwargs`, a strike value or a result.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| docket::__fuzz::pickle(data));
