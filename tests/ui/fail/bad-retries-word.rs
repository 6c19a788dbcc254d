#[docket::task(retries = "always", backoff = "fixed 1s")]
async fn poll_feed(feed_id: i64) {
    let _ = feed_id;
}

fn main() {}
