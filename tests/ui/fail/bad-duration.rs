#[docket::task(timeout = "30 parsecs")]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
