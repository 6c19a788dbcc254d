#[docket::task(timeout = "0.5ms")]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
