//! Cancelling: a waiting task is removed and never runs; a running one is stopped at its next
//! `.await`, wherever it runs, and is not retried.

use std::time::Duration;

use docket::{Docket, Error, Task, Worker, results::Status};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually, finish, in_time};

use super::dead_letters;
use super::tasks::{LoopOnSleeps, LoopOnSleepsKeepingState, NoteRun};

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

/// Tasks without a key of their own, due now: one scheduled alone and a batch. Each is found by
/// the key its receipt gives, and cancelled by it, however it was stored.
pub(crate) async fn tasks_with_generated_keys_are_found_and_cancelled_by_their_receipts(
    docket: Docket,
) {
    let probe = Probe::new();
    let alone = NoteRun::schedule(probe.id(), "alone".into())
        .on(&docket)
        .await
        .unwrap();
    let batch = docket
        .add_many(
            ["a", "b", "c"]
                .into_iter()
                .map(|label| NoteRun::schedule(probe.id(), label.into())),
        )
        .await
        .unwrap();

    let mut queued: Vec<String> = docket
        .snapshot()
        .await
        .unwrap()
        .queued
        .into_iter()
        .map(|task| task.key)
        .collect();
    queued.sort();
    let mut keys: Vec<String> = std::iter::once(&alone)
        .chain(&batch)
        .map(|receipt| receipt.key().to_owned())
        .collect();
    keys.sort();
    assert_eq!(queued, keys, "every task is queued under its receipt's key");

    assert!(docket.cancel(alone.key()).await.unwrap());
    assert!(docket.cancel(batch[1].key()).await.unwrap());
    assert!(
        !docket.cancel(batch[1].key()).await.unwrap(),
        "gone already"
    );
    finish(&docket).await;

    let mut ran = probe.labels();
    ran.sort();
    assert_eq!(ran, ["a", "c"], "the cancelled ones never run");
    assert!(docket.snapshot().await.unwrap().is_empty());
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
    eventually("the cancelled task is settled", PATIENCE, || async {
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
