//! An attribute error is the only error: the argument struct and the `schedule` functions still
//! exist, so code using them reports nothing more, and they trip none of these lints.
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    unreachable_pub,
    dead_code,
    unused_variables
)]

/// Scan an uploaded track.
#[docket::task(retries = "3")]
pub async fn scan_copyright(track_id: i64, audio_url: String, ctx: docket::Context) {
    let _ = (track_id, audio_url, ctx);
}

fn main() {
    let by_method: docket::Schedule<ScanCopyright> =
        ScanCopyright::schedule(7, "https://example.com/7.mp3".to_owned());
    let by_function = schedule_scan_copyright(8, "https://example.com/8.mp3".to_owned());
    let arguments = ScanCopyright {
        track_id: 9,
        audio_url: String::new(),
    };
    let _ = (by_method, by_function, arguments.track_id, arguments.audio_url);
}
