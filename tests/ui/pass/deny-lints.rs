//! A crate strict about lints: the macro adds none of its own.
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    unreachable_pub,
    dead_code,
    rust_2018_idioms,
    unused_results
)]

// In scope, so a needlessly qualified path to them in generated code would trip
// `unused_qualifications`.
use docket::{Context, policy::Policy, Schedule, State, Task, TaskError, TaskOutput};
use std::future::Future;

/// Scan an uploaded track.
#[docket::task(retries = 3, backoff = "fixed 1s", timeout = "1m")]
pub async fn scan_copyright(track_id: i64, audio_url: String) -> Result<(), std::io::Error> {
    let _ = (track_id, audio_url);
    Ok(())
}

/// Undocumented private tasks are fine too, as private functions are.
#[docket::task]
async fn clean_up(mut days: u32) {
    days += 1;
    let _ = days;
}

#[docket::task(name = "crate-only")]
pub(crate) async fn crate_only(reason: String) -> Result<u8, String> {
    Err(reason)
}

/// Shared by every run.
#[derive(Clone, Debug)]
pub struct Db;

/// A task given its context and state, keeping its result.
#[docket::task(result = "1h", debounce(track_id) = "1s")]
pub async fn with_context(track_id: i64, ctx: Context, State(db): State<Db>) -> Result<u8, String> {
    let _ = (track_id, ctx.attempt(), db);
    Ok(1)
}

/// A recurring task.
#[docket::task(cron = "0 * * * *")]
pub async fn hourly(ctx: Context) {
    ctx.stop_recurring();
}

fn main() {
    fn is_task<T: Task>() -> Policy {
        T::policy()
    }
    let _ = is_task::<CrateOnly>();
    let _: Option<fn(i64, String) -> Schedule<ScanCopyright>> = None;
    let _: Option<fn(Context) -> Result<(), TaskError>> = None;
    let _ = ().into_outcome();
    let _: Option<&dyn Future<Output = ()>> = None;
}
