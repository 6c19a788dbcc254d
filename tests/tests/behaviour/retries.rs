//! Retries: a failed attempt (an error or a panic) is retried after its backoff, moved by its
//! jitter, or after the delay the task asks for, until its retries run out or it fails for good;
//! then it becomes a dead letter that keeps the error of every attempt.

use std::time::{Duration, Instant, SystemTime};

use docket::{Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually, finish};

use super::tasks::{
    AskToRetry, FailAlways, FailForGood, FailThenSucceed, FailWithExponentialBackoff,
    FailWithJitter, NoteRun, PanicAlways,
};
use super::{SLACK, dead_letters, only_dead_letter};

/// `a` to `b`, or zero when `b` is earlier.
fn since(b: SystemTime, a: SystemTime) -> Duration {
    b.duration_since(a).unwrap_or_default()
}

/// Assert that `probe` saw a first attempt, then one retry for each of `backoffs`, each coming
/// no sooner than its backoff after the attempt before it, and less than [`SLACK`] later.
#[track_caller]
fn assert_retried_after(probe: &Probe, backoffs: &[Duration]) {
    let gaps = probe.gaps();
    assert_eq!(gaps.len(), backoffs.len(), "{gaps:?}");
    for (retry, (&gap, &backoff)) in (1..).zip(gaps.iter().zip(backoffs)) {
        assert!(
            gap >= backoff,
            "retry {retry} came after {gap:?}, before its {backoff:?} backoff"
        );
        assert!(
            gap < backoff + SLACK,
            "retry {retry} came only after {gap:?}, {SLACK:?} or more past its {backoff:?} backoff"
        );
    }
}

pub(crate) async fn a_failing_task_runs_once_plus_its_retries_then_becomes_a_dead_letter(
    docket: Docket,
) {
    let probe = Probe::new();
    let scheduled = FailAlways::schedule(probe.id()).on(&docket).await.unwrap();

    finish(&docket).await;

    assert_eq!(
        probe.starts(),
        3,
        "retries = 2: the first attempt and two retries"
    );
    let dead = only_dead_letter(&docket, scheduled.key()).await;
    assert_eq!(dead.task, "fail_always");
    assert_eq!(dead.attempt, 3);
    assert!(
        dead.reason.contains("the disk is full"),
        "the reason carries the task's error: {:?}",
        dead.reason
    );
    let snapshot = docket.snapshot().await.unwrap();
    assert!(snapshot.is_empty(), "{snapshot:#?}");
    assert_eq!(snapshot.dead, 1);
}

pub(crate) async fn retries_wait_at_least_the_fixed_backoff(docket: Docket) {
    let probe = Probe::new();
    FailAlways::schedule(probe.id()).on(&docket).await.unwrap();

    finish(&docket).await;

    assert_retried_after(&probe, &[Duration::from_millis(50); 2]);
}

pub(crate) async fn retries_wait_at_least_the_exponential_backoff(docket: Docket) {
    let probe = Probe::new();
    FailWithExponentialBackoff::schedule(probe.id())
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_retried_after(&probe, &[40, 80, 100].map(Duration::from_millis));
}

pub(crate) async fn retry_delays_are_jittered_within_their_percentage(docket: Docket) {
    const TASKS: u32 = 20;
    let probe = Probe::new();
    docket
        .add_many((0..TASKS).map(|n| FailWithJitter::schedule(probe.id(), n)))
        .await
        .unwrap();

    finish(&docket).await;

    // A 200ms backoff with 50% jitter: each retry 100ms to 300ms after its failure.
    let backoff = Duration::from_millis(200);
    let (least, most) = (Duration::from_millis(100), Duration::from_millis(300));
    let runs = probe.runs();
    let gaps: Vec<Duration> = (0..TASKS)
        .map(|n| {
            let starts: Vec<Instant> = runs
                .iter()
                .filter(|run| run.label == n.to_string())
                .map(|run| run.started)
                .collect();
            assert_eq!(
                starts.len(),
                2,
                "task {n}: one attempt, one retry: {runs:#?}"
            );
            starts[1].duration_since(starts[0])
        })
        .collect();
    for gap in &gaps {
        assert!(
            *gap >= least,
            "a retry came {gap:?} after its failure, earlier than 200ms less 50%: {gaps:?}"
        );
        assert!(
            *gap < most + SLACK,
            "a retry came {gap:?} after its failure: {gaps:?}"
        );
    }
    // Without jitter no retry comes before its backoff; with it about half do. That none of 20
    // did has a chance of one in a million.
    assert!(
        gaps.iter().any(|gap| *gap < backoff),
        "no retry came before its 200ms backoff, so nothing was jittered: {gaps:?}"
    );
    assert_eq!(dead_letters(&docket).await.len(), TASKS as usize);
}

pub(crate) async fn a_retry_the_task_asks_for_waits_its_delay_and_counts_as_an_attempt(
    docket: Docket,
) {
    let probe = Probe::new();
    let scheduled = AskToRetry::schedule(probe.id()).on(&docket).await.unwrap();

    // Its backoff is an hour: finishing in time means the task's own delay was used.
    finish(&docket).await;

    assert_retried_after(&probe, &[Duration::from_millis(150); 2]);
    let dead = only_dead_letter(&docket, scheduled.key()).await;
    assert_eq!(
        dead.attempt, 3,
        "retries = 2: each asked-for retry is an attempt"
    );
    assert!(
        dead.reason.contains("the transcoder is busy"),
        "{:?}",
        dead.reason
    );
    assert_eq!(dead.history.len(), 3, "{:#?}", dead.history);
    assert!(
        dead.history
            .iter()
            .all(|failed| failed.error.contains("the transcoder is busy")),
        "{:#?}",
        dead.history
    );
}

pub(crate) async fn a_task_that_fails_for_good_is_a_dead_letter_at_once(docket: Docket) {
    let probe = Probe::new();
    let scheduled = FailForGood::schedule(probe.id()).on(&docket).await.unwrap();

    finish(&docket).await;

    assert_eq!(
        probe.starts(),
        1,
        "retries = 5, but `Fail` is never retried"
    );
    let dead = only_dead_letter(&docket, scheduled.key()).await;
    assert_eq!(dead.attempt, 1);
    assert!(
        dead.reason.contains("the file is not audio"),
        "{:?}",
        dead.reason
    );
    let attempts: Vec<u32> = dead.history.iter().map(|failed| failed.attempt).collect();
    assert_eq!(attempts, [1], "{:#?}", dead.history);
}

pub(crate) async fn a_task_that_succeeds_on_a_retry_is_not_a_dead_letter(docket: Docket) {
    let probe = Probe::new();
    FailThenSucceed::schedule(probe.id(), 2)
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(probe.starts(), 3, "two failures, then a success");
    assert_eq!(dead_letters(&docket).await, []);
    let snapshot = docket.snapshot().await.unwrap();
    assert!(snapshot.is_empty(), "{snapshot:#?}");
    assert_eq!(snapshot.dead, 0);
}

pub(crate) async fn a_dead_letter_keeps_the_error_of_every_attempt(docket: Docket) {
    let probe = Probe::new();
    let scheduled = FailAlways::schedule(probe.id()).on(&docket).await.unwrap();
    let before = SystemTime::now();

    finish(&docket).await;

    let dead = only_dead_letter(&docket, scheduled.key()).await;
    assert!(
        dead.reason.contains("the disk is full"),
        "the reason carries the task's error: {:?}",
        dead.reason
    );
    let attempts: Vec<u32> = dead.history.iter().map(|failed| failed.attempt).collect();
    assert_eq!(attempts, [1, 2, 3], "{:#?}", dead.history);
    for failed in &dead.history {
        assert!(
            failed.error.contains("the disk is full"),
            "each attempt keeps its error: {failed:?}"
        );
        // Stored at millisecond precision.
        assert!(failed.at + Duration::from_millis(1) >= before, "{failed:?}");
    }
    for pair in dead.history.windows(2) {
        // Each retry waited its 50ms backoff after the failure before it (less a millisecond
        // of storage precision).
        let apart = since(pair[1].at, pair[0].at);
        assert!(
            apart >= Duration::from_millis(49),
            "attempts failed {apart:?} apart: {:#?}",
            dead.history
        );
    }
}

pub(crate) async fn a_panicking_task_is_a_failed_attempt_and_the_worker_keeps_running(
    docket: Docket,
) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    let panicking = PanicAlways::schedule(probe.id()).on(&docket).await.unwrap();
    eventually("the panicking task is a dead letter", PATIENCE, || async {
        !dead_letters(&docket).await.is_empty()
    })
    .await;

    NoteRun::schedule(probe.id(), "after the panic".into())
        .on(&docket)
        .await
        .unwrap();
    probe
        .until("the next task runs", |p| {
            p.labels().iter().any(|label| label == "after the panic")
        })
        .await;
    worker.stop().await;

    let dead = only_dead_letter(&docket, panicking.key()).await;
    assert_eq!(dead.attempt, 1);
    assert!(dead.reason.contains("panicked"), "{:?}", dead.reason);
    assert!(
        dead.reason.contains("the probe exploded"),
        "the reason carries the panic message: {:?}",
        dead.reason
    );
}
