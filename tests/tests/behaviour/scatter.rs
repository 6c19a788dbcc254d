//! Scatter: a batch spread evenly over a period, each task run at its place in the spread, and
//! the same batch scattered again adds nothing while its tasks wait.

use std::time::{Duration, Instant};

use docket::{Disposition, Docket};
use tests::finish;
use tests::probe::Probe;

use super::tasks::NoteValue;

pub(crate) async fn scatter_spreads_a_batch_evenly_and_runs_it_in_that_order(docket: Docket) {
    const TASKS: i64 = 8;
    let probe = Probe::new();
    let over = Duration::from_millis(400);
    let scheduled_at = Instant::now();
    let receipts = docket
        .scatter(
            (0..TASKS).map(|n| NoteValue::schedule(probe.id(), n)),
            over,
            Duration::ZERO,
        )
        .await
        .unwrap();

    let first = receipts[0].due();
    for (i, receipt) in (0..).zip(&receipts) {
        let offset = receipt.due().duration_since(first).unwrap();
        let expected = over * i / TASKS as u32;
        assert!(
            offset.abs_diff(expected) < Duration::from_millis(5),
            "task {i} is due {offset:?} after the first, not {expected:?}"
        );
        assert_eq!(receipt.disposition(), Disposition::Added);
    }
    finish(&docket).await;
    let mut expected: Vec<String> = (0..TASKS).map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(probe.sorted_labels(), expected, "each task ran once");
    // Each at its place, in the order of the spread. (Tasks that a loaded machine lets fall due
    // together start together, in either order: a few milliseconds apart at most.)
    let runs = probe.runs();
    let started = |i: i64| {
        runs.iter()
            .find(|run| run.label == i.to_string())
            .expect("ran")
            .started
    };
    for i in 0..TASKS {
        let waited = started(i).duration_since(scheduled_at);
        let due = over * i as u32 / TASKS as u32;
        assert!(
            waited + Duration::from_millis(5) >= due,
            "task {i} started {waited:?} after the scatter, before its place at {due:?}"
        );
        if i > 0 {
            assert!(
                started(i) + Duration::from_millis(20) >= started(i - 1),
                "task {i} started well before task {}: {runs:#?}",
                i - 1
            );
        }
    }
}

pub(crate) async fn scattering_the_same_batch_again_adds_nothing_while_it_waits(docket: Docket) {
    let probe = Probe::new();
    // Two equal schedules: each keeps a key of its own.
    let batch = || [1, 2, 2, 3].map(|n| NoteValue::schedule(probe.id(), n));
    let hour = Duration::from_secs(3600);
    let first = docket.scatter(batch(), hour, hour).await.unwrap();
    let again = docket.scatter(batch(), hour, hour).await.unwrap();

    assert!(first.iter().all(|r| r.disposition() == Disposition::Added));
    assert!(
        again
            .iter()
            .all(|r| r.disposition() == Disposition::Duplicate),
        "{again:#?}"
    );
    let keys = |receipts: &[docket::Scheduled]| -> Vec<String> {
        receipts.iter().map(|r| r.key().to_owned()).collect()
    };
    assert_eq!(keys(&first), keys(&again));
    let snapshot = docket.snapshot().await.unwrap();
    assert_eq!(snapshot.scheduled.len(), 4, "{snapshot:#?}");
    assert_eq!(probe.starts(), 0);
    docket.clear().await.unwrap();
}
