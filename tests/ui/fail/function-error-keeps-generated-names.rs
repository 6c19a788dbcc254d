//! A function error is the only error when the task's name and arguments are clear: the argument
//! struct and the `schedule` functions still exist, so code using them reports nothing more.

/// Scan an uploaded track.
#[docket::task(retries = 3)]
pub fn scan_copyright(track_id: i64, audio_url: String) {
    let _ = (track_id, audio_url);
}

fn main() {
    let by_method: docket::Schedule<ScanCopyright> =
        ScanCopyright::schedule(7, "https://example.com/7.mp3".to_owned());
    let by_function = schedule_scan_copyright(8, "https://example.com/8.mp3".to_owned());
    let _ = (by_method, by_function);
}
