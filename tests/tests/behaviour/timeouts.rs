//! Timeouts: an attempt that overruns its timeout fails as timed out; a task can extend its own.

use std::time::Duration;

use docket::Docket;
use tests::finish;
use tests::probe::Probe;

use super::tasks::{ExtendOwnTimeout, OverrunTimeout};
use super::{dead_letters, only_dead_letter};

pub(crate) async fn an_attempt_that_overruns_its_timeout_fails_as_timed_out(docket: Docket) {
    let probe = Probe::new();
    let scheduled = OverrunTimeout::schedule(probe.id())
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(probe.only_run().finished, None, "the attempt is cut short");
    let dead = only_dead_letter(&docket, scheduled.key()).await;
    assert_eq!(dead.attempt, 1);
    assert!(dead.reason.contains("timed out"), "{:?}", dead.reason);
}

pub(crate) async fn a_task_that_extends_its_timeout_runs_past_the_original_one(docket: Docket) {
    let probe = Probe::new();
    ExtendOwnTimeout::schedule(probe.id())
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    let run = probe.only_run();
    let finished = run
        .finished
        .expect("the attempt ran to its end: its extension kept it from timing out");
    let ran = finished.duration_since(run.started);
    assert!(
        ran >= Duration::from_millis(300),
        "ran {ran:?}, past its 100ms timeout"
    );
    assert_eq!(dead_letters(&docket).await, []);
}
