//! Raw RESP replies to XREADGROUP, XCLAIM and XPENDING.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| docket::__fuzz::reply(data));
