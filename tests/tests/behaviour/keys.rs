//! Keys: a task scheduled under the key of a waiting or running one is a duplicate, unless it
//! replaces it; a key is free again once its task has run.

use std::time::Duration;

use docket::{Disposition, Docket, Worker};
use tests::background::Background;
use tests::probe::Probe;
use tests::{PATIENCE, eventually, finish};

use super::tasks::{FailForGood, NoteRun, WaitForRelease, WaitThenFail};
use super::{dead_letters, only_dead_letter, start_a_task_awaiting_release};

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
    eventually("the docket is empty", PATIENCE, || async {
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
    eventually("the docket is empty", PATIENCE, || async {
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

pub(crate) async fn a_cancel_stops_both_a_run_replaced_while_running_and_its_replacement(
    docket: Docket,
) {
    let probe = Probe::new();
    let (worker, _) = start_a_task_awaiting_release(&docket, &probe, "export-2").await;
    probe
        .until("the keyed task runs", |p| p.starts() == 1)
        .await;
    // The replacement waits (due later), beside the run it could not take out.
    let replacement = NoteRun::schedule(probe.id(), "replacement".into())
        .after(Duration::from_millis(300))
        .key("export-2")
        .replace()
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(replacement.disposition(), Disposition::Added);

    assert!(
        docket.cancel("export-2").await.unwrap(),
        "the key holds tasks"
    );
    // The run is dropped at its next await (it awaits its release, which never comes), and
    // the replacement is removed before it falls due.
    eventually("the docket is empty", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    worker.stop().await;

    let runs = probe.runs();
    assert_eq!(runs.len(), 1, "the replacement never ran: {runs:#?}");
    assert!(
        runs[0].finished.is_none(),
        "the replaced run was stopped, not let finish: {runs:#?}"
    );
    assert!(
        !docket.cancel("export-2").await.unwrap(),
        "nothing of the key is left"
    );
}

/// Two replaces while the key's runs go on: the first run is still running when the second,
/// which a replace also went beside, has ended; a cancel of the key still stops the first.
pub(crate) async fn a_cancel_stops_every_run_replaced_while_running_even_after_a_later_one_ended(
    docket: Docket,
) {
    let first = Probe::new();
    let (worker, _) = start_a_task_awaiting_release(&docket, &first, "export-3").await;
    first.until("the first run runs", |p| p.starts() == 1).await;
    // A second run, beside the first.
    let second = Probe::new();
    let beside = WaitForRelease::schedule(second.id())
        .key("export-3")
        .replace()
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(beside.disposition(), Disposition::Added);
    second
        .until("the second run runs", |p| p.starts() == 1)
        .await;
    // A third task, waiting beside the second; then the second ends.
    NoteRun::schedule(first.id(), "third".into())
        .after(Duration::from_millis(300))
        .key("export-3")
        .replace()
        .on(&docket)
        .await
        .unwrap();
    second.release(1);
    second
        .until("the second run ended", |p| p.finishes() == 1)
        .await;

    assert!(docket.cancel("export-3").await.unwrap());
    eventually("the docket is empty", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    worker.stop().await;
    let runs = first.runs();
    assert_eq!(runs.len(), 1, "the third task never ran: {runs:#?}");
    assert!(
        runs[0].finished.is_none(),
        "the first run was stopped, not let finish: {runs:#?}"
    );
}

/// A run that a `replace` went beside, and that fails for good after its replacement did, leaves
/// the key's dead letter as it is: the letter, like the key, belongs to the newer task. (A
/// superseded run is not retried either: its key is its replacement's.)
pub(crate) async fn a_run_replaced_while_running_leaves_the_dead_letter_to_its_replacement(
    docket: Docket,
) {
    let first = Probe::new();
    WaitThenFail::schedule(first.id())
        .key("export-4")
        .on(&docket)
        .await
        .unwrap();
    let worker = Background::start(Worker::new(&docket));
    first.until("the first run runs", |p| p.starts() == 1).await;
    let second = Probe::new();
    let replacement = FailForGood::schedule(second.id())
        .key("export-4")
        .replace()
        .on(&docket)
        .await
        .unwrap();
    assert_eq!(replacement.disposition(), Disposition::Added);
    eventually("the replacement is a dead letter", PATIENCE, || async {
        dead_letters(&docket)
            .await
            .iter()
            .any(|dead| dead.key == "export-4")
    })
    .await;

    first.release(1);
    eventually("the docket is empty", PATIENCE, || async {
        docket.snapshot().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    assert_eq!(first.finishes(), 1, "the first run ended");
    let dead = only_dead_letter(&docket, "export-4").await;
    assert_eq!(
        dead.task, "fail_for_good",
        "the replacement's letter stands: {dead:#?}"
    );
}
