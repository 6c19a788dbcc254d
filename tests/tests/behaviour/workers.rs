//! Workers: a worker runs at most its concurrency at once, finishes what runs when told to shut
//! down, and `run_until_finished` waits for tasks due later.

use std::time::Duration;

use docket::{Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, finish};

use super::schedule_note_after;
use super::tasks::SleepFor;

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
