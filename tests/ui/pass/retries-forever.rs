use docket::policy::{Attempts, Backoff, Policy};
use docket::Task;
use std::time::Duration;

/// Poll a feed until it answers, however long that takes.
#[docket::task(retries = "forever", backoff = "exponential 1s..5m")]
async fn poll_feed(feed_id: i64) -> Result<(), String> {
    let _ = feed_id;
    Ok(())
}

fn main() {
    let policy = <PollFeed as Task>::policy();
    assert_eq!(
        policy,
        Policy::new()
            .with_retries_forever()
            .with_backoff(Backoff::exponential(
                Duration::from_secs(1),
                Duration::from_secs(300)
            ))
    );
    assert!(policy.retries_forever());
    assert_eq!(policy.attempts(), Attempts::Unlimited);
}
