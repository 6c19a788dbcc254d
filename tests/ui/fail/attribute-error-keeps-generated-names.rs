//! An attribute error is the only error: stand-ins for the argument struct and the `schedule`
//! functions let code using them compile, here and through a glob import, and they trip none of
//! these lints.
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

mod handlers {
    use super::*;

    pub(crate) async fn upload(docket: &docket::Docket) -> docket::Result<()> {
        ScanCopyright::schedule(7, "https://example.com/7.mp3".to_owned())
            .on(docket)
            .after(std::time::Duration::from_secs(30))
            .key("track-7")
            .await?;
        let _receipt = schedule_scan_copyright(8, "https://example.com/8.mp3".to_owned()).await?;
        let arguments = ScanCopyright {
            track_id: 9,
            audio_url: String::new(),
        };
        let _ = (arguments.track_id, arguments.audio_url);
        Ok(())
    }
}

fn main() {
    let by_method: docket::Schedule<ScanCopyright> =
        ScanCopyright::schedule(7, "https://example.com/7.mp3".to_owned());
    let _ = (by_method, handlers::upload);
}
