//! Scheduling: a task runs when it is due, never before; `add_many` schedules a batch, each task
//! with its own options; the receipt says what was scheduled and where.

use std::time::{Duration, Instant, SystemTime};

use docket::{Disposition, Docket, Placement};
use tests::finish;
use tests::probe::Probe;

use super::tasks::NoteRun;
use super::{SLACK, schedule_note_after};

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
            note("later").after(Duration::from_secs(1)),
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
