//! Stream entries as a worker reads them: any fields, any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte sets the payload limit; the rest splits into fields at each 0xFF byte.
    let (limit, rest) = data.split_first().map_or((0, data), |(l, r)| (*l, r));
    let fields: Vec<&[u8]> = rest.split(|byte| *byte == 0xFF).collect();
    docket::__fuzz::stream_entry(&fields, usize::from(limit) * 64);
});
