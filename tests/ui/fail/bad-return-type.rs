#[docket::task]
async fn scan_copyright(track_id: i64) -> i64 {
    track_id
}

fn main() {}
