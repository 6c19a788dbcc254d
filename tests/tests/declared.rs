//! A task declared without a body (`async fn name(..);`): the argument struct and typed
//! `schedule` of a task another service's workers run, and nothing a worker of this binary
//! could run. Scheduled here, it is stored like any task; a worker of this binary finds no task
//! of that name registered and keeps it as a dead letter saying so.

use docket::{Docket, Worker};

/// Transcodes a track; the media service's workers run it.
#[docket::task(retries = 2)]
pub async fn transcode(track_id: i64, format: String);

#[tokio::test]
async fn a_declared_task_is_scheduled_typed_and_registers_nothing() {
    let docket = Docket::connect("memory://").await.unwrap();
    let scheduled = Transcode::schedule(7, "opus".into())
        .key("transcode-7")
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(scheduled.task(), "transcode");
    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(snapshot.queued.len(), 1);
    assert_eq!(
        <Transcode as docket::Task>::PARAMS,
        ["track_id", "format"],
        "its parameters, for a pydocket worker's keyword arguments"
    );
    assert_eq!(
        <Transcode as docket::Task>::policy().max_attempts(),
        3,
        "its attribute's policy, as the producer reads it"
    );

    Worker::new(&docket).run_until_finished().await.unwrap();
    let dead = docket.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(
        dead[0].reason.contains("unknown task `transcode`"),
        "no worker of this binary runs it: {}",
        dead[0].reason
    );
}
