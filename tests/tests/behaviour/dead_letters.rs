//! Dead letters of tasks that cannot run at all: an unknown task name (replayable once a worker
//! knows it) or arguments that do not decode (never retried).

use std::time::Duration;

use docket::{Docket, Placement};
use tests::finish;
use tests::probe::Probe;

use super::tasks::NoteRun;
use super::{dead_letters, only_dead_letter};

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
