//! A function error is the only error when the task's name and arguments are clear: stand-ins
//! for the argument struct and the `schedule` functions let code using them compile, here and
//! through a glob import.

/// Scan an uploaded track.
#[docket::task(retries = 3)]
pub fn scan_copyright(track_id: i64, audio_url: String) {
    let _ = (track_id, audio_url);
}

mod handlers {
    use super::*;

    pub(crate) async fn upload(docket: &docket::Docket) -> docket::Result<()> {
        let _receipt = schedule_scan_copyright(8, "https://example.com/8.mp3".to_owned())
            .on(docket)
            .await?;
        Ok(())
    }
}

fn main() {
    let _ = ScanCopyright::schedule(7, "https://example.com/7.mp3".to_owned());
    let _ = handlers::upload;
}
