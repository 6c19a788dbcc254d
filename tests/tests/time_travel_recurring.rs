//! `docket::testing` runs `every` and `cron` chains as its virtual clock moves: a day of them in
//! no real time. One test in this binary: its recurring tasks run on every worker it starts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use docket::testing::TimeMachine;

static EVERY_FIVE_MINUTES: AtomicU32 = AtomicU32::new(0);
static HOURLY: AtomicU32 = AtomicU32::new(0);

#[docket::task(every = "5m")]
async fn every_five_minutes() {
    EVERY_FIVE_MINUTES.fetch_add(1, Ordering::SeqCst);
}

#[docket::task(cron = "0 * * * *")]
async fn hourly() {
    HOURLY.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn every_and_cron_chains_run_once_per_period_as_the_clock_moves() {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let machine = TimeMachine::start().await.unwrap();

    machine.advance(Duration::ZERO).await;
    assert_eq!(
        EVERY_FIVE_MINUTES.load(Ordering::SeqCst),
        1,
        "the first run, now"
    );
    assert_eq!(
        HOURLY.load(Ordering::SeqCst),
        0,
        "cron waits for its first time"
    );

    machine.advance(DAY - Duration::from_secs(1)).await;
    assert_eq!(
        EVERY_FIVE_MINUTES.load(Ordering::SeqCst),
        288,
        "once every 5 minutes, from the start to a second before a day later"
    );
    machine.advance(Duration::from_secs(1)).await;
    assert_eq!(EVERY_FIVE_MINUTES.load(Ordering::SeqCst), 289);
    assert_eq!(HOURLY.load(Ordering::SeqCst), 24, "once an hour for a day");
    let snapshot = machine.docket().snapshot().await.unwrap();
    assert_eq!(
        snapshot.scheduled.len(),
        2,
        "each chain has its next run: {snapshot:#?}"
    );
    machine.stop().await.unwrap();
}
