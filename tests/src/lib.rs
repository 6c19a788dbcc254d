//! Integration, crash, chaos and compile-fail tests of docket, and what they share.
//!
//! The `tests/` folder holds the test binaries; this library holds what they share: the private
//! `redis-server` harness (also used by the chaos binary) and a background worker.

pub mod background;
pub mod redis_server;

use std::time::{Duration, Instant};

/// Wait until `done` holds, looking every 10 ms; fail the test, naming `what`, if it does not
/// within `patience`.
pub async fn eventually(what: &str, patience: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !done().await {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
