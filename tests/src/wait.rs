//! Waiting with a deadline. Each wait here gives up after a time far longer than it needs, and
//! then fails the test naming what it waited for: a hang becomes a readable failure, never a
//! stuck test run. None of them asserts on speed.

use std::future::Future;
use std::time::{Duration, Instant};

use docket::{Docket, Worker};

/// How long [`in_time`], [`finish`] and [`Probe::until`](crate::probe::Probe::until) wait before
/// they fail the test. Far longer than anything they wait for takes.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Wait until `done` holds, looking every 10 ms; fail the test, naming `what`, if it does not
/// within `patience`.
pub async fn eventually(what: &str, patience: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !done().await {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Await `future`; fail the test, naming `what`, if it does not end within [`PATIENCE`].
pub async fn in_time<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

/// Run a worker on `docket` until nothing is left to do (`run_until_finished`; in-process, until
/// the docket's own tasks have ended). Fail the test if that takes longer than [`PATIENCE`] or
/// the worker returns an error.
pub async fn finish(docket: &Docket) {
    in_time(
        "the worker to finish its work",
        Worker::new(docket).run_until_finished(),
    )
    .await
    .expect("the worker ran without error");
}
