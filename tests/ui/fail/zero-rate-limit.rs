#[docket::task(rate_limit = "0/1m")]
async fn scan_copyright(track_id: i64) {
    let _ = track_id;
}

fn main() {}
