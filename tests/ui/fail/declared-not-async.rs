// A task declared without a body (another service's workers run it) is an `async fn` too.
#[docket::task]
fn transcode(track_id: i64);

fn main() {
    let _ = Transcode::schedule(7);
}
