//! In-process mode: with no queue, `schedule` runs the task on the caller's tokio runtime.
//!
//! Nothing in this binary sets `DOCKET_URL`: the default docket ([`Docket::global`]) is made from
//! the environment once per process, and one test relies on it being in-process. Tests that look
//! at traces run on a current-thread runtime, so the tasks they spawn run on the thread whose
//! subscriber captures them.

use std::time::{Duration, Instant};

use docket::{Disposition, Docket, Placement, Schedule, Scheduled, Task, Worker};

use tests::probe::Probe;
use tests::{PATIENCE, finish};

use tests::capture::{Capture, CapturedSpan};

/// Records one run, labelled `label`.
#[docket::task]
async fn note_run(probe: String, label: String) {
    Probe::find(&probe).start(label).finish();
}

/// Fails every attempt with the same error.
#[docket::task(retries = 2, backoff = "fixed 30ms")]
async fn fail_always(probe: String) -> Result<(), String> {
    Probe::find(&probe).start("fail_always").finish();
    Err("the disk is full".to_owned())
}

/// Waits until the test calls `probe.release(..)`.
#[docket::task]
async fn wait_for_release(probe: String, label: String) {
    let probe = Probe::find(&probe);
    let run = probe.start(label);
    probe.released().await;
    run.finish();
}

/// On a fresh in-process docket, schedule what `schedule` makes for a new probe's id and wait
/// until it has ended, tracing it all to `capture`; what was scheduled.
async fn run_traced<T: Task>(
    capture: &Capture,
    schedule: impl FnOnce(String) -> Schedule<T>,
) -> Scheduled {
    let _guard = tracing::subscriber::set_default(capture.subscriber());
    let docket = Docket::in_process();
    let probe = Probe::new();

    let scheduled = schedule(probe.id()).on(&docket).await.unwrap();
    finish(&docket).await;
    scheduled
}

/// The one span named `name`; fails the test unless it is of the `note_run` task `scheduled`.
#[track_caller]
fn only_note_run_span(capture: &Capture, name: &str, scheduled: &Scheduled) -> CapturedSpan {
    let mut spans = capture.spans(name);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = spans.remove(0);
    assert_eq!(span.field("task"), Some("note_run"));
    assert_eq!(span.field("key"), Some(scheduled.key()));
    span
}

#[tokio::test]
async fn scheduling_with_no_docket_url_runs_the_task_in_process() {
    assert!(
        std::env::var_os("DOCKET_URL").is_none(),
        "run this test with DOCKET_URL unset: it checks the default, in-process mode"
    );
    let probe = Probe::new();

    let typed = NoteRun::schedule(probe.id(), "typed".into()).await.unwrap();
    let free = schedule_note_run(probe.id(), "free function".into())
        .await
        .unwrap();
    probe.until("both tasks ran", |p| p.starts() == 2).await;

    assert_eq!(typed.placement(), Placement::InProcess);
    assert_eq!(free.placement(), Placement::InProcess);
    assert_eq!(typed.disposition(), Disposition::Added);
    assert_eq!(typed.task(), "note_run");
    let mut labels = probe.labels();
    labels.sort();
    assert_eq!(labels, ["free function", "typed"]);
    assert!(!Docket::global().await.unwrap().has_queue());
}

#[tokio::test]
async fn an_in_process_task_scheduled_later_does_not_run_before_its_due_time() {
    let docket = Docket::in_process();
    let probe = Probe::new();
    let delay = Duration::from_millis(150);
    let scheduled_at = Instant::now();

    let scheduled = NoteRun::schedule(probe.id(), "later".into())
        .after(delay)
        .on(&docket)
        .await
        .unwrap();
    finish(&docket).await;

    assert_eq!(scheduled.placement(), Placement::InProcess);
    let waited = probe.only_run().started.duration_since(scheduled_at);
    assert!(
        waited >= delay,
        "ran {waited:?} after scheduling, before its {delay:?} delay"
    );
}

#[tokio::test]
async fn a_failing_in_process_task_is_retried_then_dead_lettered() {
    let docket = Docket::in_process();
    let probe = Probe::new();

    let scheduled = FailAlways::schedule(probe.id()).on(&docket).await.unwrap();
    finish(&docket).await;

    assert_eq!(
        probe.starts(),
        3,
        "retries = 2: the first attempt and two retries"
    );
    let dead = docket.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].key, scheduled.key());
    assert_eq!(dead[0].task, "fail_always");
    assert_eq!(dead[0].attempt, 3);
    assert!(
        dead[0].reason.contains("the disk is full"),
        "{:?}",
        dead[0].reason
    );
}

#[tokio::test]
async fn in_process_retries_wait_at_least_their_backoff() {
    let docket = Docket::in_process();
    let probe = Probe::new();

    FailAlways::schedule(probe.id()).on(&docket).await.unwrap();
    finish(&docket).await;

    let gaps = probe.gaps();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    for gap in gaps {
        let backoff = Duration::from_millis(30);
        assert!(
            gap >= backoff,
            "retried after {gap:?}, before the {backoff:?} backoff"
        );
    }
}

#[tokio::test]
async fn an_in_process_task_replaced_while_running_still_counts_as_running() {
    let docket = Docket::in_process();
    let probe = Probe::new();
    WaitForRelease::schedule(probe.id(), "replaced".into())
        .key("export-1")
        .on(&docket)
        .await
        .unwrap();

    let replace = NoteRun::schedule(probe.id(), "replacement".into())
        .key("export-1")
        .replace()
        .on(&docket);
    let replacement = probe.while_the_first_runs(replace).await.unwrap();
    let snapshot = docket.snapshot().await.unwrap();
    let finishing = tokio::spawn({
        let docket = docket.clone();
        async move { Worker::new(&docket).run_until_finished().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let finished_early = finishing.is_finished();
    probe.release(1);
    tokio::time::timeout(PATIENCE, finishing)
        .await
        .expect("the in-process tasks finished in time")
        .unwrap()
        .unwrap();

    assert_eq!(replacement.disposition(), Disposition::Added);
    assert!(
        !finished_early,
        "run_until_finished returned while the replaced run was still running"
    );
    assert!(
        snapshot
            .running
            .iter()
            .any(|task| task.key == "export-1" && task.task == "wait_for_release"),
        "the replaced run still runs: {snapshot:#?}"
    );
    assert!(probe.runs()[0].finished.is_some());
}

// Tracing.

#[tokio::test]
async fn scheduling_in_process_is_traced_in_a_docket_schedule_span() {
    let capture = Capture::new();
    let scheduled = run_traced(&capture, |probe| NoteRun::schedule(probe, "traced".into())).await;

    let span = only_note_run_span(&capture, "docket.schedule", &scheduled);
    assert_eq!(span.field("placement"), Some("in-process"));
    let messages = capture.messages_in("docket.schedule");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("note_run") && m.contains("in-process")),
        "{messages:#?}"
    );
}

#[tokio::test]
async fn each_in_process_attempt_is_traced_in_a_docket_task_span() {
    let capture = Capture::new();
    let scheduled = run_traced(&capture, |probe| NoteRun::schedule(probe, "traced".into())).await;

    let span = only_note_run_span(&capture, "docket.task", &scheduled);
    assert_eq!(span.field("attempt"), Some("1"));
    assert_eq!(span.field("outcome"), Some("succeeded"));
}

#[tokio::test]
async fn failed_in_process_attempts_are_traced_with_their_number_and_outcome() {
    let capture = Capture::new();
    let scheduled = run_traced(&capture, FailAlways::schedule).await;

    let spans = capture.spans("docket.task");
    let attempts: Vec<(Option<&str>, Option<&str>, Option<&str>)> = spans
        .iter()
        .map(|span| {
            (
                span.field("key"),
                span.field("attempt"),
                span.field("outcome"),
            )
        })
        .collect();
    let key = Some(scheduled.key());
    assert_eq!(
        attempts,
        [
            (key, Some("1"), Some("failed")),
            (key, Some("2"), Some("failed")),
            (key, Some("3"), Some("failed")),
        ]
    );
    let messages = capture.messages_in("docket.task");
    assert!(
        messages.iter().any(|m| m == "task attempt failed"),
        "{messages:#?}"
    );
}
