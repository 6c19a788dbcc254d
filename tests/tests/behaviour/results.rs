//! Results: a task declared with `result` keeps its state and return value, for the receipt, the
//! docket, and a watch that sees every change, progress included.

use std::time::Duration;

use docket::{Docket, Error, Worker, results::Status, results::TaskRecord, results::Watch};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, finish, in_time};

use super::tasks::{AddUp, FailKeepingState, NoteRun, ReportProgress};

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
    // Watched before it is scheduled: an in-process docket's own worker may run it at once.
    let key = tests::redis_server::unique_name("watched");
    let mut watch = docket.watch(&key).await.unwrap();
    let scheduled = AddUp::schedule(vec![2, 2])
        .key(&key)
        .on(&docket)
        .await
        .unwrap();

    let worker = Background::start(Worker::new(&docket));
    let states = follow(&mut watch).await;
    worker.stop().await;

    let statuses: Vec<Status> = states.iter().map(|state| state.status).collect();
    // An in-process docket's own worker may start the task before the producer records it as
    // queued: then the stale first state is dropped, never recorded after `running`.
    let statuses = match statuses.first() {
        Some(Status::Running) if !docket.has_queue() => [vec![Status::Queued], statuses].concat(),
        _ => statuses,
    };
    assert_eq!(
        statuses,
        [Status::Queued, Status::Running, Status::Completed],
        "{states:#?}"
    );
    assert!(states.iter().all(|state| state.key == scheduled.key()));
    assert_eq!(states.last().unwrap().result.as_deref(), Some("4"));
}

pub(crate) async fn progress_is_seen_through_watch(docket: Docket) {
    let probe = Probe::new();
    // Watched before it is scheduled: an in-process docket's own worker may run it at once.
    let key = tests::redis_server::unique_name("watched");
    let mut watch = docket.watch(&key).await.unwrap();
    ReportProgress::schedule(probe.id())
        .key(&key)
        .on(&docket)
        .await
        .unwrap();

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
