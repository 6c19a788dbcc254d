#[docket::task(backoff = "linear 5s")]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
