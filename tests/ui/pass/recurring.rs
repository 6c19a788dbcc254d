//! Recurring tasks: no serialized arguments, only what the worker passes in.

use std::time::Duration;

use docket::{Context, policy::Policy, State, Task};

#[derive(Clone)]
struct Db;

/// Sweep expired uploads.
#[docket::task(every = "30s")]
async fn sweep(ctx: Context) {
    if ctx.attempt() > 3 {
        ctx.stop_recurring();
    }
}

/// The weekday report.
#[docket::task(cron = "0 9 * * MON-FRI", tz = "Europe/Paris", result)]
async fn weekday_report(State(db): State<Db>, ctx: docket::Context) -> Result<u32, String> {
    let _ = (db, ctx.key());
    Ok(3)
}

#[docket::task(cron = "@daily")]
async fn nightly() {}

#[docket::task(every = "1.5d")]
async fn rotate_keys() {}

fn main() {
    let _: fn() -> docket::Schedule<Sweep> = Sweep::schedule;
    assert_eq!(
        Sweep::policy(),
        Policy::new().with_every(Duration::from_secs(30))
    );
    assert!(Sweep::required_state().is_empty());
    assert_eq!(
        WeekdayReport::policy(),
        Policy::new()
            .with_cron("0 9 * * MON-FRI", "Europe/Paris")
            .with_result(Duration::from_secs(3600))
    );
    assert_eq!(WeekdayReport::required_state().len(), 1);
    assert_eq!(Nightly::policy(), Policy::new().with_cron("@daily", "UTC"));
    assert_eq!(
        RotateKeys::policy(),
        Policy::new().with_every(Duration::from_secs(36 * 60 * 60))
    );
}
