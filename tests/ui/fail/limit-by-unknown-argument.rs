#[docket::task(concurrency(track) = 1)]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
