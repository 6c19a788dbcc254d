// A task declared without a body: another service's workers run it; this binary schedules it
// typed, with its policy, and runs nothing of it.
use std::time::Duration;

/// Transcode a track (the media service runs it).
#[docket::task(retries = 3, debounce(track_id) = "5s")]
pub async fn transcode(track_id: i64, format: String);

fn main() {
    let _schedule = Transcode::schedule(7, "opus".into()).after(Duration::from_secs(1));
    let _free = schedule_transcode(7, "opus".into());
}
