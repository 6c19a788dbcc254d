#[docket::task(concurrency = 0)]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
