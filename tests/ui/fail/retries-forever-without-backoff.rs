#[docket::task(retries = "forever")]
async fn poll_feed(feed_id: i64) {
    let _ = feed_id;
}

#[docket::task(retries = "forever", backoff = "fixed 0s")]
async fn poll_other_feed(feed_id: i64) {
    let _ = feed_id;
}

fn main() {}
