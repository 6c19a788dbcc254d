#[docket::task(rate_limit = "10 per minute")]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
