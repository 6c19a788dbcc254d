//! Snapshots: what `docket.snapshot()` lists as queued, scheduled and running, and on which
//! worker.

use std::time::{Duration, SystemTime};

use docket::{Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually, finish, same_time};

use super::tasks::{FailThenWaitAnHour, NoteRun};
use super::{SLACK, start_a_task_awaiting_release};

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
    eventually("the task waits for its retry", PATIENCE, || async {
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
