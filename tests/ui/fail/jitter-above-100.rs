#[docket::task(retries = 3, backoff = "fixed 5s", jitter = "150%")]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
