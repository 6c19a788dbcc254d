#[docket::task]
async fn scan_copyright(track_id: i64, ctx: &docket::Context) {
    let _ = (track_id, ctx);
}

fn main() {}
