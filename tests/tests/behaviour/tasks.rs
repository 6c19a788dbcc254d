//! The tasks the suite schedules. Each reports to the [`Probe`] whose id it is given.

use std::time::Duration;

use super::probe::Probe;

/// Records one run, labelled `label`.
#[docket::task]
pub(crate) async fn note_run(probe: String, label: String) {
    Probe::find(&probe).start(label).finish();
}

/// Fails every attempt with the same error.
#[docket::task(retries = 2, backoff = "fixed 50ms")]
pub(crate) async fn fail_always(probe: String) -> Result<(), String> {
    Probe::find(&probe).start("fail_always").finish();
    Err("the disk is full".to_owned())
}

/// Fails every attempt, with retries spaced 40ms, 80ms, then 100ms (the cap) apart.
#[docket::task(retries = 3, backoff = "exponential 40ms..100ms")]
pub(crate) async fn fail_with_exponential_backoff(probe: String) -> Result<(), String> {
    Probe::find(&probe)
        .start("fail_with_exponential_backoff")
        .finish();
    Err("the disk is still full".to_owned())
}

/// Fails its first `failures` attempts, then succeeds.
#[docket::task(retries = 3, backoff = "fixed 20ms")]
pub(crate) async fn fail_then_succeed(probe: String, failures: usize) -> Result<(), String> {
    let probe = Probe::find(&probe);
    probe.start("fail_then_succeed").finish();
    match probe.starts() {
        attempt if attempt <= failures => Err(format!("failure {attempt} of {failures}")),
        _ => Ok(()),
    }
}

/// Runs far longer than its 50ms timeout allows.
#[docket::task(timeout = "50ms")]
pub(crate) async fn overrun_timeout(probe: String) {
    let run = Probe::find(&probe).start("overrun_timeout");
    tokio::time::sleep(Duration::from_secs(60)).await;
    run.finish();
}

/// Panics on every attempt.
#[docket::task]
pub(crate) async fn panic_always(probe: String) {
    Probe::find(&probe).start("panic_always").finish();
    panic!("the probe exploded");
}

/// Sleeps `millis` milliseconds.
#[docket::task]
pub(crate) async fn sleep_for(probe: String, millis: u64) {
    let run = Probe::find(&probe).start("sleep_for");
    tokio::time::sleep(Duration::from_millis(millis)).await;
    run.finish();
}

/// Waits until the test calls `probe.release(..)`.
#[docket::task]
pub(crate) async fn wait_for_release(probe: String) {
    let probe = Probe::find(&probe);
    let run = probe.start("wait_for_release");
    probe.released().await;
    run.finish();
}

/// Fails, then waits an hour before its one retry.
#[docket::task(retries = 1, backoff = "fixed 1h")]
pub(crate) async fn fail_then_wait_an_hour(probe: String) -> Result<(), String> {
    Probe::find(&probe).start("fail_then_wait_an_hour").finish();
    Err("the disk is full".to_owned())
}
