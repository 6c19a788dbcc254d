//! The tasks the suite schedules. Each reports to the [`Probe`] whose id it is given.
//!
//! They are defined here, in the suite's binaries, and not in the `tests` library, on purpose:
//! every task registered in a binary changes what each worker of that binary does. So no task
//! here is recurring or takes a `State<T>` (every worker would start the one, and refuse to start
//! without the other); those have binaries of their own (`recurring.rs`, `state.rs`).

use std::time::Duration;

use tests::probe::Probe;

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

/// Waits until the test calls `probe.release(..)`, then fails for good.
#[docket::task]
pub(crate) async fn wait_then_fail(probe: String) -> Result<(), docket::Fail> {
    let probe = Probe::find(&probe);
    let run = probe.start("wait_then_fail");
    probe.released().await;
    run.finish();
    Err(docket::Fail::because("the upload was deleted meanwhile"))
}

/// Fails, then waits an hour before its one retry.
#[docket::task(retries = 1, backoff = "fixed 1h")]
pub(crate) async fn fail_then_wait_an_hour(probe: String) -> Result<(), String> {
    Probe::find(&probe).start("fail_then_wait_an_hour").finish();
    Err("the disk is full".to_owned())
}

// Policies: retries, timeouts, context, limits, debounce, results, cancel.

/// Fails once, then waits for its one retry: 200ms, moved by up to 50% either way.
#[docket::task(retries = 1, backoff = "fixed 200ms", jitter = "50%")]
pub(crate) async fn fail_with_jitter(probe: String, n: u32) -> Result<(), String> {
    Probe::find(&probe).start(n.to_string()).finish();
    Err("the disk is full".to_owned())
}

/// Asks for every retry 150ms later, although its backoff says an hour.
#[docket::task(retries = 2, backoff = "fixed 1h")]
pub(crate) async fn ask_to_retry(probe: String) -> Result<(), docket::Retry> {
    Probe::find(&probe).start("ask_to_retry").finish();
    Err(docket::Retry::after(Duration::from_millis(150)).because("the transcoder is busy"))
}

/// Fails for good on its first attempt, although its policy allows retries.
#[docket::task(retries = 5, backoff = "fixed 10ms")]
pub(crate) async fn fail_for_good(probe: String) -> Result<(), docket::Fail> {
    Probe::find(&probe).start("fail_for_good").finish();
    Err(docket::Fail::because("the file is not audio"))
}

/// Runs 300ms under a 100ms timeout, having extended it by 500ms first.
#[docket::task(timeout = "100ms")]
pub(crate) async fn extend_own_timeout(probe: String, ctx: docket::Context) {
    let run = Probe::find(&probe).start("extend_own_timeout");
    ctx.extend_timeout(Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.finish();
}

/// Records what its context says, failing its first attempt so a retry records it too.
#[docket::task(retries = 1, backoff = "fixed 50ms")]
pub(crate) async fn look_at_context(probe: String, ctx: docket::Context) -> Result<(), String> {
    let found = Probe::find(&probe);
    found.start("look_at_context").finish();
    found.saw(&ctx);
    if ctx.attempt() == 1 {
        return Err("first attempts always fail".to_owned());
    }
    // The handle is the docket's own: it schedules follow-up work there.
    NoteRun::schedule(probe, "follow-up".into())
        .on(ctx.docket())
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Reports progress halfway and at the end, keeping its result.
#[docket::task(result)]
pub(crate) async fn report_progress(probe: String, ctx: docket::Context) -> Result<String, String> {
    let run = Probe::find(&probe).start("report_progress");
    ctx.progress(1, 2, "halfway").await;
    ctx.progress(2, 2, "done").await;
    run.finish();
    Ok("the report".to_owned())
}

/// Records one run labelled with its `n`: the argument strikes compare.
#[docket::task]
pub(crate) async fn note_value(probe: String, n: i64) {
    Probe::find(&probe).start(n.to_string()).finish();
}

/// One run per track at a time, each a few milliseconds long, labelled with its track.
#[docket::task(concurrency(track_id) = 1)]
pub(crate) async fn one_per_track(probe: String, track_id: u32) {
    let run = Probe::find(&probe).start(track_id.to_string());
    tokio::time::sleep(Duration::from_millis(5)).await;
    run.finish();
}

/// At most four runs at once, each a few milliseconds long.
#[docket::task(concurrency = 4)]
pub(crate) async fn four_at_once(probe: String) {
    let run = Probe::find(&probe).start("four_at_once");
    tokio::time::sleep(Duration::from_millis(5)).await;
    run.finish();
}

/// At most two starts in any 300ms.
#[docket::task(rate_limit = "2/300ms")]
pub(crate) async fn two_per_window(probe: String, n: u32) {
    Probe::find(&probe).start(n.to_string()).finish();
}

/// Runs once scheduling has been quiet for 300ms, with the newest `value`.
#[docket::task(debounce = "300ms")]
pub(crate) async fn debounced(probe: String, value: u32) {
    Probe::find(&probe).start(value.to_string()).finish();
}

/// Runs once per customer when scheduling for that customer has been quiet for 300ms.
#[docket::task(debounce(customer) = "300ms")]
pub(crate) async fn debounced_per_customer(probe: String, customer: String, value: u32) {
    Probe::find(&probe)
        .start(format!("{customer} {value}"))
        .finish();
}

/// Lets one schedule through an hour, dropping the others.
#[docket::task(cooldown = "1h")]
pub(crate) async fn cooled(probe: String, value: u32) {
    Probe::find(&probe).start(value.to_string()).finish();
}

/// Lets one schedule through each 300ms.
#[docket::task(cooldown = "300ms")]
pub(crate) async fn briefly_cooled(probe: String, value: u32) {
    Probe::find(&probe).start(value.to_string()).finish();
}

/// Lets one schedule per customer through an hour.
#[docket::task(cooldown(customer) = "1h")]
pub(crate) async fn cooled_per_customer(probe: String, customer: String, value: u32) {
    Probe::find(&probe)
        .start(format!("{customer} {value}"))
        .finish();
}

/// Adds its numbers up, keeping the sum as its result.
#[docket::task(result)]
pub(crate) async fn add_up(numbers: Vec<u32>) -> Result<u32, String> {
    Ok(numbers.iter().sum())
}

/// Fails both its attempts, keeping its state.
#[docket::task(result, retries = 1, backoff = "fixed 20ms")]
pub(crate) async fn fail_keeping_state(probe: String) -> Result<u32, String> {
    Probe::find(&probe).start("fail_keeping_state").finish();
    Err("the disk is full".to_owned())
}

/// Sleeps in 10ms steps for a minute, with retries to spare; a cancel cuts it short.
#[docket::task(retries = 3, backoff = "fixed 10ms")]
pub(crate) async fn loop_on_sleeps(probe: String) {
    let run = Probe::find(&probe).start("loop_on_sleeps");
    for _ in 0..6000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.finish();
}

/// [`loop_on_sleeps`], keeping its state.
#[docket::task(result, retries = 3, backoff = "fixed 10ms")]
pub(crate) async fn loop_on_sleeps_keeping_state(probe: String) -> Result<u32, String> {
    let run = Probe::find(&probe).start("loop_on_sleeps_keeping_state");
    for _ in 0..6000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.finish();
    Ok(1)
}

/// Fails its first seven attempts, then succeeds: past any count but "forever".
#[docket::task(retries = "forever", backoff = "exponential 5ms..20ms")]
pub(crate) async fn fail_seven_times(probe: String) -> Result<(), String> {
    let probe = Probe::find(&probe);
    probe.start("fail_seven_times").finish();
    match probe.starts() {
        ..=7 => Err("the service is down".to_owned()),
        _ => Ok(()),
    }
}
