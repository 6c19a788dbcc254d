//! Task policies, the same on every backend: the history a dead letter keeps, jitter, `Retry`
//! and `Fail`, a timeout the task extends, the task's context, strikes, concurrency and rate
//! limits, debounce, results and state, and cancelling a running task.
//!
//! Recurring tasks and `State<T>` injection are not here: every worker of a binary starts every
//! recurring task registered in it, and refuses to start while a task's state is missing, so
//! they have test binaries of their own (`recurring.rs`, `state.rs`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use docket::{
    Disposition, Docket, Error, Task, Worker, results::Status, results::TaskRecord, results::Watch,
    strike::Operator, strike::Strike,
};

use super::tasks::{
    AddUp, AskToRetry, Debounced, DebouncedPerCustomer, ExtendOwnTimeout, FailAlways, FailForGood,
    FailKeepingState, FailWithJitter, FourAtOnce, LookAtContext, LoopOnSleeps,
    LoopOnSleepsKeepingState, NoteRun, NoteValue, OnePerTrack, ReportProgress, TwoPerWindow,
};
use super::{
    Background, PATIENCE, SLACK, assert_retried_after, dead_letters, eventually, finish,
    only_dead_letter, same_time,
};
use tests::in_time;
use tests::probe::Probe;

/// One `#[tokio::test]` per policy behaviour, each on a docket of its own from `$open` (see
/// `behaviour_suite!`, which includes these).
macro_rules! policies_suite {
    ($open:expr) => {
        $crate::behaviour::behaviour_suite!(@tests $open;
            a_dead_letter_keeps_the_error_of_every_attempt,
            retry_delays_are_jittered_within_their_percentage,
            a_retry_the_task_asks_for_waits_its_delay_and_counts_as_an_attempt,
            a_task_that_fails_for_good_is_a_dead_letter_at_once,
            a_task_that_extends_its_timeout_runs_past_the_original_one,
            the_context_tells_the_key_the_attempt_the_due_time_and_the_docket,
            progress_is_seen_through_watch,
            a_strike_by_task_name_holds_its_tasks_until_restored,
            a_strike_made_while_a_worker_runs_holds_the_tasks_it_claims_afterwards,
            a_strike_where_an_argument_equals_a_value_holds_exactly_those_runs,
            a_strike_where_an_argument_differs_from_a_value_holds_exactly_those_runs,
            a_strike_where_an_argument_is_greater_than_a_value_holds_exactly_those_runs,
            a_strike_where_an_argument_is_at_least_a_value_holds_exactly_those_runs,
            a_strike_where_an_argument_is_less_than_a_value_holds_exactly_those_runs,
            a_strike_where_an_argument_is_at_most_a_value_holds_exactly_those_runs,
            a_concurrency_limit_per_argument_value_is_never_exceeded,
            a_concurrency_limit_is_never_exceeded,
            a_rate_limit_allows_no_more_starts_in_a_window_than_it_says,
            debounce_collapses_a_burst_into_one_run_with_the_newest_arguments,
            debounce_by_argument_collapses_each_value_on_its_own,
            a_kept_result_is_returned_by_scheduled_result_and_docket_result,
            results_of_tasks_scheduled_while_a_worker_runs_are_all_returned,
            the_result_of_a_task_that_failed_is_a_task_failed_error,
            the_result_of_a_cancelled_task_is_a_task_cancelled_error,
            a_task_that_keeps_no_result_has_none_to_return,
            watch_sees_a_task_queued_then_running_then_completed,
            cancelling_a_running_task_stops_it_at_its_next_await_without_a_retry,
            a_running_task_that_keeps_state_is_recorded_as_cancelled,
        );
    };
}

pub(crate) use policies_suite;

/// How long after its admission a task's body records its start: the slack allowed when
/// comparing start times measured by the task with the limit the worker enforced before it.
const START_LAG: Duration = Duration::from_millis(50);

/// `a` to `b`, or zero when `b` is earlier.
fn since(b: SystemTime, a: SystemTime) -> Duration {
    b.duration_since(a).unwrap_or_default()
}

// Retries.

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

// Timeouts.

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

// Context.

pub(crate) async fn the_context_tells_the_key_the_attempt_the_due_time_and_the_docket(
    docket: Docket,
) {
    let probe = Probe::new();
    let scheduled = LookAtContext::schedule(probe.id())
        .key("context-1")
        .after(Duration::from_millis(100))
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    let seen = probe.seen();
    assert_eq!(seen.len(), 2, "one attempt and one retry: {seen:#?}");
    assert!(seen.iter().all(|s| s.key == "context-1"), "{seen:#?}");
    assert!(seen.iter().all(|s| s.docket == docket.name()), "{seen:#?}");
    let attempts: Vec<u32> = seen.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    assert!(
        same_time(seen[0].due, scheduled.due()),
        "the first attempt is due when scheduled: {seen:#?} vs {scheduled:?}"
    );
    // The retry is due its 50ms backoff after the first attempt failed (less a millisecond of
    // storage precision), and starts once due.
    assert!(
        seen[1].due + Duration::from_millis(1) >= seen[0].at + Duration::from_millis(50),
        "{seen:#?}"
    );
    assert!(seen.iter().all(|s| s.due <= s.at), "{seen:#?}");
    assert!(
        probe.labels().iter().any(|label| label == "follow-up"),
        "the docket handle schedules onto the task's own docket: {:?}",
        probe.labels()
    );
}

/// Every state `watch` reports, until one is final.
async fn follow(watch: &mut Watch) -> Vec<TaskRecord> {
    let mut states = Vec::new();
    loop {
        let state = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .unwrap_or_else(|_| panic!("no final state in time; so far: {states:#?}"))
            .unwrap_or_else(|| panic!("the watch ended before a final state: {states:#?}"));
        let last = state.status.is_final();
        states.push(state);
        if last {
            return states;
        }
    }
}

pub(crate) async fn progress_is_seen_through_watch(docket: Docket) {
    let probe = Probe::new();
    let scheduled = ReportProgress::schedule(probe.id())
        .on(&docket)
        .await
        .unwrap();
    let mut watch = docket.watch(scheduled.key()).await.unwrap();

    let worker = Background::start(Worker::new(&docket));
    let states = follow(&mut watch).await;
    worker.stop().await;

    type Progress<'a> = Option<(u64, u64, &'a str)>;
    let seen: Vec<(Status, Progress<'_>)> = states
        .iter()
        .map(|state| {
            let progress = state
                .progress
                .as_ref()
                .map(|p| (p.current, p.total, p.message.as_str()));
            (state.status, progress)
        })
        .collect();
    // An in-process docket's own worker may start the task before the producer records it as
    // queued: then the stale first state is dropped, never recorded after `running`.
    let seen = match seen.first() {
        Some((Status::Running, _)) if !docket.has_queue() => {
            [vec![(Status::Queued, None)], seen].concat()
        }
        _ => seen,
    };
    assert_eq!(
        seen,
        [
            (Status::Queued, None),
            (Status::Running, None),
            (Status::Running, Some((1, 2, "halfway"))),
            (Status::Running, Some((2, 2, "done"))),
            (Status::Completed, None),
        ],
        "{states:#?}"
    );
    assert_eq!(
        states.last().unwrap().result.as_deref(),
        Some(r#""the report""#)
    );
}

// Strikes.

/// The keys of the tasks held by strikes now.
async fn held_keys(docket: &Docket) -> BTreeSet<String> {
    let snapshot = docket.snapshot().await.unwrap();
    snapshot.held.into_iter().map(|task| task.key).collect()
}

/// The labels of `probe`'s runs, sorted.
fn sorted_labels(probe: &Probe) -> Vec<String> {
    let mut labels = probe.labels();
    labels.sort();
    labels
}

pub(crate) async fn a_strike_by_task_name_holds_its_tasks_until_restored(docket: Docket) {
    let probe = Probe::new();
    let strike = Strike::task(NoteValue::NAME);
    assert!(docket.strike(strike.clone()).await.unwrap());
    assert!(
        !docket.strike(strike.clone()).await.unwrap(),
        "the same strike again changes nothing"
    );
    assert_eq!(
        docket.strikes().await.unwrap(),
        std::slice::from_ref(&strike)
    );
    for n in 1..=3 {
        NoteValue::schedule(probe.id(), n)
            .key(format!("held-{n}"))
            .on(&docket)
            .await
            .unwrap();
    }
    NoteRun::schedule(probe.id(), "not struck".into())
        .on(&docket)
        .await
        .unwrap();

    let worker = Background::start(Worker::new(&docket));
    eventually("the struck tasks are held", || async {
        held_keys(&docket).await.len() == 3
    })
    .await;
    probe
        .until("the task not struck runs", |p| p.starts() == 1)
        .await;
    let snapshot = docket.snapshot().await.unwrap();
    let labels_while_struck = probe.labels();
    let restored = docket.restore(strike.clone()).await.unwrap();
    probe.until("the held tasks run", |p| p.starts() == 4).await;
    worker.stop().await;

    assert_eq!(labels_while_struck, ["not struck"], "held tasks do not run");
    let held: Vec<&str> = snapshot.held.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(held, ["held-1", "held-2", "held-3"], "{snapshot:#?}");
    assert!(snapshot.held.iter().all(|t| t.task == "note_value"));
    assert_eq!(
        snapshot.queued.len() + snapshot.scheduled.len() + snapshot.running.len(),
        0,
        "{snapshot:#?}"
    );
    assert_eq!(restored, 3, "restore queues every held task again");
    assert_eq!(sorted_labels(&probe), ["1", "2", "3", "not struck"]);
    assert_eq!(docket.strikes().await.unwrap(), []);
    assert!(docket.snapshot().await.unwrap().is_empty());
}

pub(crate) async fn a_strike_made_while_a_worker_runs_holds_the_tasks_it_claims_afterwards(
    docket: Docket,
) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    NoteValue::schedule(probe.id(), 1)
        .on(&docket)
        .await
        .unwrap();
    probe
        .until("the worker runs a task", |p| p.starts() == 1)
        .await;

    let strike = Strike::task(NoteValue::NAME);
    docket.strike(strike.clone()).await.unwrap();
    // Workers hear of a strike through their signal feed, within milliseconds; a task claimed
    // in that instant may still run. Give the feed ample time on a loaded machine.
    tokio::time::sleep(Duration::from_millis(200)).await;
    NoteValue::schedule(probe.id(), 2)
        .key("after the strike")
        .on(&docket)
        .await
        .unwrap();
    eventually("the task scheduled after the strike is held", || async {
        !held_keys(&docket).await.is_empty()
    })
    .await;
    let held = held_keys(&docket).await;
    let labels_while_struck = probe.labels();
    assert_eq!(docket.restore(strike).await.unwrap(), 1);
    probe.until("the held task runs", |p| p.starts() == 2).await;
    worker.stop().await;

    assert_eq!(held, BTreeSet::from(["after the strike".to_owned()]));
    assert_eq!(labels_while_struck, ["1"]);
    assert_eq!(probe.labels(), ["1", "2"]);
}

/// Strike `note_value` runs whose `n` compares with 3 by `op`, schedule `n` = 1 to 5, and check
/// that exactly `held` are held while the others run, and that restoring runs them.
async fn a_strike_by_argument_holds_exactly(docket: Docket, op: Operator, held: &[i64]) {
    let probe = Probe::new();
    let strike = Strike::task(NoteValue::NAME).when("n", op, 3);
    docket.strike(strike.clone()).await.unwrap();
    for n in 1..=5 {
        NoteValue::schedule(probe.id(), n)
            .key(format!("n-{n}"))
            .on(&docket)
            .await
            .unwrap();
    }
    let ran: Vec<String> = (1..=5)
        .filter(|n| !held.contains(n))
        .map(|n| n.to_string())
        .collect();
    let held_keys_expected: BTreeSet<String> = held.iter().map(|n| format!("n-{n}")).collect();

    let worker = Background::start(Worker::new(&docket));
    eventually(&format!("the runs where n {op} 3 are held"), || async {
        held_keys(&docket).await.len() == held.len()
    })
    .await;
    probe
        .until(&format!("the runs where not n {op} 3 run"), |p| {
            p.starts() == ran.len()
        })
        .await;
    let held_while_struck = held_keys(&docket).await;
    let ran_while_struck = sorted_labels(&probe);
    let restored = docket.restore(strike).await.unwrap();
    probe.until("the held runs run", |p| p.starts() == 5).await;
    worker.stop().await;

    assert_eq!(held_while_struck, held_keys_expected, "held where n {op} 3");
    assert_eq!(ran_while_struck, ran, "ran where not n {op} 3");
    assert_eq!(restored, held.len());
    assert_eq!(sorted_labels(&probe), ["1", "2", "3", "4", "5"]);
    assert!(docket.snapshot().await.unwrap().is_empty());
}

pub(crate) async fn a_strike_where_an_argument_equals_a_value_holds_exactly_those_runs(
    docket: Docket,
) {
    a_strike_by_argument_holds_exactly(docket, Operator::Eq, &[3]).await;
}

pub(crate) async fn a_strike_where_an_argument_differs_from_a_value_holds_exactly_those_runs(
    docket: Docket,
) {
    a_strike_by_argument_holds_exactly(docket, Operator::Ne, &[1, 2, 4, 5]).await;
}

pub(crate) async fn a_strike_where_an_argument_is_greater_than_a_value_holds_exactly_those_runs(
    docket: Docket,
) {
    a_strike_by_argument_holds_exactly(docket, Operator::Gt, &[4, 5]).await;
}

pub(crate) async fn a_strike_where_an_argument_is_at_least_a_value_holds_exactly_those_runs(
    docket: Docket,
) {
    a_strike_by_argument_holds_exactly(docket, Operator::Ge, &[3, 4, 5]).await;
}

pub(crate) async fn a_strike_where_an_argument_is_less_than_a_value_holds_exactly_those_runs(
    docket: Docket,
) {
    a_strike_by_argument_holds_exactly(docket, Operator::Lt, &[1, 2]).await;
}

pub(crate) async fn a_strike_where_an_argument_is_at_most_a_value_holds_exactly_those_runs(
    docket: Docket,
) {
    a_strike_by_argument_holds_exactly(docket, Operator::Le, &[1, 2, 3]).await;
}

// Limits.

/// Run everything on one worker that could run 50 tasks at once.
async fn finish_wide(docket: &Docket) {
    tokio::time::timeout(
        PATIENCE,
        Worker::new(docket).concurrency(50).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .expect("the worker ran without error");
}

pub(crate) async fn a_concurrency_limit_per_argument_value_is_never_exceeded(docket: Docket) {
    const TRACKS: u32 = 8;
    let probe = Probe::new();
    docket
        .add_many((0..200).map(|n| OnePerTrack::schedule(probe.id(), n % TRACKS)))
        .await
        .unwrap();

    finish_wide(&docket).await;

    assert_eq!(probe.finishes(), 200, "every waiting task runs");
    for track in 0..TRACKS {
        assert_eq!(
            probe.most_running_of(&track.to_string()),
            1,
            "track {track} ran more than one task at once"
        );
    }
    assert!(
        probe.most_running() > 1,
        "tasks of different tracks run side by side"
    );
    assert!(docket.snapshot().await.unwrap().is_empty());
}

pub(crate) async fn a_concurrency_limit_is_never_exceeded(docket: Docket) {
    let probe = Probe::new();
    docket
        .add_many((0..200).map(|_| FourAtOnce::schedule(probe.id())))
        .await
        .unwrap();

    finish_wide(&docket).await;

    assert_eq!(probe.finishes(), 200, "every waiting task runs");
    assert_eq!(
        probe.most_running(),
        4,
        "at most 4 at once, and 4 when 200 wait"
    );
    assert!(docket.snapshot().await.unwrap().is_empty());
}

pub(crate) async fn a_rate_limit_allows_no_more_starts_in_a_window_than_it_says(docket: Docket) {
    const TASKS: u32 = 6;
    let window = Duration::from_millis(300);
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket).concurrency(10));
    docket
        .add_many((0..TASKS).map(|n| TwoPerWindow::schedule(probe.id(), n)))
        .await
        .unwrap();

    probe
        .until("every task starts", |p| p.starts() == TASKS as usize)
        .await;
    worker.stop().await;

    let mut starts: Vec<Instant> = probe.runs().iter().map(|run| run.started).collect();
    starts.sort();
    for three in starts.windows(3) {
        let apart = three[2].duration_since(three[0]);
        assert!(
            apart + START_LAG >= window,
            "three starts within {apart:?}; the limit is 2 in {window:?}: {starts:#?}"
        );
    }
}

pub(crate) async fn debounce_collapses_a_burst_into_one_run_with_the_newest_arguments(
    docket: Docket,
) {
    let settle = Duration::from_millis(300);
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    let mut receipts = Vec::new();
    let mut last = Instant::now();
    for value in 1..=5 {
        last = Instant::now();
        receipts.push(
            Debounced::schedule(probe.id(), value)
                .on(&docket)
                .await
                .unwrap(),
        );
    }

    probe
        .until("the debounced task runs", |p| p.starts() == 1)
        .await;
    eventually("nothing else waits", || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    let run = probe.only_run();
    assert_eq!(run.label, "5", "the newest arguments win");
    let waited = run.started.duration_since(last);
    assert!(
        waited >= settle,
        "ran {waited:?} after the last schedule, before scheduling settled for {settle:?}"
    );
    assert!(
        waited < settle + SLACK,
        "ran only {waited:?} after the last schedule"
    );
    let dispositions: Vec<Disposition> = receipts.iter().map(|r| r.disposition()).collect();
    assert_eq!(
        dispositions,
        [
            Disposition::Added,
            Disposition::Replaced,
            Disposition::Replaced,
            Disposition::Replaced,
            Disposition::Replaced,
        ]
    );
    assert!(receipts.iter().all(|r| r.key() == receipts[0].key()));
}

pub(crate) async fn debounce_by_argument_collapses_each_value_on_its_own(docket: Docket) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    for (customer, value) in [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)] {
        DebouncedPerCustomer::schedule(probe.id(), customer.into(), value)
            .on(&docket)
            .await
            .unwrap();
    }

    probe
        .until("one run per customer", |p| p.starts() == 2)
        .await;
    eventually("nothing else waits", || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    assert_eq!(sorted_labels(&probe), ["a 3", "b 2"]);
}

// Results.

pub(crate) async fn a_kept_result_is_returned_by_scheduled_result_and_docket_result(
    docket: Docket,
) {
    let scheduled = AddUp::schedule(vec![1, 2, 3]).on(&docket).await.unwrap();
    let worker = Background::start(Worker::new(&docket));

    let sum: u32 = in_time("the result", scheduled.result()).await.unwrap();
    let again: u32 = in_time("the result again", docket.result(scheduled.key()))
        .await
        .unwrap();
    worker.stop().await;

    assert_eq!((sum, again), (6, 6));
    let state = docket.status(scheduled.key()).await.unwrap().unwrap();
    assert_eq!(state.status, Status::Completed);
    assert_eq!(state.result.as_deref(), Some("6"));
    assert_eq!(state.task, "add_up");
}

pub(crate) async fn results_of_tasks_scheduled_while_a_worker_runs_are_all_returned(
    docket: Docket,
) {
    let worker = Background::start(Worker::new(&docket));
    let mut receipts = Vec::new();
    for n in 0..20 {
        receipts.push(AddUp::schedule(vec![n, 1]).on(&docket).await.unwrap());
    }

    let mut sums = Vec::new();
    for receipt in &receipts {
        let state = docket.status(receipt.key()).await.unwrap();
        let sum: u32 = tokio::time::timeout(PATIENCE, receipt.result())
            .await
            .unwrap_or_else(|_| panic!("no result for {receipt:?}; its state: {state:#?}"))
            .unwrap();
        sums.push(sum);
    }
    worker.stop().await;

    assert_eq!(sums, (1..=20).collect::<Vec<u32>>());
}

pub(crate) async fn the_result_of_a_task_that_failed_is_a_task_failed_error(docket: Docket) {
    let probe = Probe::new();
    let scheduled = FailKeepingState::schedule(probe.id())
        .on(&docket)
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&docket));

    let result = in_time("the result", scheduled.result::<u32>()).await;
    worker.stop().await;

    match result {
        Err(Error::TaskFailed { key, message }) => {
            assert_eq!(key, scheduled.key());
            assert!(message.contains("the disk is full"), "{message:?}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    assert_eq!(
        probe.starts(),
        2,
        "the result waits past the failed first attempt"
    );
    let state = docket.status(scheduled.key()).await.unwrap().unwrap();
    assert_eq!((state.status, state.attempt), (Status::Failed, 2));
}

pub(crate) async fn the_result_of_a_cancelled_task_is_a_task_cancelled_error(docket: Docket) {
    let scheduled = AddUp::schedule(vec![1])
        .after(Duration::from_secs(60 * 60))
        .on(&docket)
        .await
        .unwrap();

    assert!(docket.cancel(scheduled.key()).await.unwrap());
    let result = in_time("the result", scheduled.result::<u32>()).await;

    match result {
        Err(Error::TaskCancelled { key }) => assert_eq!(key, scheduled.key()),
        other => panic!("expected TaskCancelled, got {other:?}"),
    }
    let state = docket.status(scheduled.key()).await.unwrap().unwrap();
    assert_eq!(state.status, Status::Cancelled);
}

pub(crate) async fn a_task_that_keeps_no_result_has_none_to_return(docket: Docket) {
    let probe = Probe::new();
    let scheduled = NoteRun::schedule(probe.id(), "no result".into())
        .on(&docket)
        .await
        .unwrap();

    let waiting = in_time("the answer", scheduled.result::<()>()).await;
    finish(&docket).await;
    let ended = in_time("the answer", docket.result::<()>(scheduled.key())).await;
    let unknown = in_time("the answer", docket.result::<()>("no-such-key")).await;

    for (when, result) in [("waiting", waiting), ("ended", ended)] {
        match result {
            Err(Error::NoResult { key }) => assert_eq!(key, scheduled.key(), "{when}"),
            other => panic!("{when}: expected NoResult, got {other:?}"),
        }
    }
    assert!(
        matches!(&unknown, Err(Error::NoResult { key }) if key == "no-such-key"),
        "{unknown:?}"
    );
    assert_eq!(docket.status(scheduled.key()).await.unwrap(), None);
    assert_eq!(probe.starts(), 1);
}

pub(crate) async fn watch_sees_a_task_queued_then_running_then_completed(docket: Docket) {
    let scheduled = AddUp::schedule(vec![2, 2]).on(&docket).await.unwrap();
    let mut watch = docket.watch(scheduled.key()).await.unwrap();

    let worker = Background::start(Worker::new(&docket));
    let states = follow(&mut watch).await;
    worker.stop().await;

    let statuses: Vec<Status> = states.iter().map(|state| state.status).collect();
    assert_eq!(
        statuses,
        [Status::Queued, Status::Running, Status::Completed],
        "{states:#?}"
    );
    assert!(states.iter().all(|state| state.key == scheduled.key()));
    assert_eq!(states[2].result.as_deref(), Some("4"));
}

// Cancelling a running task.

/// Schedule `task` as `key`, start a worker, wait until the task runs, and cancel it; the worker.
async fn cancel_once_running<T: Task>(
    docket: &Docket,
    probe: &Probe,
    task: docket::Schedule<T>,
    key: &str,
) -> Background {
    task.key(key).on(docket).await.unwrap();
    let worker = Background::start(Worker::new(docket));
    probe.until("the task runs", |p| p.starts() == 1).await;

    assert!(
        docket.cancel(key).await.unwrap(),
        "cancel finds the running task"
    );
    probe
        .until("the cancelled run is dropped", |p| p.in_progress() == 0)
        .await;
    eventually("the cancelled task is settled", || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker
}

pub(crate) async fn cancelling_a_running_task_stops_it_at_its_next_await_without_a_retry(
    docket: Docket,
) {
    let probe = Probe::new();
    let schedule = LoopOnSleeps::schedule(probe.id());
    let worker = cancel_once_running(&docket, &probe, schedule, "loop-1").await;
    // Longer than its 10ms backoff: a retry would have started by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.stop().await;

    let run = probe.only_run();
    assert_eq!(run.finished, None, "the task never reached its end");
    assert_eq!(
        dead_letters(&docket).await,
        [],
        "a cancelled task is no failure"
    );
    assert!(
        !docket.cancel("loop-1").await.unwrap(),
        "nothing is left to cancel"
    );
}

pub(crate) async fn a_running_task_that_keeps_state_is_recorded_as_cancelled(docket: Docket) {
    let probe = Probe::new();
    let schedule = LoopOnSleepsKeepingState::schedule(probe.id());
    let worker = cancel_once_running(&docket, &probe, schedule, "loop-2").await;
    let result = in_time("the result", docket.result::<u32>("loop-2")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.stop().await;

    assert!(
        matches!(&result, Err(Error::TaskCancelled { key }) if key == "loop-2"),
        "{result:?}"
    );
    let state = docket.status("loop-2").await.unwrap().unwrap();
    assert_eq!(state.status, Status::Cancelled, "{state:#?}");
    assert_eq!(probe.only_run().finished, None);
    assert_eq!(dead_letters(&docket).await, []);
}
