#[docket::task(backoff = "exponential 60s..1s")]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
