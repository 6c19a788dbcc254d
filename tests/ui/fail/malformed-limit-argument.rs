#[docket::task(rate_limit(user_id, track_id) = "10/1m")]
async fn scan_copyright(track_id: i64, user_id: u64) {
    let _ = (track_id, user_id);
}

fn main() {}
