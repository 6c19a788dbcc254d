//! The behaviour every backend shares: what a user of docket may rely on, one test a behaviour.
//!
//! A backend's test binary runs the whole suite against its own dockets:
//!
//! ```ignore
//! mod behaviour;
//!
//! /// A fresh, empty docket no other test uses.
//! async fn open() -> docket::Docket {
//!     docket::Docket::connect("memory://")
//!         .name(behaviour::unique_name("memory"))
//!         .await
//!         .unwrap()
//! }
//!
//! behaviour::behaviour_suite!(open);
//! ```
//!
//! Each behaviour is an `async fn` below taking that docket; [`behaviour_suite!`] makes one
//! `#[tokio::test]` of each. Tasks report to a [`Probe`] named in their arguments, so tests that
//! run side by side in one process never see each other's work. Delays are asserted as lower
//! bounds exactly and upper bounds generously: these tests state behaviour, not speed.

pub(crate) mod capture;
pub(crate) mod policies;
mod tasks;

// The suite calls each behaviour by its name in this module.
pub(crate) use self::policies::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use docket::{Disposition, Docket, Placement, Worker, inspect::DeadLetter};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, finish, same_time};

use self::capture::Capture;
use self::tasks::{
    FailAlways, FailThenSucceed, FailThenWaitAnHour, FailWithExponentialBackoff, NoteRun,
    OverrunTimeout, PanicAlways, SleepFor, WaitForRelease,
};

/// One `#[tokio::test]` per behaviour, each on a docket of its own from `$open`, an async
/// function (or closure) returning a fresh, empty [`Docket`], or a docket and a value to keep
/// until the test ends (see [`Opened`]).
macro_rules! behaviour_suite {
    ($open:expr) => {
        $crate::behaviour::behaviour_suite!(@tests $open;
            a_task_scheduled_now_runs,
            add_many_schedules_every_task_with_its_own_options,
            a_task_scheduled_after_a_delay_does_not_run_before_it,
            a_task_scheduled_at_a_time_does_not_run_before_it,
            a_task_scheduled_at_a_past_time_runs_now,
            scheduled_reports_the_key_the_task_and_the_queue,
            a_second_task_with_the_key_of_a_waiting_one_is_a_duplicate_and_never_runs,
            a_second_task_with_the_key_of_a_running_one_is_a_duplicate,
            a_key_is_free_again_once_its_task_has_run,
            replace_swaps_the_waiting_task_for_the_new_one,
            a_task_replaced_while_running_finishes_undisturbed_beside_its_replacement,
            cancel_removes_a_waiting_task_so_it_never_runs,
            cancelling_a_key_that_nothing_holds_returns_false,
            a_failing_task_runs_once_plus_its_retries_then_becomes_a_dead_letter,
            retries_wait_at_least_the_fixed_backoff,
            retries_wait_at_least_the_exponential_backoff,
            a_task_that_succeeds_on_a_retry_is_not_a_dead_letter,
            an_attempt_that_overruns_its_timeout_fails_as_timed_out,
            a_panicking_task_is_a_failed_attempt_and_the_worker_keeps_running,
            a_worker_never_runs_more_tasks_at_once_than_its_concurrency,
            shutdown_lets_running_tasks_finish_and_leaves_the_rest_queued,
            a_task_with_an_unknown_name_becomes_a_replayable_dead_letter,
            arguments_that_do_not_decode_become_a_dead_letter_without_retries,
            the_snapshot_lists_due_tasks_as_queued,
            the_snapshot_lists_queued_tasks_oldest_first,
            the_snapshot_lists_future_tasks_as_scheduled,
            the_snapshot_lists_a_task_being_run_as_running_on_its_worker,
            the_snapshot_lists_a_task_waiting_to_retry_as_scheduled_for_its_next_attempt,
            the_snapshot_is_empty_after_run_until_finished,
            run_until_finished_waits_for_tasks_due_later,
            scheduling_on_a_queue_is_traced_as_via_docket,
        );
        $crate::behaviour::policies::policies_suite!($open);
    };
    (@tests $open:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let (docket, _keep) = $crate::behaviour::Opened::split(($open)().await);
                $crate::behaviour::$behaviour(docket).await;
            }
        )*
    };
}

pub(crate) use behaviour_suite;

/// What a suite's `open` returns: a docket, or a docket and what must live as long as the test
/// (a private server, say).
pub(crate) trait Opened {
    type Keep;
    fn split(self) -> (Docket, Self::Keep);
}

impl Opened for Docket {
    type Keep = ();
    fn split(self) -> (Docket, ()) {
        (self, ())
    }
}

impl<K> Opened for (Docket, K) {
    type Keep = K;
    fn split(self) -> (Docket, K) {
        self
    }
}

/// Slack allowed above an expected delay before it counts as not honoured. Generous: a loaded
/// machine is slow, and these tests are not about speed.
const SLACK: Duration = Duration::from_secs(2);

/// A docket name no other docket of this process has, for backends that share storage.
pub(crate) fn unique_name(backend: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("behaviour-{backend}-{}-{n}", std::process::id())
}

/// Wait until `check` holds; fail the test, naming `what`, if it never does.
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    tests::eventually(what, PATIENCE, check).await;
}

async fn dead_letters(docket: &Docket) -> Vec<DeadLetter> {
    docket.dead_letters().await.expect("read the dead letters")
}

/// The one dead letter of `docket`; fails the test unless it is the task scheduled as `key`.
async fn only_dead_letter(docket: &Docket, key: &str) -> DeadLetter {
    let mut dead = dead_letters(docket).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let dead = dead.remove(0);
    assert_eq!(dead.key, key, "the dead letter is the task scheduled");
    dead
}

/// Schedule a `note_run` labelled `label`, due `delay` from now; when it was scheduled.
async fn schedule_note_after(
    docket: &Docket,
    probe: &Probe,
    label: &str,
    delay: Duration,
) -> Instant {
    let scheduled_at = Instant::now();
    NoteRun::schedule(probe.id(), label.into())
        .after(delay)
        .on(docket)
        .await
        .unwrap();
    scheduled_at
}

/// Schedule as `key` a task that runs until `probe` releases it, and start a worker in the
/// background to run it; the worker and its id. The task may not have started yet.
async fn start_a_task_awaiting_release(
    docket: &Docket,
    probe: &Probe,
    key: &str,
) -> (Background, String) {
    WaitForRelease::schedule(probe.id())
        .key(key)
        .on(docket)
        .await
        .unwrap();
    let worker = Worker::new(docket);
    let worker_id = worker.id().to_owned();
    (Background::start(worker), worker_id)
}

/// Assert that `probe` ran once, no sooner than `delay` after `scheduled_at`, when it was due,
/// and less than [`SLACK`] later.
#[track_caller]
fn assert_ran_once_after(probe: &Probe, scheduled_at: Instant, delay: Duration) {
    let waited = probe.only_run().started.duration_since(scheduled_at);
    assert!(
        waited >= delay,
        "ran {waited:?} after scheduling, before it was due ({delay:?} after)"
    );
    assert!(
        waited < delay + SLACK,
        "ran only {waited:?} after scheduling, {SLACK:?} or more after it was due ({delay:?} after)"
    );
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

// Scheduling.

pub(crate) async fn a_task_scheduled_now_runs(docket: Docket) {
    let probe = Probe::new();
    NoteRun::schedule(probe.id(), "now".into())
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(probe.labels(), ["now"]);
}

pub(crate) async fn add_many_schedules_every_task_with_its_own_options(docket: Docket) {
    let probe = Probe::new();
    let note = |label: &str| NoteRun::schedule(probe.id(), label.into());
    let receipts = docket
        .add_many([
            note("plain"),
            note("keyed").key("batch-key"),
            note("same key").key("batch-key"),
            note("later").after(Duration::from_millis(100)),
        ])
        .await
        .unwrap();

    let dispositions: Vec<Disposition> = receipts.iter().map(|r| r.disposition()).collect();
    assert_eq!(
        dispositions,
        [
            Disposition::Added,
            Disposition::Added,
            Disposition::Duplicate,
            Disposition::Added
        ]
    );
    assert_eq!(receipts[1].key(), "batch-key");
    assert!(receipts.iter().all(|r| r.placement() == Placement::Queue));
    assert_eq!(docket.snapshot().await.unwrap().scheduled.len(), 1);
    finish(&docket).await;
    let mut labels = probe.labels();
    labels.sort();
    assert_eq!(labels, ["keyed", "later", "plain"]);
}

pub(crate) async fn a_task_scheduled_after_a_delay_does_not_run_before_it(docket: Docket) {
    let probe = Probe::new();
    let delay = Duration::from_millis(150);
    let scheduled_at = schedule_note_after(&docket, &probe, "later", delay).await;

    finish(&docket).await;

    assert_ran_once_after(&probe, scheduled_at, delay);
}

pub(crate) async fn a_task_scheduled_at_a_time_does_not_run_before_it(docket: Docket) {
    let probe = Probe::new();
    let delay = Duration::from_millis(150);
    let scheduled_at = Instant::now();
    NoteRun::schedule(probe.id(), "at".into())
        .at(SystemTime::now() + delay)
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_ran_once_after(&probe, scheduled_at, delay);
}

pub(crate) async fn a_task_scheduled_at_a_past_time_runs_now(docket: Docket) {
    let probe = Probe::new();
    let scheduled_at = Instant::now();
    NoteRun::schedule(probe.id(), "overdue".into())
        .at(SystemTime::now() - Duration::from_secs(60 * 60))
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    let waited = probe.only_run().started.duration_since(scheduled_at);
    assert!(waited < SLACK, "an overdue task waited {waited:?}");
}

pub(crate) async fn scheduled_reports_the_key_the_task_and_the_queue(docket: Docket) {
    let probe = Probe::new();

    let keyed = NoteRun::schedule(probe.id(), "keyed".into())
        .key("invoice-42")
        .on(&docket)
        .await
        .unwrap();
    let first = NoteRun::schedule(probe.id(), "unkeyed".into())
        .on(&docket)
        .await
        .unwrap();
    let second = NoteRun::schedule(probe.id(), "unkeyed".into())
        .on(&docket)
        .await
        .unwrap();

    assert_eq!(keyed.key(), "invoice-42");
    assert_eq!(keyed.task(), "note_run");
    assert_eq!(keyed.placement(), Placement::Queue);
    assert_eq!(keyed.disposition(), Disposition::Added);
    assert!(!first.key().is_empty(), "a task without a key is given one");
    assert_ne!(first.key(), second.key(), "generated keys are unique");
    assert_eq!(second.disposition(), Disposition::Added);
}

// Keys.

pub(crate) async fn a_second_task_with_the_key_of_a_waiting_one_is_a_duplicate_and_never_runs(
    docket: Docket,
) {
    let probe = Probe::new();
    let first = NoteRun::schedule(probe.id(), "first".into())
        .after(Duration::from_millis(100))
        .key("report-7")
        .on(&docket)
        .await
        .unwrap();
    let second = NoteRun::schedule(probe.id(), "second".into())
        .key("report-7")
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(first.disposition(), Disposition::Added);
    assert_eq!(second.disposition(), Disposition::Duplicate);
    assert_eq!(second.key(), "report-7");
    assert_eq!(probe.labels(), ["first"]);
}

pub(crate) async fn a_second_task_with_the_key_of_a_running_one_is_a_duplicate(docket: Docket) {
    let probe = Probe::new();
    let (worker, _) = start_a_task_awaiting_release(&docket, &probe, "export-1").await;
    probe
        .until("the keyed task runs", |p| p.starts() == 1)
        .await;

    let again = WaitForRelease::schedule(probe.id())
        .key("export-1")
        .on(&docket)
        .await
        .unwrap();
    probe.release(2);
    eventually("the docket is empty", || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    assert_eq!(again.disposition(), Disposition::Duplicate);
    assert_eq!(probe.starts(), 1, "the duplicate must not run");
}

pub(crate) async fn a_key_is_free_again_once_its_task_has_run(docket: Docket) {
    let probe = Probe::new();
    NoteRun::schedule(probe.id(), "first".into())
        .key("digest")
        .on(&docket)
        .await
        .unwrap();
    finish(&docket).await;

    let again = NoteRun::schedule(probe.id(), "second".into())
        .key("digest")
        .on(&docket)
        .await
        .unwrap();
    finish(&docket).await;

    assert_eq!(again.disposition(), Disposition::Added);
    assert_eq!(probe.labels(), ["first", "second"]);
}

pub(crate) async fn replace_swaps_the_waiting_task_for_the_new_one(docket: Docket) {
    let probe = Probe::new();
    NoteRun::schedule(probe.id(), "old".into())
        .after(Duration::from_millis(100))
        .key("report-7")
        .on(&docket)
        .await
        .unwrap();
    let replacement = NoteRun::schedule(probe.id(), "new".into())
        .key("report-7")
        .replace()
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(replacement.disposition(), Disposition::Replaced);
    assert_eq!(probe.labels(), ["new"], "only the replacement runs");
}

pub(crate) async fn a_task_replaced_while_running_finishes_undisturbed_beside_its_replacement(
    docket: Docket,
) {
    let probe = Probe::new();
    let (worker, worker_id) = start_a_task_awaiting_release(&docket, &probe, "export-1").await;

    let replace = NoteRun::schedule(probe.id(), "replacement".into())
        .key("export-1")
        .replace()
        .on(&docket);
    let replacement = probe.while_the_first_runs(replace).await.unwrap();
    let snapshot = docket.snapshot().await.unwrap();
    probe.release(1);
    eventually("the docket is empty", || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    assert_eq!(
        replacement.disposition(),
        Disposition::Added,
        "nothing was waiting to be replaced"
    );
    // The replacement may still be settling; the replaced run must be there either way.
    assert!(
        snapshot.running.iter().any(|task| task.key == "export-1"
            && task.task == "wait_for_release"
            && task.worker.as_deref() == Some(worker_id.as_str())),
        "the replaced run still runs: {snapshot:#?}"
    );
    let runs = probe.runs();
    assert_eq!(runs[1].label, "replacement");
    assert!(
        runs[0].finished.is_some(),
        "the replaced run was not interrupted: {runs:#?}"
    );
}

pub(crate) async fn cancel_removes_a_waiting_task_so_it_never_runs(docket: Docket) {
    let probe = Probe::new();
    NoteRun::schedule(probe.id(), "cancelled".into())
        .after(Duration::from_millis(100))
        .key("reminder-3")
        .on(&docket)
        .await
        .unwrap();

    let cancelled = docket.cancel("reminder-3").await.unwrap();
    let snapshot = docket.snapshot().await.unwrap();
    finish(&docket).await;

    assert!(cancelled, "cancel finds the waiting task");
    assert!(snapshot.is_empty(), "{snapshot:#?}");
    assert_eq!(probe.starts(), 0, "a cancelled task never runs");
}

pub(crate) async fn cancelling_a_key_that_nothing_holds_returns_false(docket: Docket) {
    let probe = Probe::new();
    NoteRun::schedule(probe.id(), "other".into())
        .after(Duration::from_millis(50))
        .key("reminder-3")
        .on(&docket)
        .await
        .unwrap();

    let cancelled = docket.cancel("reminder-4").await.unwrap();
    finish(&docket).await;

    assert!(!cancelled);
    assert_eq!(
        probe.labels(),
        ["other"],
        "cancelling another key touches nothing"
    );
}

// Retries, timeouts and panics.

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

pub(crate) async fn a_panicking_task_is_a_failed_attempt_and_the_worker_keeps_running(
    docket: Docket,
) {
    let probe = Probe::new();
    let worker = Background::start(Worker::new(&docket));
    let panicking = PanicAlways::schedule(probe.id()).on(&docket).await.unwrap();
    eventually("the panicking task is a dead letter", || async {
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

// Workers.

pub(crate) async fn a_worker_never_runs_more_tasks_at_once_than_its_concurrency(docket: Docket) {
    let probe = Probe::new();
    for _ in 0..20 {
        SleepFor::schedule(probe.id(), 30)
            .on(&docket)
            .await
            .unwrap();
    }

    tokio::time::timeout(
        PATIENCE,
        Worker::new(&docket).concurrency(3).run_until_finished(),
    )
    .await
    .expect("the worker finished in time")
    .unwrap();

    assert_eq!(probe.finishes(), 20);
    assert_eq!(
        probe.most_running(),
        3,
        "at most 3 at once, and 3 when 20 wait"
    );
}

pub(crate) async fn shutdown_lets_running_tasks_finish_and_leaves_the_rest_queued(docket: Docket) {
    let probe = Probe::new();
    for _ in 0..4 {
        SleepFor::schedule(probe.id(), 200)
            .on(&docket)
            .await
            .unwrap();
    }
    let worker = Background::start(Worker::new(&docket).concurrency(2));
    probe.until("two tasks run", |p| p.starts() == 2).await;

    worker.stop().await;

    assert_eq!(
        probe.finishes(),
        2,
        "shutdown waits for the running tasks to finish"
    );
    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(snapshot.running, [], "nothing is left running");
    assert_eq!(
        snapshot.queued.len(),
        2,
        "the tasks not started wait: {snapshot:#?}"
    );

    finish(&docket).await;
    assert_eq!(
        probe.finishes(),
        4,
        "the waiting tasks run on the next worker"
    );
}

// Dead letters.

pub(crate) async fn a_task_with_an_unknown_name_becomes_a_replayable_dead_letter(docket: Docket) {
    let probe = Probe::new();
    let unknown = docket.add_json("no_such_task", "{}").await.unwrap();
    NoteRun::schedule(probe.id(), "known".into())
        .after(Duration::from_millis(50))
        .on(&docket)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(unknown.placement(), Placement::Queue);
    assert_eq!(
        probe.labels(),
        ["known"],
        "the worker keeps running other tasks"
    );
    let dead = only_dead_letter(&docket, unknown.key()).await;
    assert_eq!(dead.task, "no_such_task");
    assert_eq!(dead.args, "{}");
    assert!(dead.reason.contains("no_such_task"), "{:?}", dead.reason);

    assert!(
        docket.replay(unknown.key()).await.unwrap(),
        "replay finds the dead letter"
    );
    let snapshot = docket.snapshot().await.unwrap();
    let queued: Vec<&str> = snapshot.queued.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(queued, [unknown.key()], "replay queues the task again");
    assert_eq!(snapshot.queued[0].task, "no_such_task");
    assert_eq!(snapshot.queued[0].attempt, 1);
    assert_eq!(
        dead_letters(&docket).await,
        [],
        "a replayed task is no longer dead"
    );
}

pub(crate) async fn arguments_that_do_not_decode_become_a_dead_letter_without_retries(
    docket: Docket,
) {
    let probe = Probe::new();
    let scheduled = docket
        .add_json("fail_always", r#"{"wrong":1}"#)
        .await
        .unwrap();

    finish(&docket).await;

    assert_eq!(probe.starts(), 0);
    let dead = only_dead_letter(&docket, scheduled.key()).await;
    assert_eq!(dead.task, "fail_always");
    assert_eq!(
        dead.args, r#"{"wrong":1}"#,
        "the arguments are kept as they were"
    );
    assert_eq!(dead.attempt, 1, "retrying cannot make arguments decode");
    assert!(dead.reason.contains("decode"), "{:?}", dead.reason);
}

// Snapshots.

pub(crate) async fn the_snapshot_lists_due_tasks_as_queued(docket: Docket) {
    let probe = Probe::new();
    let scheduled = NoteRun::schedule(probe.id(), "queued".into())
        .key("queued-1")
        .on(&docket)
        .await
        .unwrap();

    let snapshot = docket.snapshot().await.unwrap();

    assert_eq!(snapshot.queued.len(), 1, "{snapshot:#?}");
    assert_eq!((snapshot.scheduled.len(), snapshot.running.len()), (0, 0));
    let queued = &snapshot.queued[0];
    assert_eq!(queued.key, "queued-1");
    assert_eq!(queued.task, "note_run");
    assert_eq!(queued.attempt, 1);
    assert_eq!(queued.worker, None);
    assert!(
        same_time(queued.due, scheduled.due()),
        "{queued:?} vs {scheduled:?}"
    );
}

pub(crate) async fn the_snapshot_lists_queued_tasks_oldest_first(docket: Docket) {
    let probe = Probe::new();
    // `first` is scheduled first and due first, but becomes due only while it waits.
    NoteRun::schedule(probe.id(), "first".into())
        .after(Duration::from_millis(30))
        .key("first")
        .on(&docket)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    NoteRun::schedule(probe.id(), "second".into())
        .key("second")
        .on(&docket)
        .await
        .unwrap();

    let snapshot = docket.snapshot().await.unwrap();

    let queued: Vec<&str> = snapshot.queued.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(queued, ["first", "second"], "{snapshot:#?}");
}

pub(crate) async fn the_snapshot_lists_future_tasks_as_scheduled(docket: Docket) {
    let probe = Probe::new();
    let scheduled = NoteRun::schedule(probe.id(), "tomorrow".into())
        .after(Duration::from_secs(24 * 60 * 60))
        .key("tomorrow")
        .on(&docket)
        .await
        .unwrap();

    let snapshot = docket.snapshot().await.unwrap();

    assert_eq!(snapshot.scheduled.len(), 1, "{snapshot:#?}");
    assert_eq!((snapshot.queued.len(), snapshot.running.len()), (0, 0));
    let waiting = &snapshot.scheduled[0];
    assert_eq!(waiting.key, "tomorrow");
    assert_eq!(waiting.task, "note_run");
    assert!(
        same_time(waiting.due, scheduled.due()),
        "{waiting:?} vs {scheduled:?}"
    );
    assert!(
        waiting.due > snapshot.taken,
        "a scheduled task is due in the future"
    );
}

pub(crate) async fn the_snapshot_lists_a_task_being_run_as_running_on_its_worker(docket: Docket) {
    let probe = Probe::new();
    let (worker, worker_id) = start_a_task_awaiting_release(&docket, &probe, "blocked").await;
    probe.until("the task runs", |p| p.starts() == 1).await;

    let snapshot = docket.snapshot().await.unwrap();
    probe.release(1);
    worker.stop().await;

    assert_eq!(snapshot.running.len(), 1, "{snapshot:#?}");
    assert_eq!((snapshot.queued.len(), snapshot.scheduled.len()), (0, 0));
    let running = &snapshot.running[0];
    assert_eq!(running.key, "blocked");
    assert_eq!(running.task, "wait_for_release");
    assert_eq!(running.attempt, 1);
    assert_eq!(running.worker.as_deref(), Some(worker_id.as_str()));
}

pub(crate) async fn the_snapshot_lists_a_task_waiting_to_retry_as_scheduled_for_its_next_attempt(
    docket: Docket,
) {
    let probe = Probe::new();
    let scheduled = FailThenWaitAnHour::schedule(probe.id())
        .on(&docket)
        .await
        .unwrap();
    // Read before the worker starts: the attempt can fail, and its retry be computed, before
    // this line would run after the start.
    let failed_at = SystemTime::now();
    let worker = Background::start(Worker::new(&docket));
    eventually("the task waits for its retry", || async {
        !docket.snapshot().await.unwrap().scheduled.is_empty()
    })
    .await;
    worker.stop().await;

    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(probe.starts(), 1);
    assert_eq!(snapshot.scheduled.len(), 1, "{snapshot:#?}");
    assert_eq!((snapshot.queued.len(), snapshot.running.len()), (0, 0));
    let retry = &snapshot.scheduled[0];
    assert_eq!(retry.key, scheduled.key());
    assert_eq!(retry.attempt, 2);
    let backoff = Duration::from_secs(60 * 60);
    assert!(
        retry.due >= failed_at + backoff,
        "due {retry:?}, before its backoff"
    );
    assert!(retry.due < failed_at + backoff + SLACK, "due {retry:?}");
    assert!(
        docket.cancel(scheduled.key()).await.unwrap(),
        "a retry waits like any task"
    );
}

pub(crate) async fn the_snapshot_is_empty_after_run_until_finished(docket: Docket) {
    let probe = Probe::new();
    NoteRun::schedule(probe.id(), "a".into())
        .on(&docket)
        .await
        .unwrap();
    NoteRun::schedule(probe.id(), "b".into())
        .after(Duration::from_millis(50))
        .on(&docket)
        .await
        .unwrap();
    let before = docket.snapshot().await.unwrap();

    finish(&docket).await;

    let after = docket.snapshot().await.unwrap();
    assert_eq!(before.len(), 2, "{before:#?}");
    assert!(after.is_empty(), "{after:#?}");
    assert_eq!(after.dead, 0);
    assert_eq!(probe.starts(), 2);
}

pub(crate) async fn run_until_finished_waits_for_tasks_due_later(docket: Docket) {
    let probe = Probe::new();
    let delay = Duration::from_millis(150);
    let scheduled_at = schedule_note_after(&docket, &probe, "later", delay).await;

    finish(&docket).await;

    assert!(
        scheduled_at.elapsed() >= delay,
        "returned before the task was due"
    );
    assert_eq!(
        probe.labels(),
        ["later"],
        "the task ran before the worker returned"
    );
}

// Tracing.

pub(crate) async fn scheduling_on_a_queue_is_traced_as_via_docket(docket: Docket) {
    let probe = Probe::new();
    let capture = Capture::new();
    let scheduled = {
        // Scheduling runs on this thread, so a thread-local subscriber sees all of it.
        let _guard = tracing::subscriber::set_default(capture.subscriber());
        NoteRun::schedule(probe.id(), "traced".into())
            .on(&docket)
            .await
            .unwrap()
    };

    let spans = capture.spans("docket.schedule");
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].field("task"), Some("note_run"));
    assert_eq!(spans[0].field("key"), Some(scheduled.key()));
    assert_eq!(spans[0].field("placement"), Some("queue"));
    let messages = capture.messages_in("docket.schedule");
    assert!(
        messages
            .iter()
            .any(|m| m == "scheduled note_run via docket"),
        "{messages:#?}"
    );
}
