use docket::Context;

#[docket::task]
async fn scan_copyright(track_id: i64, ctx: Context, again: Context) {
    let _ = (track_id, ctx, again);
}

fn main() {}
